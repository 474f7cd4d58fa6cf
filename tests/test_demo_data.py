"""The synthetic talking-face demo data."""
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from avprep import demo_data, records
from avprep.mouth_tracking import MouthTracker

SCRIPT = Path(__file__).resolve().parents[1] / "data_preparation" / "make_demo_data.py"


def test_default_demo_dir_follows_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("AVMATCH_DATA_HOME", str(tmp_path))
    assert demo_data.default_demo_dir() == os.path.join(str(tmp_path), "demo-v2")
    monkeypatch.delenv("AVMATCH_DATA_HOME")
    assert demo_data.default_demo_dir().endswith(os.path.join(".cache", "avmatch", "demo-v2"))


def test_speech_and_mouth_opening_go_together():
    speaker = demo_data.speaker_parameters(3)
    audio, opening = demo_data.synthesize_speech(4.0, speaker, np.random.default_rng(0))
    assert audio.dtype == np.float32 and audio.shape == (64000,) == opening.shape
    assert np.abs(audio).max() == np.float32(0.5)
    frame_energy = (audio.reshape(-1, 320) ** 2).mean(axis=1)
    frame_opening = opening.reshape(-1, 320).mean(axis=1)
    assert np.corrcoef(np.log(frame_energy + 1e-8), frame_opening)[0, 1] > 0.6
    assert 0.2 < (frame_opening > 0.1).mean() < 0.8   # speech with pauses


def test_the_tracked_mouth_visibly_opens_for_every_speaker_look():
    tracker = MouthTracker()
    openings = np.tile(np.linspace(0.0, 1.0, 10), 2)
    for index in (0, 1, 2, 5):
        frames = demo_data.render_frames(openings, demo_data.speaker_parameters(index))
        assert frames.shape == (20, 256, 256, 3) and frames.dtype == np.uint8
        track = tracker.track(frames)
        assert track.active.all()
        darkness = (track.crops.astype(np.float32) < 60).mean(axis=(1, 2))
        assert np.corrcoef(darkness, openings)[0, 1] > 0.9


def test_ensure_demo_dataset_builds_once(tmp_path):
    directory = str(tmp_path / "demo")
    messages = []
    result = demo_data.ensure_demo_dataset(directory, log=messages.append, num_videos=3,
                                           seconds=3.0, num_workers=1)
    assert result == directory
    manifest = records.read_manifest(directory)
    assert len(manifest["files"]) == 3
    assert all(f["status"] == "ok" for f in manifest["files"])
    assert sum(i["windows"] for i in manifest["splits"].values()) > 10
    stamp = os.path.getmtime(os.path.join(directory, records.MANIFEST_NAME))
    messages.clear()
    assert demo_data.ensure_demo_dataset(directory, log=messages.append) == directory
    assert messages == []
    assert os.path.getmtime(os.path.join(directory, records.MANIFEST_NAME)) == stamp


@pytest.mark.parametrize("seconds", ["0.5", "601", "inf", "nan"])
def test_a_length_outside_1_to_600_seconds_is_one_line(tmp_path, seconds):
    done = subprocess.run([sys.executable, str(SCRIPT), f"--output_dir={tmp_path / 'demo'}",
                           f"--seconds={seconds}"], capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and "Traceback" not in done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: --seconds={float(seconds)} must be")
    assert not (tmp_path / "demo").exists()
