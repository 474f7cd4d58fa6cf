"""The sync check (code/sync.py, avmatch.sync, avprep.sync_input).

The offset arithmetic and the statistics are checked exactly on constructed inputs; the
whole check end to end with a model trained here on a small demo dataset (2 epochs of 8
synthetic videos, about a minute and a half on a 2-core CPU): it must recover audio shifts
of -200..+200 ms of an unseen demo speaker within one frame.
"""
import dataclasses
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from avmatch import sync
from avprep import sync_input
from avprep.records import FPS, SAMPLE_RATE
from avprep.speech_features import SpeechFeatureConfig, speech_features
from avprep.video_io import write_video

REPO = Path(__file__).resolve().parents[1]
OFFSETS_MS = (-200, -100, 0, 100, 200)


def run_sync(*args):
    return subprocess.run([sys.executable, str(REPO / "code" / "sync.py"), *args], cwd=REPO,
                          capture_output=True, text=True, timeout=600)


def one_error_line(result):
    """The one `error:` line of a run that exited with code 2 and no traceback."""
    assert result.returncode == 2, result.stderr[-3000:]
    assert "Traceback" not in result.stderr + result.stdout
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, result.stderr
    return errors[0]


@pytest.mark.parametrize("window_step", [1, 3])
def test_every_cube_starts_at_the_window_time_plus_the_offset_to_the_sample(window_step):
    rng = np.random.default_rng(0)
    seconds, max_offset = 3.0, 15
    audio = rng.normal(size=int(seconds * SAMPLE_RATE)).astype(np.float32)
    frames = int(seconds * FPS)
    crops = rng.integers(0, 256, (frames, 60, 100), dtype=np.uint8)
    inputs = sync_input.sync_inputs(crops, np.ones(frames, bool), audio, max_offset,
                                    window_step=window_step)
    config = SpeechFeatureConfig()
    step = config.frame_samples
    # one feature computation per distinct sub-frame shift: 0, 213 and 107 samples at 30 fps
    assert len(inputs.features) == 3
    assert np.all(np.diff(inputs.starts) == window_step)
    observed = inputs.observed
    shifts = inputs.shift_index(np.arange(inputs.num_windows))
    cube_starts = inputs.frame_start[shifts]
    which = inputs.feature_index[shifts]
    rests = sorted({0, 213, 107})
    rest = np.asarray(rests)[which]
    first_sample = rest + cube_starts * step
    expected = np.round((inputs.starts[:, None] + inputs.offsets[None, :]) * SAMPLE_RATE
                        / FPS).astype(np.int64)
    np.testing.assert_array_equal(first_sample[observed], expected[observed])
    index = np.flatnonzero(inputs.observed.all(axis=1))
    if window_step == 3:  # the training hop: at offset 0 exactly the training cube
        np.testing.assert_array_equal(cube_starts[index, max_offset], inputs.starts[index] * 5 // 3)
    cubes = inputs.shift_speech_cubes(shifts[index].reshape(-1))
    speech = cubes.reshape(shifts[index].shape + cubes.shape[1:])
    assert speech.shape == (len(index), 2 * max_offset + 1, 15, 40, 3)
    for w, k in [(0, 0), (3, 5), (4, 6), (len(index) - 1, 2 * max_offset)]:
        r, c = rest[index[w], k], cube_starts[index[w], k]
        direct = speech_features(audio[r:], config)[c:c + 15]
        np.testing.assert_array_equal(speech[w, k], direct)
    edge = inputs.shift_speech_cubes(shifts[0][observed[0]])  # the first window, audio early
    assert edge.shape == (observed[0].sum(), 15, 40, 3) and not observed[0].all()
    np.testing.assert_array_equal(inputs.mouth_cubes(index[:2])[1], crops[inputs.starts[index[1]]:
                                                                           inputs.starts[index[1]] + 9])


def test_windows_are_fully_tracked_and_observed_where_their_audio_lies_inside_the_clip():
    seconds = 3.0
    frames = int(seconds * FPS)
    audio = np.random.default_rng(1).normal(size=int(seconds * SAMPLE_RATE))
    active = np.ones(frames, bool)
    crops = np.zeros((frames, 60, 100), np.uint8)
    inputs = sync_input.sync_inputs(crops, active, audio, 15, window_step=3)
    # total shift t = s + k frames: its cube starts t * 5 / 3 speech frames into the clip and
    # must end within its 150 frames, so 0 <= t <= 81; at every offset k: 15 <= s <= 66
    np.testing.assert_array_equal(inputs.starts, np.arange(0, 82, 3))
    total = inputs.starts[:, None] + inputs.offsets[None, :]
    np.testing.assert_array_equal(inputs.observed, (total >= 0) & (total <= 81))
    np.testing.assert_array_equal(inputs.starts[inputs.observed.all(axis=1)], np.arange(15, 67, 3))
    every = sync_input.sync_inputs(crops, active, audio, 15)
    np.testing.assert_array_equal(every.starts, np.arange(82))
    np.testing.assert_array_equal(every.starts[every.observed.all(axis=1)], np.arange(15, 67))
    active[30] = False
    inputs = sync_input.sync_inputs(crops, active, audio, 15)
    assert not set(inputs.starts) & set(range(22, 31)) and {21, 31} <= set(inputs.starts)
    # no window at every offset: none at all, even where some would fit at a few offsets
    too_short = int(sync_input.needed_seconds(15) * SAMPLE_RATE) - 1
    short = sync_input.sync_inputs(crops, np.ones(frames, bool), audio[:too_short], 15)
    assert short.num_windows == 0 and short.observed.shape == (0, 31)


def test_offset_curve_fits_window_and_offset_effects_over_the_measured_pairs():
    rng = np.random.default_rng(3)
    windows, offsets = rng.normal(20.0, 5.0, 12), rng.normal(0.0, 1.0, 7)
    distances = windows[:, None] + offsets[None, :]
    np.testing.assert_allclose(sync.offset_curve(distances), distances.mean(axis=0))
    measured = distances.copy()
    for w in range(3):  # windows near the ends: audio outside the clip at some offsets
        measured[w, :3 - w] = np.nan
        measured[-1 - w, 4 + w:] = np.nan
    np.testing.assert_allclose(sync.offset_curve(measured), windows.mean() + offsets)
    # a plain mean over the measured pairs would mix in which windows each offset saw
    assert not np.allclose(np.nanmean(measured, axis=0), windows.mean() + offsets)
    result = sync.summarize(measured, np.arange(-3, 4), FPS)
    assert (result.num_windows, result.complete_windows) == (12, 6)
    assert result.best_offset_frames == np.argmin(offsets) - 3
    with pytest.raises(ValueError, match="measured pair"):
        sync.offset_curve(np.where(np.arange(7) == 2, np.nan, distances))
    with pytest.raises(ValueError, match="measured pair"):
        sync.offset_curve(np.zeros((0, 7)))


def test_summary_confidence_verdicts_segments_and_lse():
    offsets = np.arange(-3, 4)
    curve = np.array([5.0, 5.0, 5.0, 5.0, 2.0, 5.0, 6.0])  # minimum at +1 frame
    distances = np.tile(curve, (10, 1)) + np.linspace(0, 1, 10)[:, None]
    thresholds = sync.VerdictThresholds(min_confidence=1.0, in_sync_frames=1, min_seconds=0.5)
    result = sync.summarize(distances, offsets, FPS, thresholds, window_step=3)
    assert (result.best_offset_frames, result.num_windows) == (1, 10)
    assert result.best_offset_ms == pytest.approx(1000.0 / 30.0)
    assert result.min_distance == pytest.approx(2.5)
    assert result.confidence == pytest.approx(3.0)  # median 5.5 - minimum 2.5
    assert result.verdict == sync.IN_SYNC
    assert sync.summarize(distances, offsets, FPS).verdict == sync.CANNOT_TELL  # < 2 s
    # 10 windows a frame apart cover 1/3 s, less than 0.5 s (at the 0.1 s hop above: 1 s)
    assert sync.summarize(distances, offsets, FPS, thresholds).verdict == sync.CANNOT_TELL
    assert sync.verdict(3, 2.0, 1.0, FPS, thresholds) == "out of sync by +100 ms (audio late)"
    assert sync.verdict(-6, 2.0, 1.0, FPS, thresholds) == "out of sync by -200 ms (audio early)"
    assert sync.verdict(3, 0.5, 1.0, FPS, thresholds) == sync.CANNOT_TELL
    assert sync.verdict(3, 2.0, 0.4, FPS, thresholds) == sync.CANNOT_TELL
    asking = dataclasses.replace(thresholds, min_evidence=2.0)
    assert sync.verdict(0, 2.0, 1.0, FPS, asking, evidence=1.9) == sync.CANNOT_TELL
    assert sync.verdict(0, 2.0, 1.0, FPS, asking, evidence=2.0) == sync.IN_SYNC
    starts = np.arange(10) * 3  # windows every 0.1 s: 0.0 .. 0.9 s
    segments = sync.segment_results(distances, starts, offsets, FPS, 0.5)
    assert [(a, b, r.num_windows) for a, b, r in segments] == [(0.0, 0.5, 5), (0.5, 1.0, 5)]
    edges = distances.copy()
    edges[0, :2] = edges[-1, -1] = np.nan  # the first and last windows: not at every offset
    segments = sync.segment_results(edges, starts, offsets, FPS, 0.5)
    assert [(a, b, r.num_windows) for a, b, r in segments] == [(0.0, 0.5, 4), (0.5, 1.0, 4)]
    other = sync.summarize(np.tile([3.0, 1.0, 3.0, 3.0, 3.0, 3.0, 3.0], (3, 1)), offsets, FPS)
    lse = sync.lse_metrics([result, other])
    assert lse == {"lse_d": pytest.approx(1.75), "lse_c": pytest.approx(2.5), "videos": 2}


def test_evidence_counts_how_consistently_the_windows_prefer_the_best_offset():
    rng = np.random.default_rng(0)
    steady = 5.0 + rng.normal(scale=0.5, size=(90, 7))
    steady[:, 4] -= 1.0  # every window prefers offset index 4 by about 1
    clear = sync.peak_evidence(steady, 4)
    # a = median - distance at the best: mean about 1, sd about 0.7, 90 windows a frame
    # apart = 10 independent ones, so about 1 / 0.7 * sqrt(10)
    assert 3.0 < clear < 6.5
    # the same advantage carried by one window in nine: as large on average, far less sure
    lucky = 5.0 + rng.normal(scale=0.5, size=(90, 7))
    lucky[::9, 4] -= 9.0
    assert sync.offset_curve(lucky)[4] == pytest.approx(sync.offset_curve(steady)[4], abs=0.3)
    assert sync.peak_evidence(lucky, 4) < clear / 2
    # windows 3 frames apart overlap less: a third as many count as many independent ones
    assert sync.peak_evidence(steady[::3], 4, window_step=3) == pytest.approx(
        clear, rel=0.25)
    edges = steady.copy()
    edges[:5, 4] = np.nan  # not measured at the best offset: left out, not an error
    assert np.isfinite(sync.peak_evidence(edges, 4))
    assert sync.peak_evidence(steady[:1], 4) == 0.0
    assert sync.summarize(steady, np.arange(-3, 4), FPS).evidence == pytest.approx(clear)


def test_shift_recovery_counts_absolute_relative_and_originals():
    found = {("a.mp4", -100): -3, ("a.mp4", 0): 0, ("a.mp4", 200): 5,  # 200 ms = 6 frames
             ("b.mp4", 0): 4, ("b.mp4", 100): 7,  # b's source is 4 frames late itself
             ("c.mp4", 100): 9}  # no unshifted copy: counted absolutely only
    recovery = sync.shift_recovery(found, FPS)
    assert recovery == sync.ShiftRecovery(copies=6, absolute=3, relative_copies=5, relative=5,
                                          originals=2, originals_in_sync=1, tolerance=1)
    assert sync.shift_recovery({("a.mp4", 100): 1}, FPS).absolute == 0
    assert sync.shift_recovery({("a.mp4", 100): 1}, FPS, tolerance=2).absolute == 1


def test_a_model_folder_may_carry_its_own_thresholds(tmp_path):
    assert sync.read_thresholds(str(tmp_path)) == sync.VerdictThresholds()
    path = tmp_path / sync.THRESHOLDS_NAME
    path.write_text(json.dumps({"min_confidence": 12.5, "note": "measured on ..."}))
    assert sync.read_thresholds(str(tmp_path)) == sync.VerdictThresholds(min_confidence=12.5)
    path.write_text(json.dumps({"min_confidence": 0, "min_evidence": 2.21}))
    assert sync.read_thresholds(str(tmp_path)) == sync.VerdictThresholds(min_confidence=0,
                                                                         min_evidence=2.21)
    for bad in ("[1, 2]", '{"min_confidence": "high"}', '{"min_windows": 20}', "{"):
        path.write_text(bad)
        with pytest.raises(ValueError, match=sync.THRESHOLDS_NAME):
            sync.read_thresholds(str(tmp_path))


@pytest.fixture(scope="module")
def blank_model(tmp_path_factory):
    """Untrained towers saved as a model folder: enough for the checks that fail early."""
    from avmatch.checkpoints import export_towers
    from avmatch.instance import MatchingInstance

    folder = tmp_path_factory.mktemp("blank_model")
    export_towers(MatchingInstance.create(), str(folder), 0)
    return str(folder)


def grey_video(path, seconds=2.0, audio=True):
    frames = np.full((int(seconds * FPS), 128, 128, 3), 128, np.uint8)
    sound = np.random.default_rng(0).normal(scale=0.1, size=int(seconds * SAMPLE_RATE))
    write_video(path, frames, FPS, audio=sound.astype(np.float32) if audio else None)
    return path


def test_video_without_a_face_is_one_error_line(blank_model, tmp_path):
    video = grey_video(tmp_path / "wall.mp4")
    line = one_error_line(run_sync(f"--video={video}", f"--checkpoint_dir={blank_model}"))
    assert "no face found in any frame" in line and "wall.mp4" in line
    line = one_error_line(run_sync(f"--video={video}", f"--checkpoint_dir={blank_model}",
                                   f"--checkpoint={tmp_path / 'ckpt-7'}"))
    assert "ckpt-7" in line


def test_unusable_thresholds_file_is_one_error_line(blank_model, tmp_path):
    model = tmp_path / "model"
    shutil.copytree(blank_model, model)
    (model / sync.THRESHOLDS_NAME).write_text('{"min_confidence": -1}')
    line = one_error_line(run_sync(f"--video={grey_video(tmp_path / 'clip.mp4')}",
                                   f"--checkpoint_dir={model}"))
    assert sync.THRESHOLDS_NAME in line and ">= 0" in line


def test_video_without_audio_is_one_error_line(blank_model, tmp_path):
    video = grey_video(tmp_path / "mute.mp4", audio=False)
    line = one_error_line(run_sync(f"--video={video}", f"--checkpoint_dir={blank_model}"))
    assert "no audio stream" in line and "mute.mp4" in line


def test_unusable_audio_file_is_one_error_line(blank_model, tmp_path):
    video = grey_video(tmp_path / "clip.mp4")
    mute = grey_video(tmp_path / "mute.mp4", audio=False)
    line = one_error_line(run_sync(f"--video={video}", f"--audio={mute}",
                                   f"--checkpoint_dir={blank_model}"))
    assert "mute.mp4: no audio stream" in line
    line = one_error_line(run_sync(f"--video={video}", f"--audio={tmp_path / 'none.wav'}"))
    assert "--audio=" in line and "is not a file" in line
    line = one_error_line(run_sync(f"--video={tmp_path}", f"--audio={video}"))
    assert "one --video file" in line


def test_a_folder_of_which_no_video_can_be_checked_names_each(blank_model, tmp_path):
    folder = tmp_path / "unusable"
    folder.mkdir()
    grey_video(folder / "wall.mp4")
    grey_video(folder / "mute.mp4", audio=False)
    (folder / "empty.mp4").write_bytes(b"")
    result = run_sync(f"--video={folder}", f"--checkpoint_dir={blank_model}")
    assert "none of the 3 videos" in one_error_line(result)
    assert f"{folder / 'wall.mp4'}: no face found in any frame" in result.stderr
    assert f"{folder / 'mute.mp4'}: no audio stream" in result.stderr
    assert f"{folder / 'empty.mp4'}: empty file" in result.stderr


def test_bad_flags_and_missing_model_are_one_error_line(tmp_path):
    video = grey_video(tmp_path / "clip.mp4")
    assert "--max_offset" in one_error_line(run_sync(f"--video={video}", "--max_offset=0"))
    assert "--window_step" in one_error_line(run_sync(f"--video={video}", "--window_step=0"))
    # output paths that cannot be files are refused with the flags, before any video
    (tmp_path / "taken").write_text("a file")
    line = one_error_line(run_sync(f"--video={video}", f"--json={tmp_path / 'taken' / 'o.json'}"))
    assert line.startswith("error: --json=") and f"{tmp_path / 'taken'} is not a directory" in line
    line = one_error_line(run_sync(f"--video={video}", f"--csv={tmp_path / 'taken/a/o.csv'}"))
    assert line.startswith("error: --csv=") and "is not a directory" in line
    assert "is a directory" in one_error_line(run_sync(f"--video={video}", f"--plot={tmp_path}"))
    line = one_error_line(run_sync(f"--video={video}", f"--checkpoint_dir={tmp_path}"))
    assert "no checkpoint" in line


@pytest.fixture(scope="module")
def demo_model(tmp_path_factory):
    """A model trained on 8 demo videos for 2 epochs of 16-pair batches (the fewest that
    measured reliably: 1 epoch left some offsets unrecovered)."""
    from avmatch.config import TrainConfig
    from avmatch.training import Trainer
    from avprep.demo_data import ensure_demo_dataset

    root = tmp_path_factory.mktemp("sync_demo")
    data = ensure_demo_dataset(str(root / "data"), log=lambda *_: None, num_videos=8,
                               seconds=8.0, num_workers=1)
    config = TrainConfig(train_dir=str(root / "run"), batch_size=16, num_epochs=2,
                         precise_bn_batches=20, log_every_n_steps=1000)
    Trainer(config, data).run()
    return config.train_dir


@pytest.fixture(scope="module")
def shifted_demo(tmp_path_factory):
    """A folder with copies of an unseen demo speaker's video, its audio shifted by
    OFFSETS_MS, and a video without audio."""
    from avprep.demo_data import make_demo_video
    from avprep.shift import write_shifted_copies

    root = tmp_path_factory.mktemp("shifted")
    source = root / "speaker30.mp4"
    make_demo_video(source, 30, seconds=5.0)
    folder = root / "copies"
    write_shifted_copies(source, folder, OFFSETS_MS)
    grey_video(folder / "mute.mp4", audio=False)
    return folder


def test_demo_model_recovers_each_shift_within_one_frame(demo_model, shifted_demo, tmp_path):
    report = tmp_path / "sync.json"
    result = run_sync(f"--video={shifted_demo}", f"--checkpoint_dir={demo_model}",
                      f"--json={report}", f"--csv={tmp_path / 'sync.csv'}",
                      f"--plot={tmp_path / 'sync.png'}")
    assert result.returncode == 0, result.stderr[-3000:]
    assert "LSE-D=" in result.stdout and "mute.mp4" in result.stdout
    assert ("shifted copies: 5/5 within +/-1 frame of the shift, 5/5 relative to the "
            "unshifted copy, 1/1 unshifted within +/-1 frame") in result.stdout
    payload = json.loads(report.read_text())
    assert payload["window_step_frames"] == 1
    assert payload["thresholds"] == {"min_confidence": 8.0, "min_evidence": 0.0,
                                     "in_sync_frames": 1, "min_seconds": 2.0}
    videos = {Path(v["video"]).name: v for v in payload["videos"]}
    assert videos["mute.mp4"]["status"] == "skipped"
    for offset in OFFSETS_MS:
        found = videos[f"speaker30_audio{offset:+d}ms.mp4"]
        expected = round(offset * FPS / 1000.0)
        assert abs(found["best_offset_frames"] - expected) <= 1, (offset, found)
        assert found["num_windows"] >= 20 and found["confidence"] > 0
        assert found["evidence"] > 0
        assert found["verdict"] == sync.verdict(found["best_offset_frames"],
                                                found["confidence"],
                                                found["num_windows"] / FPS, FPS,
                                                evidence=found["evidence"])
    assert videos["speaker30_audio+0ms.mp4"]["verdict"] in (sync.IN_SYNC, sync.CANNOT_TELL)
    assert payload["lse"]["videos"] == len(OFFSETS_MS)
    assert payload["shift_recovery"]["copies"] == payload["shift_recovery"]["absolute"] == 5
    assert payload["shift_copies_not_checked"] == 0
    assert (tmp_path / "sync.csv").read_text().count("\n") == len(OFFSETS_MS) + 2
    header = (tmp_path / "sync.csv").read_text().splitlines()[0].split(",")
    assert header[header.index("confidence") + 1] == "evidence"
    assert (tmp_path / "sync.png").stat().st_size > 0


def test_the_lips_are_compared_with_another_files_audio(demo_model, shifted_demo, tmp_path):
    report = tmp_path / "other.json"
    late = shifted_demo / "speaker30_audio+200ms.mp4"
    result = run_sync(f"--video={shifted_demo / 'speaker30_audio+0ms.mp4'}", f"--audio={late}",
                      f"--checkpoint_dir={demo_model}", f"--json={report}")
    assert result.returncode == 0, result.stderr[-3000:]
    payload = json.loads(report.read_text())
    assert payload["audio"] == str(late)
    assert abs(payload["videos"][0]["best_offset_frames"] - 6) <= 1  # the other file's 200 ms


def test_a_damaged_shifted_copy_is_named_and_counted_apart(demo_model, shifted_demo,
                                                           tmp_path):
    folder = tmp_path / "copies"
    folder.mkdir()
    for offset in (0, 100):
        shutil.copy(shifted_demo / f"speaker30_audio{offset:+d}ms.mp4", folder)
    (folder / "speaker30_audio+300ms.mp4").write_bytes(b"")
    result = run_sync(f"--video={folder}", f"--checkpoint_dir={demo_model}",
                      f"--json={tmp_path / 'sync.json'}")
    assert result.returncode == 0, result.stderr[-3000:]
    assert "speaker30_audio+300ms.mp4" in result.stdout and "empty file" in result.stdout
    assert ("shifted copies: 2/2 within +/-1 frame of the shift, 2/2 relative to the unshifted "
            "copy, 1/1 unshifted within +/-1 frame (1 more not checked, listed above)"
            ) in result.stdout
    payload = json.loads((tmp_path / "sync.json").read_text())
    assert payload["shift_recovery"]["copies"] == 2 and payload["shift_copies_not_checked"] == 1


def test_one_video_with_segments_and_a_chosen_checkpoint(demo_model, shifted_demo, tmp_path):
    import tensorflow as tf

    first_epoch = tf.train.get_checkpoint_state(demo_model).all_model_checkpoint_paths[0]
    result = run_sync(f"--video={shifted_demo / 'speaker30_audio+100ms.mp4'}",
                      f"--checkpoint_dir={demo_model}", "--segment_seconds=2",
                      f"--checkpoint={first_epoch}", f"--json={tmp_path / 'one.json'}")
    assert result.returncode == 0, result.stderr[-3000:]
    assert "best offset" in result.stdout and "shifted copies" not in result.stdout
    assert " at every offset): " in result.stdout
    payload = json.loads((tmp_path / "one.json").read_text())
    assert payload["checkpoint"] == first_epoch and payload["shift_recovery"] is None
    video = payload["videos"][0]
    assert [s["start_seconds"] for s in video["segments"]] == [0.0, 2.0, 4.0][:len(
        video["segments"])] and len(video["segments"]) >= 2
    assert sum(s["num_windows"] for s in video["segments"]) == video["complete_windows"]
    assert video["num_windows"] > video["complete_windows"]  # windows near the ends too


def test_ship_model_ships_the_best_epoch_or_a_chosen_one(demo_model, tmp_path):
    import tensorflow as tf

    from avmatch.checkpoints import checkpoint_to_score

    first_epoch = tf.train.get_checkpoint_state(demo_model).all_model_checkpoint_paths[0]
    output = tmp_path / "model"
    for chosen, expected in ((None, checkpoint_to_score(demo_model)), (first_epoch, first_epoch)):
        args = [f"--run_dir={demo_model}", f"--output_dir={output}"]
        result = subprocess.run([sys.executable, str(REPO / "evaluation" / "ship_model.py"),
                                 *args, *([f"--checkpoint={chosen}"] if chosen else [])],
                                cwd=REPO, capture_output=True, text=True, timeout=600)
        assert result.returncode == 0, result.stderr[-3000:]
        (output / sync.THRESHOLDS_NAME).write_text('{"min_confidence": 9.5}')  # kept next time
        config = json.loads((output / "config.json").read_text())
        assert config["shipped_from"] == os.path.abspath(expected)
    assert sync.read_thresholds(str(output)).min_confidence == 9.5


def test_ship_model_ships_the_moving_averages_when_asked(demo_model, tmp_path):
    from avmatch import checkpoints
    from avmatch.config import read_saved_run
    from avmatch.ema import WeightAverages
    from avmatch.instance import MatchingInstance

    source = checkpoints.latest_checkpoint(demo_model)
    command = [sys.executable, str(REPO / "evaluation" / "ship_model.py"),
               f"--run_dir={demo_model}", f"--output_dir={tmp_path / 'ema'}",
               "--use_moving_average"]
    refused = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=600)
    assert refused.returncode == 2 and "needs --checkpoint" in refused.stderr
    towers_only = checkpoints.checkpoint_to_score(demo_model)  # best/: no averages
    refused = subprocess.run([*command, f"--checkpoint={towers_only}"],
                             cwd=REPO, capture_output=True, text=True, timeout=600)
    assert refused.returncode == 2 and "Traceback" not in refused.stderr
    assert refused.stderr.strip().splitlines()[-1].startswith(
        f"error: checkpoint {towers_only} holds no moving averages")
    result = subprocess.run([*command, f"--checkpoint={source}"],
                            cwd=REPO, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    assert json.loads((tmp_path / "ema" / "config.json").read_text())["moving_average"]
    trained, shipped = MatchingInstance.create(), MatchingInstance.create()
    averages = WeightAverages(trained.trainable_variables,
                              read_saved_run(demo_model).train.moving_average_decay)
    checkpoints.restore_towers(source, trained, averages)
    checkpoints.restore_towers(checkpoints.checkpoint_to_score(str(tmp_path / "ema")), shipped)
    moved = [not np.array_equal(a.numpy(), w.numpy())
             for a, w in zip(averages.shadows, trained.trainable_variables)]
    assert any(moved)  # the averages differ from the weights, so the test tells them apart
    for average, weight in zip(averages.shadows, shipped.trainable_variables):
        np.testing.assert_array_equal(average.numpy(), weight.numpy())


def test_ship_model_averages_the_towers_of_several_models(demo_model, tmp_path):
    import tensorflow as tf

    from avmatch import checkpoints
    from avmatch.instance import MatchingInstance

    first_epoch = tf.train.get_checkpoint_state(demo_model).all_model_checkpoint_paths[0]
    script = [sys.executable, str(REPO / "evaluation" / "ship_model.py"),
              f"--run_dir={demo_model}"]
    member = subprocess.run([*script, f"--checkpoint={first_epoch}",
                             f"--output_dir={tmp_path / 'first'}"],
                            cwd=REPO, capture_output=True, text=True, timeout=600)
    assert member.returncode == 0, member.stderr[-3000:]
    soup = subprocess.run([*script, f"--output_dir={tmp_path / 'soup'}",
                           f"--average_with={tmp_path / 'first'}"],
                          cwd=REPO, capture_output=True, text=True, timeout=600)
    assert soup.returncode == 0, soup.stderr[-3000:]
    config = json.loads((tmp_path / "soup" / "config.json").read_text())
    assert config["averaged_with"] == [str(tmp_path / "first")]
    models = [MatchingInstance.create() for _ in range(3)]
    for model, path in zip(models, [checkpoints.checkpoint_to_score(demo_model), first_epoch,
                                    checkpoints.checkpoint_to_score(str(tmp_path / "soup"))]):
        checkpoints.restore_towers(path, model)
    best, first, averaged = ([v.numpy() for v in m.speech_net.variables + m.mouth_net.variables]
                             for m in models)
    assert any(not np.array_equal(b, f) for b, f in zip(best, first))
    for b, f, a in zip(best, first, averaged):
        np.testing.assert_allclose(a, (b.astype(np.float64) + f) / 2, rtol=1e-6, atol=1e-6)
    missing = subprocess.run([*script, f"--output_dir={tmp_path / 'x'}",
                              f"--average_with={tmp_path / 'none'}"],
                             cwd=REPO, capture_output=True, text=True, timeout=600)
    assert missing.returncode == 2 and "Traceback" not in missing.stderr
    assert missing.stderr.strip().splitlines()[-1] == (
        f"error: --average_with: no model folder {tmp_path / 'none'}")
