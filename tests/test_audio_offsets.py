"""Sync-corrected clips: offsets read from a sync.py table, the audio moved by them in a build."""
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from avprep import audio_offsets, build, dataset_writer, demo_data, records, shift, splits
from avprep.faces import FaceDescriber
from avprep.video_io import DecodedVideo, decode_video

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "data_preparation" / "build_dataset.py"
HEADER = "video,status,best_offset_frames,best_offset_ms,confidence\n"


@pytest.fixture(scope="module")
def pair_of_videos(tmp_path_factory):
    """A 3 s demo video and a copy of it with the audio 100 ms (3 frames) late."""
    folder = tmp_path_factory.mktemp("offsets")
    original = folder / "in" / "speaker0.mp4"
    original.parent.mkdir()
    demo_data.make_demo_video(original, 0, seconds=3.0)
    late = folder / "in" / shift.shifted_name(original, 100)
    shift.write_shifted_copy(original, late, 100)
    return original, late


def _decoded(num_frames=30, samples_per_frame=10):
    frames = np.arange(num_frames, dtype=np.uint8).reshape(num_frames, 1, 1, 1)
    audio = np.arange(num_frames * samples_per_frame, dtype=np.float32)
    return DecodedVideo(frames=frames, audio=audio, fps=30.0, sample_rate=30 * samples_per_frame,
                        source_fps=30.0, duration=num_frames / 30.0)


def test_late_audio_loses_its_start_and_early_audio_the_video_start():
    decoded = _decoded()
    late = audio_offsets.realigned(decoded, 3)
    # the sound of frame t was at sample 10 (t + 3); now it is at sample 10 t
    assert late.audio[0] == 30 and len(late.audio) == 270
    assert len(late.frames) == 30 and late.duration == decoded.duration
    early = audio_offsets.realigned(decoded, -2)
    # the lips of sample 10 t were in frame t + 2; now they are in frame t
    assert early.frames[0, 0, 0, 0] == 2 and len(early.frames) == 28
    assert early.duration == pytest.approx(28 / 30) and len(early.audio) == 300
    assert audio_offsets.realigned(decoded, 0) is decoded


def test_a_whole_frame_at_16_khz_is_533_samples_rounded():
    decoded = DecodedVideo(frames=np.zeros((3, 1, 1, 3), np.uint8),
                           audio=np.zeros(16000, np.float32), fps=30.0, sample_rate=16000,
                           source_fps=25.0, duration=0.1)
    assert len(audio_offsets.realigned(decoded, 1).audio) == 16000 - 533
    assert len(audio_offsets.realigned(decoded, 2).audio) == 16000 - 1067


def test_offsets_are_read_from_a_sync_table(tmp_path, monkeypatch):
    tmp_path = Path(os.path.realpath(tmp_path))
    table = tmp_path / "sync.csv"
    table.write_text(HEADER + "a.mp4,ok,3,100.0,5\nb.mp4,ok,-2,-66.7,4\nc.mp4,ok,1,33.3,9\n"
                     "d.mp4,ok,0,0.0,9\ne.mp4,skipped,,,\n")
    monkeypatch.chdir(tmp_path)  # sync.py's relative paths are read from the current folder
    every = audio_offsets.offsets_from_sync_csv(table)
    assert every == {str(tmp_path / "a.mp4"): 3, str(tmp_path / "b.mp4"): -2,
                     str(tmp_path / "c.mp4"): 1}
    assert audio_offsets.offsets_from_sync_csv(table, min_frames=2) == {
        str(tmp_path / "a.mp4"): 3, str(tmp_path / "b.mp4"): -2}
    assert audio_offsets.unknown_videos(every, ["a.mp4", str(tmp_path / "b.mp4")]) == [
        str(tmp_path / "c.mp4")]


@pytest.mark.parametrize("text,message", [
    ("video,offset\na.mp4,3\n", "no column best_offset_frames, status"),
    ("", "no column best_offset_frames, status, video"),
    (HEADER + "a.mp4,ok,2.5,83.3,5\n", "line 2: best_offset_frames '2.5' is not a whole number"),
    (HEADER + "a.mp4,ok\n", "line 2: best_offset_frames None is not a whole number"),
])
def test_a_table_that_is_not_sync_output_is_refused(tmp_path, text, message):
    table = tmp_path / "sync.csv"
    table.write_text(text)
    with pytest.raises(ValueError, match=message):
        audio_offsets.offsets_from_sync_csv(table)


def test_a_binary_file_is_not_a_sync_table(tmp_path):
    table = tmp_path / "sync.csv"
    table.write_bytes(bytes(range(128, 256)) * 8)
    with pytest.raises(ValueError, match="sync.csv is not a sync.py --csv table"):
        audio_offsets.offsets_from_sync_csv(table)


def _windows(path, offset, describer=None):
    config = build.BuildConfig(input_dir=str(Path(path).parent), output_dir="unused",
                               audio_offsets={os.path.realpath(path): offset} if offset else {})
    entry = splits.VideoEntry(path=str(path), relpath=Path(path).name,
                              video_id=Path(path).stem, split="train")
    windows, status = build.process_video(entry, config, config.tracker(), describer)
    assert status["status"] == "ok" and status.get("audio_offset_frames", 0) == offset
    return windows, status


def _genuine_speech(path, offset):
    windows, _ = _windows(path, offset)
    return dict(zip(windows.start_frame.tolist(), windows.speech_genuine))


def test_a_late_copy_corrected_by_its_offset_gets_the_original_genuine_speech(pair_of_videos):
    original, late = pair_of_videos
    reference = _genuine_speech(original, 0)
    corrected = _genuine_speech(late, 3)
    uncorrected = _genuine_speech(late, 0)
    common = sorted(set(reference) & set(corrected) & set(uncorrected))
    assert len(common) >= 10

    def gap(cubes):
        return np.mean([np.abs(cubes[s] - reference[s]).mean() for s in common])
    # the late copy's own alignment is 100 ms off; corrected, it is the original's but for
    # the per-clip normalisation over a clip 100 ms shorter and the AAC re-encoding
    assert gap(corrected) < 0.1 * gap(uncorrected)


def test_an_early_copy_corrected_loses_its_first_frames_not_their_numbers(pair_of_videos):
    original, _ = pair_of_videos
    early = Path(original).parent.parent / shift.shifted_name(original, -100)
    shift.write_shifted_copy(original, early, -100)
    reference = _genuine_speech(original, 0)
    corrected = _genuine_speech(early, -3)
    # start frames count the file's frames: the first window starts at frame 3 or later
    assert min(corrected) >= 3
    common = sorted(set(reference) & set(corrected))
    assert len(common) >= 10
    # correlation, not the difference: the copy's audio ends in 100 ms of padding, which moves
    # its per-clip normalisation
    def likeness(first, second):
        return np.corrcoef(first.ravel(), second.ravel())[0, 1]
    aligned = np.mean([likeness(corrected[s], reference[s]) for s in common])
    three_off = np.mean([likeness(corrected[s], reference[s - 3])
                         for s in common if s - 3 in reference])
    assert aligned > 0.85 and three_off < 0.5  # measured: 0.94 and 0.07


def test_the_face_is_described_on_every_frame_whatever_the_offset(pair_of_videos):
    """So the speaker grouping, and with it the split, does not move with the offsets."""
    _, late = pair_of_videos
    describer = FaceDescriber(build.BuildConfig(input_dir=".", output_dir="unused").tracker())
    as_is = _windows(late, 0, describer)[1]["face_descriptor"]
    for offset in (-3, 3):
        assert _windows(late, offset, describer)[1]["face_descriptor"] == as_is


def test_a_rerun_with_offsets_remakes_only_the_videos_whose_offset_changed(pair_of_videos,
                                                                             tmp_path):
    original, late = pair_of_videos
    source = Path(original).parent
    output = tmp_path / "out"
    config = build.BuildConfig(input_dir=str(source), output_dir=str(output),
                               split=splits.SplitConfig("flat", 1.0, 0.0, 0.0))
    first = build.build_dataset(config, log=lambda _: None)
    corrected = build.BuildConfig(input_dir=str(source), output_dir=str(output),
                                  split=config.split,
                                  audio_offsets={os.path.realpath(late): 3})
    second = build.build_dataset(corrected, log=lambda _: None)
    assert first["processed"] == 2 and second["processed"] == 1 and second["reused"] == 1
    late_id = Path(late).stem
    assert dataset_writer.read_status(str(output), late_id)["audio_offset_frames"] == 3
    manifest = records.read_manifest(output)
    by_id = {item["video_id"]: item for item in manifest["files"]}
    assert by_id[late_id]["audio_offset_frames"] == 3
    assert "audio_offset_frames" not in by_id[Path(original).stem]
    assert manifest["build"]["audio_offset_videos"] == 1
    # a 3-frame shorter clip gives no more windows than the uncorrected copy did
    assert 0 < by_id[late_id]["windows"] <= sum(i["windows"] for i in manifest["splits"].values())
    assert build.build_dataset(corrected, log=lambda _: None)["processed"] == 0


def test_an_offset_of_a_video_that_is_not_an_input_is_refused(pair_of_videos, tmp_path):
    original, _ = pair_of_videos
    config = build.BuildConfig(input_dir=str(Path(original).parent),
                               output_dir=str(tmp_path / "out"),
                               audio_offsets={str(tmp_path / "elsewhere.mp4"): 2})
    with pytest.raises(ValueError, match="1 videos with an audio offset are not among the "
                                         "input videos, e.g. .*elsewhere.mp4"):
        build.build_dataset(config, log=lambda _: None)
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("table,expected", [
    (None, "--audio_offsets {dir}/absent.csv is not a file"),
    ("video,offset\n", "--audio_offsets: {dir}/sync.csv is not a sync.py --csv table"),
    (HEADER + "{dir}/other.mp4,ok,2,66.7,5\n",
     "1 videos with an audio offset are not among the input videos, e.g. {dir}/other.mp4"),
])
def test_script_refuses_bad_offset_tables_in_one_line(pair_of_videos, tmp_path, table, expected):
    original, _ = pair_of_videos
    tmp_path = Path(os.path.realpath(tmp_path))
    path = tmp_path / ("absent.csv" if table is None else "sync.csv")
    if table is not None:
        path.write_text(table.format(dir=tmp_path))
    _assert_one_error_line(tmp_path, Path(original).parent, expected.format(dir=tmp_path),
                           f"--audio_offsets={path}")


@pytest.mark.parametrize("arguments,expected", [
    (["--audio_offsets=sync.csv", "--audio_offset_min_frames=0"],
     "--audio_offset_min_frames must be >= 1, got 0"),
    (["--audio_offset_min_frames=2"], "--audio_offset_min_frames goes with --audio_offsets"),
])
def test_script_refuses_a_threshold_that_cannot_apply(pair_of_videos, tmp_path, arguments,
                                                      expected):
    (tmp_path / "sync.csv").write_text(HEADER)
    _assert_one_error_line(tmp_path, Path(pair_of_videos[0]).parent, expected, *arguments)


def _assert_one_error_line(folder, input_dir, expected, *arguments):
    result = subprocess.run(
        [sys.executable, str(SCRIPT), f"--input_dir={input_dir}",
         f"--output_dir={folder / 'out'}", *arguments],
        capture_output=True, text=True, cwd=folder, timeout=300,
        env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"))
    assert result.returncode == 2 and "Traceback" not in result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and expected in errors[0]
    assert not (folder / "out").exists()


def test_decoding_the_late_copy_shows_its_audio_late(pair_of_videos):
    """The material of the tests above is what it says: the copy's sound starts 100 ms late."""
    original, late = pair_of_videos
    a = decode_video(str(original), fps=30, sample_rate=16000, need_audio=True).audio
    b = decode_video(str(late), fps=30, sample_rate=16000, need_audio=True).audio
    lags = range(0, 3200, 40)
    scores = [np.dot(a[:-3200], b[lag:lag + len(a) - 3200]) for lag in lags]
    assert abs(lags[int(np.argmax(scores))] - 1600) <= 40


def test_word_timings_follow_the_audio_cut(tmp_path):
    """With --drop_silent, a GRID .align file's times are the file's: 100 ms cut from the
    audio's start moves every word 100 ms (5 speech frames) earlier."""
    align = tmp_path / "clip.align"
    align.write_text("0 25000 sil\n25000 50000 word\n50000 75000 sil\n")  # word: 1 to 2 s
    entry = splits.VideoEntry(path="clip.mpg", relpath="clip.mpg", video_id="clip",
                              split="train", align_path=str(align))
    config = build.BuildConfig(input_dir=".", output_dir="unused",
                               window=build.pairs.WindowConfig(drop_silent=True))
    loud = np.random.default_rng(0).standard_normal(3 * 16000).astype(np.float32)
    decoded = DecodedVideo(frames=np.zeros((90, 1, 1, 3), np.uint8), audio=loud, fps=30.0,
                           sample_rate=16000, source_fps=30.0, duration=3.0)
    spoken = ~build._silent_frames(decoded, entry, 150, config)
    assert np.flatnonzero(spoken)[[0, -1]].tolist() == [50, 99]
    cut = audio_offsets.realigned(decoded, 3)
    spoken = ~build._silent_frames(cut, entry, 145, config, audio_start=0.1)
    assert np.flatnonzero(spoken)[[0, -1]].tolist() == [45, 94]
