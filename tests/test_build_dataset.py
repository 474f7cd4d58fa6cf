"""End-to-end dataset builds: records, manifest, bad inputs, resuming, machine shards."""
import glob
import multiprocessing
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import av
import numpy as np
import pytest

from avprep import build, dataset_writer, demo_data, pairs, records, splits
from avprep.video_io import write_video

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "data_preparation" / "build_dataset.py"


def _config(input_dir, output_dir, **kwargs):
    return build.BuildConfig(input_dir=str(input_dir), output_dir=str(output_dir), **kwargs)


def _read_records(output_dir, manifest):
    """Every record of the dataset as a list of dicts of numpy values, per split."""
    import tensorflow as tf
    shape = manifest["shapes"]["speech"]
    result = {}
    for split, info in manifest["splits"].items():
        files = [os.path.join(output_dir, name) for name in info["shards"]]
        result[split] = [{k: v.numpy() for k, v in records.parse_window(s, shape).items()}
                         for s in tf.data.TFRecordDataset(files)] if files else []
    return result


@pytest.fixture(scope="module")
def demo_videos(tmp_path_factory):
    """Two short synthetic talking-face videos (2 s each)."""
    folder = tmp_path_factory.mktemp("demo_videos")
    for index in range(2):
        demo_data.make_demo_video(folder / f"speaker{index}.mp4", index, seconds=2.0)
    return folder


def _audio_only_mp4(path):
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream("aac", rate=16000, layout="mono")
        samples = np.zeros((1, 1024), np.float32)
        for _ in range(20):
            frame = av.AudioFrame.from_ndarray(samples, format="fltp", layout="mono")
            frame.sample_rate = 16000
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)


def test_demo_video_round_trip_through_records(demo_videos, tmp_path):
    source = tmp_path / "in"
    source.mkdir()
    shutil.copy(demo_videos / "speaker0.mp4", source)
    summary = build.build_dataset(_config(source, tmp_path / "out"), log=lambda _: None)
    manifest = records.read_manifest(tmp_path / "out")
    assert summary["gathered"] and summary["ok"] == 1 and summary["windows"] > 5
    assert manifest["ignored_files"] == []
    assert manifest["shapes"] == {"mouth": [9, 60, 100], "speech": [15, 40, 3]}
    assert manifest["format_version"] == records.FORMAT_VERSION
    assert manifest["features"]["speech"]["kind"] == "mfec"
    read = _read_records(tmp_path / "out", manifest)
    total = sum(len(v) for v in read.values())
    assert total == summary["windows"] == sum(i["windows"] for i in manifest["splits"].values())
    split = manifest["files"][0]["split"]
    info = manifest["splits"][split]
    assert info["genuine"] == info["impostor"] == info["windows"] == len(read[split])
    assert manifest["files"][0]["status"] == "ok" and manifest["files"][0]["windows"] == total
    part = dataset_writer.load_part(str(tmp_path / "out"), "speaker0")
    by_start = {int(r["start_frame"]): r for r in read[split]}
    for i, start in enumerate(part["start_frame"]):
        record = by_start[int(start)]
        np.testing.assert_array_equal(record["mouth"], part["mouth"][i])
        np.testing.assert_array_equal(record["speech_genuine"], part["speech_genuine"][i])
        np.testing.assert_array_equal(record["speech_impostor"], part["speech_impostor"][i])
        assert record["impostor_shift"] == pytest.approx(part["impostor_shift"][i])
        assert record["video_id"] == b"speaker0"


def test_bad_inputs_are_skipped_with_reasons(demo_videos, tmp_path):
    source = tmp_path / "in"
    source.mkdir()
    shutil.copy(demo_videos / "speaker0.mp4", source / "good.mp4")
    (source / "empty.mp4").write_bytes(b"")
    (source / "corrupt.mp4").write_bytes((demo_videos / "speaker1.mp4").read_bytes()[:3000])
    _audio_only_mp4(source / "audio_only.mp4")
    frames = np.full((30, 64, 64, 3), 128, np.uint8)
    write_video(source / "silent_film.mp4", frames, 30.0)
    write_video(source / "no_face.mp4", frames, 30.0, audio=np.zeros(16000, np.float32))
    write_video(source / "short.mp4", frames[:15], 30.0, audio=np.zeros(8000, np.float32))
    (source / "speech.wav").write_bytes(b"RIFF")  # audio beside the videos is not read
    messages = []
    summary = build.build_dataset(_config(source, tmp_path / "out"), log=messages.append)
    manifest = records.read_manifest(tmp_path / "out")
    assert manifest["ignored_files"] == [{"path": "speech.wav", "reason": "not a video (.wav)"}]
    assert summary["ignored"] == manifest["ignored_files"]
    assert any(m.startswith("ignored 1 input files: speech.wav (not a video") for m in messages)
    files = {f["path"]: f for f in manifest["files"]}
    assert files["good.mp4"]["status"] == "ok" and summary["ok"] == 1
    reasons = {path: f["reason"] for path, f in files.items() if f["status"] == "skipped"}
    assert set(reasons) == {"empty.mp4", "corrupt.mp4", "audio_only.mp4", "silent_film.mp4",
                            "no_face.mp4", "short.mp4"}
    assert "too short" in reasons["short.mp4"]
    assert "empty" in reasons["empty.mp4"]
    assert "no video stream" in reasons["audio_only.mp4"]
    assert "no audio stream" in reasons["silent_film.mp4"]
    assert "no face" in reasons["no_face.mp4"]
    assert reasons["corrupt.mp4"]
    assert all(f["windows"] == 0 for f in files.values() if f["status"] == "skipped")


def _run_script(*args, **kwargs):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    return subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True,
                          text=True, env=env, timeout=300, **kwargs)


def test_script_exit_codes(tmp_path):
    result = _run_script(f"--input_dir={tmp_path / 'absent'}", f"--output_dir={tmp_path / 'o'}")
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1].startswith("error: --input_dir")
    assert "Traceback" not in result.stderr
    result = _run_script(f"--input_dir={tmp_path}", f"--output_dir={tmp_path / 'o'}",
                         "--window_hop=0.05")
    assert result.returncode == 2 and "window hop" in result.stderr
    result = _run_script(f"--input_dir={tmp_path}", f"--output_dir={tmp_path / 'o'}",
                         "--impostor_shift_max=0.3")  # below --impostor_shift's 0.5
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines()[-1].startswith("error: impostor_shift_max (0.3)")
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "empty.mp4").write_bytes(b"")
    result = _run_script(f"--input_dir={bad}", f"--output_dir={tmp_path / 'o2'}")
    assert result.returncode == 1
    assert "skipped empty" in result.stderr and "Traceback" not in result.stderr
    # nothing usable: no manifest, so no empty dataset looks finished
    assert not (tmp_path / "o2" / records.MANIFEST_NAME).exists()
    assert "dataset:" not in result.stdout


@pytest.mark.parametrize("argument,expected", [
    ("--mouth_border_fraction=nan", "mouth_border_fraction must be within [0, 1], got nan"),
    ("--mouth_border_fraction=-0.1", "mouth_border_fraction must be within [0, 1]"),
    ("--silence_db=nan", "silence_db must be a finite number, got nan"),
    ("--silence_db=0", "silence_db must be positive"),
    ("--static_threshold=nan", "static_threshold must be a finite number, got nan"),
    ("--static_threshold=inf", "static_threshold must be a finite number, got inf"),
    ("--static_threshold=256", "static_threshold must be within [0, 255]"),
    ("--impostor_shift=inf", "impostor_shift must be a finite number, got inf"),
])
def test_settings_that_cannot_work_are_one_line(tmp_path, argument, expected):
    """Refused with the flags, before any video is read or anything written."""
    result = _run_script(f"--input_dir={tmp_path}", f"--output_dir={tmp_path / 'o'}", argument)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and expected in errors[0]
    assert not (tmp_path / "o").exists()


def test_folder_without_video_is_the_error_alone(tmp_path):
    source = tmp_path / "no_video"
    source.mkdir()
    (source / "speech.wav").write_bytes(b"RIFF")
    result = _run_script(f"--input_dir={source}", f"--output_dir={tmp_path / 'out'}")
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stdout == ""
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and f"no video in {source}" in errors[0]
    assert "1 other files ignored" in errors[0]
    assert not (tmp_path / "out").exists()


def _keys(output_dir):
    manifest = records.read_manifest(output_dir)
    read = _read_records(output_dir, manifest)
    keys = [(r["video_id"], int(r["start_frame"])) for rows in read.values() for r in rows]
    return manifest, keys


def test_killed_build_resumes_without_duplicates(demo_videos, tmp_path):
    source = tmp_path / "in"
    shutil.copytree(demo_videos, source)
    shutil.copy(demo_videos / "speaker0.mp4", source / "speaker2.mp4")
    output = tmp_path / "out"
    process = subprocess.Popen([sys.executable, str(SCRIPT), f"--input_dir={source}",
                                f"--output_dir={output}"], stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while not glob.glob(str(output / "parts" / "speaker*.json")):
        assert process.poll() is None and time.monotonic() < deadline
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    process.wait()
    done_before = len(glob.glob(str(output / "parts" / "speaker*.json")))
    assert 1 <= done_before <= 3 and not (output / records.MANIFEST_NAME).exists()
    summary = build.build_dataset(_config(source, output), log=lambda _: None)
    assert summary["reused"] == done_before and summary["processed"] == 3 - done_before
    manifest, keys = _keys(output)
    assert len(keys) == len(set(keys)) == summary["windows"]
    assert sum(i["windows"] for i in manifest["splits"].values()) == len(keys)
    again = build.build_dataset(_config(source, output), log=lambda _: None)
    assert again["processed"] == 0 and _keys(output)[1] == keys


def test_machine_shards_then_gather(demo_videos, tmp_path):
    output = tmp_path / "out"
    counts = []
    for index in range(2):
        summary = build.build_dataset(_config(demo_videos, output, shard_index=index,
                                              num_shards=2), log=lambda _: None)
        assert summary["processed"] == 1 and not summary["gathered"]
        counts.append(summary["windows"])
    assert not (output / records.MANIFEST_NAME).exists()
    summary = build.build_dataset(_config(demo_videos, output), log=lambda _: None)
    assert summary["processed"] == 0 and summary["reused"] == 2 and summary["gathered"]
    manifest, keys = _keys(output)
    assert len(keys) == len(set(keys)) == sum(counts)


def test_other_settings_into_the_same_output_are_refused(demo_videos, tmp_path):
    build.build_dataset(_config(demo_videos, tmp_path, num_output_shards=1), log=lambda _: None)
    with pytest.raises(ValueError, match="other settings"):
        build.build_dataset(_config(demo_videos, tmp_path,
                                    window=pairs.WindowConfig(hop_seconds=0.2)),
                            log=lambda _: None)


def test_other_video_impostors_come_from_another_video(demo_videos, tmp_path):
    config = _config(demo_videos, tmp_path, split=splits.SplitConfig("flat", 1.0, 0.0, 0.0),
                     window=pairs.WindowConfig(impostor_other_video_fraction=0.5))
    summary = build.build_dataset(config, log=lambda _: None)
    manifest, _ = _keys(tmp_path)
    rows = _read_records(tmp_path, manifest)["train"]
    other = [r for r in rows if r["impostor_shift"] == 0.0]
    assert manifest["splits"]["train"]["impostor_other_video"] == len(other) > 0
    donors = {v: dataset_writer.load_part(str(tmp_path), v)["speech_genuine"]
              for v in ("speaker0", "speaker1")}
    for row in other:
        donor = donors["speaker1" if row["video_id"] == b"speaker0" else "speaker0"]
        assert any(np.array_equal(row["speech_impostor"], cube) for cube in donor)
    assert len(rows) == summary["windows"]


def _tensorflow_loaded_after_work(entry, config):
    build._init_worker(config)
    build._work(entry)
    return "tensorflow" in sys.modules


def test_workers_do_not_import_tensorflow(demo_videos, tmp_path):
    entry = splits.list_videos(demo_videos)[0]
    config = _config(demo_videos, tmp_path)
    with multiprocessing.get_context("spawn").Pool(1) as pool:
        assert pool.apply(_tensorflow_loaded_after_work, (entry, config)) is False


def test_one_shared_real_video(shared_videos, tmp_path):
    source = tmp_path / "in"
    source.mkdir()
    shutil.copy(shared_videos / "pcavs_Input_00010.mp4", source)
    summary = build.build_dataset(_config(source, tmp_path / "out"), log=lambda _: None)
    manifest, keys = _keys(tmp_path / "out")
    assert summary["ok"] == 1 and len(keys) == summary["windows"] >= 30
    assert manifest["files"][0]["active_frames"] == manifest["files"][0]["frames"]


def test_drawn_impostor_shifts_reach_the_records_and_the_manifest(demo_videos, tmp_path):
    window = pairs.WindowConfig(impostor_shift=0.08, impostor_shift_max=0.5)
    config = _config(demo_videos, tmp_path, split=splits.SplitConfig("flat", 1.0, 0.0, 0.0),
                     window=window)
    summary = build.build_dataset(config, log=lambda _: None)
    manifest, _ = _keys(tmp_path)
    assert manifest["features"]["window"]["impostor_shift_max"] == 0.5
    shifts = np.abs([r["impostor_shift"] for r in _read_records(tmp_path, manifest)["train"]])
    assert len(shifts) == summary["windows"] and shifts.min() >= 0.08 - 1e-6
    assert shifts.max() <= 0.5 + 1e-6 and len(np.unique(np.round(shifts / 0.02))) > 5
