"""avprep.lip_loudness and evaluation/lip_loudness_lag.py: the model-free lag of the sound
behind the lips, pooled over sets of clips."""
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from avprep.demo_data import make_demo_video
from avprep.lip_loudness import (clip_signals, lag_correlations, loudness, opening_ratio,
                                 peak_lag, pooled_peak)
from avprep.mouth_tracking import MouthTracker
from avprep.shift import write_shifted_copy
from avprep.video_io import write_video

REPO = Path(__file__).resolve().parents[1]
LAGS = np.arange(-10, 11)


def run_tool(*args):
    return subprocess.run([sys.executable, str(REPO / "evaluation" / "lip_loudness_lag.py"),
                           *args], cwd=REPO, capture_output=True, text=True, timeout=600)


def smooth_noise(length, seed):
    rng = np.random.default_rng(seed)
    return np.convolve(rng.normal(size=length + 8), np.hanning(9), mode="valid")


@pytest.mark.parametrize("delay", [2, -3, 0])
def test_the_peak_lag_is_the_delay_of_the_sound(delay):
    opening = smooth_noise(120, seed=1)
    sound = np.roll(opening, delay) + 0.1 * np.random.default_rng(2).normal(size=120)
    sound[:abs(delay)] = np.nan
    sound[len(sound) - abs(delay):] = np.nan
    curve = lag_correlations(opening, sound, LAGS)
    assert abs(peak_lag(curve, LAGS) - delay) < 0.3
    assert np.nanmax(curve) > 0.9


def test_peak_lag_refines_between_frames_and_handles_edges():
    assert peak_lag([0.0, 0.5, 1.0, 1.0, 0.5], np.arange(5)) == pytest.approx(2.5)
    assert peak_lag([1.0, 0.5, 0.2], np.arange(-1, 2)) == -1.0
    assert np.isnan(peak_lag([np.nan, np.nan], np.arange(2)))
    short = lag_correlations(np.arange(8.0), np.arange(8.0), LAGS)
    assert np.isnan(short).all()  # fewer known frames than min_pairs at every lag


def test_pooled_peak_interval_collapses_for_identical_clips():
    curve = np.cos((LAGS - 1.0) / 3.0)
    peak, low, high = pooled_peak(np.stack([curve] * 5), LAGS, resamples=50)
    assert peak == pytest.approx(1.0, abs=0.05)
    assert low == pytest.approx(peak) and high == pytest.approx(peak)


def test_opening_ratio_and_loudness_without_delay():
    points = np.zeros((68, 2))
    points[54] = (10.0, 0.0)
    for upper, lower in ((61, 67), (62, 66), (63, 65)):
        points[upper], points[lower] = (5.0, -1.0), (5.0, 1.0)
    assert opening_ratio(points) == pytest.approx(0.2)
    time = np.arange(16000) / 16000.0
    audio = np.where(time >= 0.5, 0.5 * np.sin(2 * np.pi * 440 * time), 0.0)
    loud = loudness(audio, 30, 30.0, 16000)
    # the tone starts at frame 15's time: its window holds half a window of tone (RMS 0.25)
    # when the band filter adds no delay; the windows before hold next to none
    assert loud[15] == pytest.approx(np.log(0.25), abs=0.1)
    assert loud[16] == pytest.approx(np.log(0.5 / np.sqrt(2)), abs=0.05)
    assert loud[13] < np.log(0.01)
    # audio too short to filter gives unknown loudness, never an error
    for size in (0, 1, 26, 27):
        assert np.isnan(loudness(np.full(size, 0.1), 3, 30.0, 16000)).all()
    assert not np.isnan(loudness(np.full(800, 0.1), 3, 30.0, 16000)).all()


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    folder = tmp_path_factory.mktemp("clips")
    make_demo_video(folder / "talk.mp4", 2, seconds=3.0)
    write_shifted_copy(folder / "talk.mp4", folder / "talk_audio+100ms.mp4", 100)
    return folder


def test_a_shift_of_the_audio_moves_the_peak_by_as_much(clips):
    tracker = MouthTracker()
    peaks = {}
    for name in ("talk.mp4", "talk_audio+100ms.mp4"):
        opening, loud = clip_signals(clips / name, tracker)
        assert opening.shape == loud.shape == (90,) and not np.isnan(opening).any()
        peaks[name] = peak_lag(lag_correlations(opening, loud, LAGS), LAGS)
    assert abs(peaks["talk.mp4"]) < 1.0
    assert peaks["talk_audio+100ms.mp4"] - peaks["talk.mp4"] == pytest.approx(3.0, abs=0.5)


def write_offsets(path, rows):
    lines = ["video,status,best_offset_frames"] + [",".join(map(str, row)) for row in rows]
    path.write_text("\n".join(lines) + "\n")


def test_groups_by_offset_keep_signals_and_name_a_damaged_video(clips, tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    for name in ("talk.mp4", "talk_audio+100ms.mp4"):
        (folder / name).write_bytes((clips / name).read_bytes())
    offsets = tmp_path / "sync.csv"
    write_offsets(offsets, [("in/talk.mp4", "ok", 0), ("in/talk_audio+100ms.mp4", "ok", 4),
                            ("in/broken.mp4", "failed", "")])
    signals, out = tmp_path / "signals.npz", tmp_path / "lag.json"
    args = [f"--video={folder}", "--group_by=offset", f"--offsets_csv={offsets}",
            f"--signals={signals}", f"--json={out}", "--resamples=20"]
    first = run_tool(*args)
    assert first.returncode == 0, first.stderr[-3000:]
    groups = {row["group"]: row for row in json.loads(out.read_text())["groups"]}
    assert set(groups) == {"0", ">= +3"}  # +4 is pooled into the outermost group
    assert groups[">= +3"]["peak_lag_frames"] - groups["0"]["peak_lag_frames"] == \
        pytest.approx(3.0, abs=0.5)
    assert "2 clips measured" in first.stdout

    # the kept signals are used: a video damaged since is not read again
    (folder / "talk.mp4").write_bytes(b"not a video any more")
    (folder / "broken.mp4").write_bytes(b"not a video")
    again = run_tool(*args)
    assert again.returncode == 1
    assert "broken.mp4" in again.stderr and "Traceback" not in again.stderr
    assert "1 of 3 videos could not be read" in again.stdout
    assert "2 clips measured" in again.stdout


def test_groups_by_audio_rate(clips):
    result = run_tool(f"--video={clips}", "--group_by=audio_rate", "--resamples=20")
    assert result.returncode == 0, result.stderr[-3000:]
    assert [line.split()[:2] for line in result.stdout.splitlines()[1:2]] == [["16k", "2"]]


@pytest.mark.parametrize("flags", [
    [], ["--video=/absent/folder"], ["--max_lag=0"], ["--group_by=offset"],
    ["--offsets_csv=/absent.csv"], ["--group_by=offset", "--offsets_csv=/absent.csv"],
    ["--group_by=speaker"], ["empty folder"], ["damaged signals"], ["file in the way"],
    ["no face, no audio"],
])
def test_bad_input_is_one_error_line(clips, tmp_path, flags):
    args = [] if flags == [] else [f"--video={clips}"] + flags
    if flags == ["empty folder"]:
        (tmp_path / "empty").mkdir()
        args = [f"--video={tmp_path / 'empty'}"]
    elif flags == ["no face, no audio"]:
        noise = np.random.default_rng(0).integers(0, 255, (45, 128, 128, 3), dtype=np.uint8)
        write_video(tmp_path / "noise.mp4", noise, 30, audio=np.zeros(24000, np.float32))
        write_video(tmp_path / "silent.mp4", noise, 30)
        args = [f"--video={tmp_path}"]
    elif flags == ["file in the way"]:
        (tmp_path / "a_file").write_text("x")
        args = [f"--video={clips}", f"--json={tmp_path / 'a_file' / 'lag.json'}"]
    elif flags == ["damaged signals"]:
        (tmp_path / "signals.npz").write_bytes(b"not an npz")
        args = [f"--video={clips}", f"--signals={tmp_path / 'signals.npz'}"]
    elif flags and flags[0].startswith("--video"):
        args = flags
    result = run_tool(*args)
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert result.returncode == 2 and len(errors) == 1, result.stderr[-2000:]
    assert "Traceback" not in result.stderr and "Warning" not in result.stderr
    if flags == ["no face, no audio"]:
        assert "silent.mp4: no audio stream" in result.stderr and "no clip of 2" in errors[0]
