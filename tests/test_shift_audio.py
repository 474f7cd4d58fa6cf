"""data_preparation/shift_audio.py: the video stream is copied packet for packet and the audio
moves by the requested amount (measured by cross-correlation with the original)."""
import subprocess
import sys
from pathlib import Path

import av
import numpy as np
import pytest
from scipy import signal

from avprep.demo_data import make_demo_video
from avprep.records import SAMPLE_RATE
from avprep.shift import parse_shifted_name, shift_samples, shifted_name
from avprep.video_io import decode_video, write_video

REPO = Path(__file__).resolve().parents[1]
OFFSETS_MS = (-120, 0, 70)


def run_tool(*args):
    return subprocess.run([sys.executable, str(REPO / "data_preparation" / "shift_audio.py"),
                           *args], cwd=REPO, capture_output=True, text=True, timeout=600)


def video_packets(path):
    """(bytes, pts, dts) of every packet of the first video stream."""
    with av.open(str(path)) as container:
        return [(bytes(p), p.pts, p.dts) for p in container.demux(container.streams.video[0])
                if p.dts is not None]


def lag_samples(reference, shifted):
    """Samples by which `shifted` is late against `reference` (float (S,) each), from the
    peak of their cross-correlation."""
    n = min(len(reference), len(shifted))
    correlation = signal.correlate(shifted[:n], reference[:n], mode="full", method="fft")
    return int(np.argmax(correlation)) - (n - 1)


def test_copy_names_read_back():
    for offset in (-200, 0, 35):
        assert parse_shifted_name(shifted_name("/data/my_clip.v2.mp4", offset)) == (
            "my_clip.v2.mp4", offset)
    for name in ("clip.mp4", "clip_audio+5.mp4", "clip_audio5ms.mp4", "_audio+5ms"):
        assert parse_shifted_name(name) is None


def test_shift_samples_pads_and_cuts_keeping_the_length():
    samples = np.arange(1, 6, dtype=np.float32)[None, :]
    np.testing.assert_array_equal(shift_samples(samples, 2), [[0, 0, 1, 2, 3]])
    np.testing.assert_array_equal(shift_samples(samples, -2), [[3, 4, 5, 0, 0]])
    np.testing.assert_array_equal(shift_samples(samples, 9), [[0, 0, 0, 0, 0]])
    assert shifted_name("a/clip.mp4", 100) == "clip_audio+100ms.mp4"
    assert shifted_name("clip.mkv", -40) == "clip_audio-40ms.mkv"


@pytest.fixture(scope="module")
def source(tmp_path_factory):
    path = tmp_path_factory.mktemp("source") / "talk.mp4"
    make_demo_video(path, 3, seconds=3.0)
    return path


def test_copies_keep_the_video_packets_and_shift_the_audio(source, tmp_path):
    result = run_tool(f"--input={source}", f"--output_dir={tmp_path}",
                      f"--offsets_ms={','.join(str(o) for o in OFFSETS_MS)}")
    assert result.returncode == 0, result.stderr[-3000:]
    original_packets = video_packets(source)
    original = decode_video(source)
    for offset in OFFSETS_MS:
        copy = tmp_path / shifted_name(source, offset)
        assert str(copy) in result.stdout
        assert video_packets(copy) == original_packets
        shifted = decode_video(copy)
        assert shifted.audio.size == original.audio.size
        np.testing.assert_array_equal(shifted.frames, original.frames)
        assert abs(lag_samples(original.audio, shifted.audio)
                   - offset * SAMPLE_RATE / 1000) <= 1, offset


def test_bad_input_is_one_error_line(source, tmp_path):
    mute = tmp_path / "mute.mp4"
    write_video(mute, np.zeros((10, 32, 32, 3), np.uint8), 30.0)
    for args in ([f"--input={mute}", f"--output_dir={tmp_path}"],
                 [f"--input={source}", f"--output_dir={tmp_path}", "--offsets_ms=10,ten"],
                 [f"--input={tmp_path / 'absent.mp4'}", f"--output_dir={tmp_path}"]):
        result = run_tool(*args)
        errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
        assert result.returncode == 2 and len(errors) == 1, result.stderr
        assert "Traceback" not in result.stderr
    assert not list(tmp_path.glob("*_audio*"))
