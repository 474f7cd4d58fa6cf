"""Decoding to 30 fps by timestamp, audio to mono 16 kHz, writing, and clear decode errors."""
from fractions import Fraction

import av
import numpy as np
import pytest

from avprep.video_io import (DecodeError, decode_audio, decode_video, nearest_frame_indices,
                              write_video)


def _numbered_frames(count, height=64, width=96):
    """uint8 (count, H, W, 3) frames whose red level encodes the frame number (x 8)."""
    frames = np.zeros((count, height, width, 3), np.uint8)
    frames[..., 0] = (np.arange(count, dtype=np.uint8) * 8)[:, None, None]
    return frames


def _tone(seconds, sample_rate=16000, hz=440.0):
    time = np.arange(int(round(seconds * sample_rate))) / sample_rate
    return (0.5 * np.sin(2 * np.pi * hz * time)).astype(np.float32)


def _write_audio_only(path, audio, sample_rate=16000):
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream("aac", rate=sample_rate, layout="mono")
        for start in range(0, audio.size, 1024):
            frame = av.AudioFrame.from_ndarray(audio[None, start:start + 1024], format="fltp",
                                               layout="mono")
            frame.sample_rate, frame.pts = sample_rate, start
            frame.time_base = Fraction(1, sample_rate)
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)


def test_nearest_frames_25_to_30_fps_repeat_every_fifth_source_frame():
    indices = nearest_frame_indices(np.arange(25) / 25.0, 30.0, 30)
    assert indices.tolist()[:12] == [0, 1, 2, 2, 3, 4, 5, 6, 7, 7, 8, 9]
    assert np.all(np.diff(indices) >= 0)
    assert np.bincount(indices).tolist() == [1, 1, 2, 1, 1] * 5


def test_nearest_frames_follow_variable_rate_timestamps():
    times = np.array([0.0, 0.02, 0.15, 0.16, 0.30])
    indices = nearest_frame_indices(times, 30.0, 10)
    # targets 0, .033, .067, .1, .133, .167, .2, .233, .267, .3
    assert indices.tolist() == [0, 1, 1, 2, 2, 3, 3, 4, 4, 4]


def test_nearest_frames_of_30_fps_source_are_identity():
    assert nearest_frame_indices(np.arange(40) / 30.0, 30.0, 40).tolist() == list(range(40))


def test_write_then_decode_brings_25_fps_to_30_with_16k_audio(tmp_path):
    path = tmp_path / "clip.mp4"
    write_video(path, _numbered_frames(25), 25.0, audio=_tone(1.0, 22050), sample_rate=22050)
    decoded = decode_video(path)
    assert decoded.frames.shape == (30, 64, 96, 3) and decoded.frames.dtype == np.uint8
    assert decoded.fps == 30.0 and decoded.source_fps == pytest.approx(25.0)
    assert decoded.duration == pytest.approx(1.0)
    red = np.round(decoded.frames[:, 32, 48, 0] / 8.0).astype(int)
    assert red.tolist() == np.repeat(np.arange(25), [1, 1, 2, 1, 1] * 5).tolist()
    assert decoded.sample_rate == 16000 and decoded.audio.dtype == np.float32
    assert decoded.audio.shape == (16000,)
    assert np.abs(decoded.audio).max() <= 1.0
    expected = _tone(1.0, 16000)
    assert np.corrcoef(decoded.audio[1000:15000], expected[1000:15000])[0, 1] > 0.99


def test_mjpeg_avi_round_trip_and_max_frames(tmp_path):
    path = tmp_path / "clip.avi"
    write_video(path, _numbered_frames(30), 30.0, codec="MJPG")
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temp file left
    decoded = decode_video(path, need_audio=False, max_frames=12)
    assert decoded.frames.shape == (12, 64, 96, 3) and decoded.audio is None
    assert np.round(decoded.frames[:, 10, 10, 0] / 8.0).astype(int).tolist() == list(range(12))


def test_empty_file_is_a_decode_error(tmp_path):
    path = tmp_path / "empty.mp4"
    path.write_bytes(b"")
    with pytest.raises(DecodeError, match=r"empty file \(0 bytes\)"):
        decode_video(path)


def test_random_bytes_are_a_decode_error(tmp_path):
    path = tmp_path / "corrupt.mp4"
    path.write_bytes(np.random.default_rng(0).integers(0, 256, 50_000, np.uint8).tobytes())
    with pytest.raises(DecodeError):
        decode_video(path)


def test_missing_file_is_a_decode_error(tmp_path):
    with pytest.raises(DecodeError, match="no such file"):
        decode_video(tmp_path / "absent.mp4")


def test_video_without_audio_needs_audio(tmp_path):
    path = tmp_path / "silent.mp4"
    write_video(path, _numbered_frames(10), 30.0)
    with pytest.raises(DecodeError, match="no audio stream"):
        decode_video(path)
    assert decode_video(path, need_audio=False).frames.shape[0] == 10


def test_audio_only_file_has_no_video(tmp_path):
    path = tmp_path / "speech.m4a"
    _write_audio_only(path, _tone(0.5))
    with pytest.raises(DecodeError, match="no video stream"):
        decode_video(path)


def test_decode_audio_reads_a_video_as_decode_video_does_and_an_audio_only_file(tmp_path):
    video = tmp_path / "clip.mp4"
    write_video(video, _numbered_frames(30), 30.0, audio=_tone(1.0))
    np.testing.assert_array_equal(decode_audio(video), decode_video(video).audio)
    assert decode_audio(video, max_seconds=0.5).size == 8000
    speech = tmp_path / "speech.m4a"
    _write_audio_only(speech, _tone(0.5))
    sound = decode_audio(speech)
    assert abs(sound.size - 8000) <= 1024 and np.abs(sound).max() > 0.3
    silent = tmp_path / "silent.mp4"
    write_video(silent, _numbered_frames(10), 30.0)
    with pytest.raises(DecodeError, match="no audio stream"):
        decode_audio(silent)
    with pytest.raises(DecodeError, match="no such file"):
        decode_audio(tmp_path / "absent.m4a")


def test_bad_frames_are_rejected(tmp_path):
    with pytest.raises(ValueError, match="uint8"):
        write_video(tmp_path / "x.mp4", np.zeros((3, 8, 8, 3), np.float32), 30.0)
