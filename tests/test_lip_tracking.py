"""lip_tracking.py end to end: every output, and one-line errors with exit code 2."""
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from avprep.video_io import decode_video, write_video

SCRIPT = Path(__file__).resolve().parents[1] / "data_preparation" / "lip_tracking.py"


def _run(*arguments):
    return subprocess.run([sys.executable, str(SCRIPT), *arguments], capture_output=True,
                          text=True, timeout=120)


def test_lip_tracking_writes_video_crops_activation_and_gif(shared_videos, tmp_path):
    output = tmp_path / "out" / "tracked.avi"
    done = _run(f"--input={shared_videos / 'pcavs_Audio_Source_00373.mp4'}",
                f"--output={output}", "--max_frames=30")
    assert done.returncode == 0, done.stderr
    activation = json.loads((output.parent / "activation.json").read_text())["activation"]
    assert len(activation) == 30 and sum(activation) >= 27
    pngs = sorted((output.parent / "mouth").glob("frame_*.png"))
    assert len(pngs) == sum(activation)
    assert {p.name for p in pngs} == {f"frame_{k}.png" for k, a in enumerate(activation) if a}
    crop = np.asarray(Image.open(pngs[0]))
    assert crop.shape == (60, 100) and crop.dtype == np.uint8
    with Image.open(output.parent / "mouth.gif") as gif:
        assert gif.size == (100, 60)
        # Pillow merges identical consecutive frames (25 -> 30 fps repeats), adding durations
        durations = []
        for index in range(gif.n_frames):
            gif.seek(index)
            durations.append(gif.info["duration"])
        assert 850 <= sum(durations) <= 1050  # 30 frames at 30 fps; GIF counts 10 ms units
    video = decode_video(output, need_audio=False)
    assert video.frames.shape == (30, 224, 224, 3)
    # the green crop rectangle is drawn on active frames
    first = video.frames[activation.index(1)].astype(int)
    green = (first[..., 1] > 180) & (first[..., 0] < 90) & (first[..., 2] < 90)
    assert green.sum() > 100


def test_bad_input_is_one_line_and_exit_code_2(tmp_path):
    done = _run(f"--input={tmp_path / 'absent.mp4'}", f"--output={tmp_path / 'out.mp4'}")
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "absent.mp4" in lines[0]


@pytest.mark.parametrize("fps", ["0", "-30", "nan", "inf"])
def test_a_frame_rate_that_is_not_a_finite_positive_number_is_one_line(tmp_path, fps):
    done = _run(f"--input={tmp_path / 'absent.mp4'}", f"--output={tmp_path / 'out.mp4'}",
                f"--fps={fps}")
    assert done.returncode == 2 and "Traceback" not in done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: --fps must be a finite number")


def test_corrupt_input_and_wrong_codec_are_usage_errors(tmp_path):
    corrupt = tmp_path / "corrupt.mp4"
    corrupt.write_bytes(b"\x00not a video" * 100)
    done = _run(f"--input={corrupt}", f"--output={tmp_path / 'out.mp4'}")
    assert done.returncode == 2 and len(done.stderr.strip().splitlines()) == 1
    done = _run(f"--input={corrupt}", f"--output={tmp_path / 'out.mp4'}", "--codec=MJPG")
    assert done.returncode == 2 and ".avi" in done.stderr


def test_video_without_a_face_is_an_error_and_writes_nothing(tmp_path):
    faceless = tmp_path / "faceless.mp4"
    write_video(faceless, np.full((20, 96, 96, 3), 128, np.uint8), 30.0)
    output = tmp_path / "out" / "tracked.mp4"
    done = _run(f"--input={faceless}", f"--output={output}")
    assert done.returncode == 2 and "Traceback" not in done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: no face found in {faceless}")
    assert not output.parent.exists()
