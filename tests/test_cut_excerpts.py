"""data_preparation/cut_excerpts.py: the middle of a video, picture and sound cut alike,
written losslessly under a name that keeps a shifted copy's shift."""
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from avprep.demo_data import make_demo_video
from avprep.excerpt import excerpt_name, middle_span
from avprep.shift import parse_shifted_name, write_shifted_copy
from avprep.video_io import decode_video

REPO = Path(__file__).resolve().parents[1]


def run_tool(*args):
    return subprocess.run([sys.executable, str(REPO / "data_preparation" / "cut_excerpts.py"),
                           *args], cwd=REPO, capture_output=True, text=True, timeout=600)


def test_middle_span_and_names():
    assert middle_span(100, 37) == (31, 68)
    assert middle_span(38, 37) == (0, 37)
    assert middle_span(20, 37) == (0, 20)
    assert excerpt_name("/x/clip_audio-100ms.mp4") == "clip_audio-100ms.avi"
    assert parse_shifted_name(excerpt_name("clip_audio+200ms.mp4")) == ("clip.avi", 200)


@pytest.fixture(scope="module")
def videos(tmp_path_factory):
    folder = tmp_path_factory.mktemp("videos")
    make_demo_video(folder / "talk.mp4", 2, seconds=3.0)
    write_shifted_copy(folder / "talk.mp4", folder / "talk_audio+100ms.mp4", 100)
    return folder


def test_excerpts_are_the_middle_of_picture_and_sound(videos, tmp_path):
    result = run_tool(f"--input={videos}", f"--output_dir={tmp_path}", "--seconds=1")
    assert result.returncode == 0, result.stderr[-3000:]
    assert "2 excerpts of 1 s written" in result.stdout
    for stem in ("talk", "talk_audio+100ms"):
        whole = decode_video(videos / f"{stem}.mp4")
        part = decode_video(tmp_path / f"{stem}.avi")
        first, end = middle_span(len(whole.frames), 30)
        assert len(part.frames) == 30
        # FFV1 keeps the decoded pictures up to the RGB <-> YUV conversion
        difference = np.abs(part.frames.astype(int) - whole.frames[first:end].astype(int))
        assert difference.mean() < 2.0, stem
        samples = slice(first * 16000 // 30, end * 16000 // 30)
        np.testing.assert_allclose(part.audio, whole.audio[samples], atol=2 / 32768)


def test_a_rerun_keeps_what_is_there_and_a_damaged_video_is_named(videos, tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    (folder / "talk.mp4").write_bytes((videos / "talk.mp4").read_bytes())
    (folder / "broken.mp4").write_bytes(b"not a video")
    out = tmp_path / "out"
    first = run_tool(f"--input={folder}", f"--output_dir={out}", "--seconds=0.5")
    assert first.returncode == 1
    assert "broken.mp4" in first.stderr and "Traceback" not in first.stderr
    assert "1 excerpts of 0.5 s written" in first.stdout and "1 of 2 videos" in first.stdout
    (folder / "broken.mp4").unlink()
    again = run_tool(f"--input={folder}", f"--output_dir={out}", "--seconds=0.5")
    assert again.returncode == 0 and "0 excerpts" in again.stdout and "1 already" in again.stdout
    assert len(decode_video(out / "talk.avi").frames) == 15


@pytest.mark.parametrize("flag", ["--seconds=0", "--seconds=0.01", "--seconds=nan",
                                  "--seconds=abc", "--input=/absent/folder", "empty folder"])
def test_bad_input_is_one_error_line(videos, tmp_path, flag):
    args = [f"--input={videos}", f"--output_dir={tmp_path / 'out'}", "--seconds=1"]
    if flag == "empty folder":
        (tmp_path / "empty").mkdir()
        flag = f"--input={tmp_path / 'empty'}"
    args.append(flag)
    result = run_tool(*args)
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert result.returncode == 2 and len(errors) == 1, result.stderr
    assert "Traceback" not in result.stderr and not (tmp_path / "out").exists()
