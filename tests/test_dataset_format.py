"""The dataset format's one owner (avprep.records) and what its reader checks on open: the
format version, each shard's size against the manifest, and unreadable records named by
shard. Datasets here are gathered by the real writer from parts of random windows, so no
video is decoded."""
import json
import os
import shutil

import numpy as np
import pytest
import tensorflow as tf

from avmatch import config as run_config
from avmatch.input_pipeline import (DatasetError, load_dataset_info, naming_damaged_shards,
                                    window_batches)
from avmatch.nets.nets_factory import NETWORKS
from avprep import build, dataset_writer, demo_data, pairs, records, splits
from avprep.speech_features import SpeechFeatureConfig
from avprep.video_io import DecodeError

SPEECH_SHAPE = (records.SPEECH_FRAMES, records.NUM_FILTERS, 3)
VIDEOS = {"a": "train", "b": "train", "c": "test"}
WINDOWS_PER_VIDEO = 6
IGNORED = [{"path": "speech.wav", "reason": "not a video (.wav)"}]


def _windows(rng, count):
    speech = (count,) + SPEECH_SHAPE
    return pairs.Windows(
        mouth=rng.integers(0, 256, (count,) + records.MOUTH_SHAPE, dtype=np.uint8),
        speech_genuine=rng.normal(size=speech).astype(np.float32),
        speech_impostor=rng.normal(size=speech).astype(np.float32),
        start_frame=np.arange(count, dtype=np.int64) * 3,
        impostor_shift=np.full(count, 0.5, np.float32), dropped={})


def gather_dataset(output_dir, num_output_shards=2, videos=None, seed=0):
    """A dataset written by dataset_writer.gather (parts of random windows); its manifest.
    videos: {video id: split}, VIDEOS by default."""
    rng = np.random.default_rng(seed)
    entries, statuses = [], {}
    for video_id, split in (videos or VIDEOS).items():
        entries.append(splits.VideoEntry(f"/in/{video_id}.mp4", f"{video_id}.mp4", video_id,
                                         split, speaker=video_id, source="in"))
        status = {"video_id": video_id, "status": "ok", "reason": "",
                  "windows": WINDOWS_PER_VIDEO}
        statuses[video_id] = dataset_writer.write_part(
            str(output_dir), video_id, _windows(rng, WINDOWS_PER_VIDEO), status)
    return dataset_writer.gather(str(output_dir), entries, statuses, SPEECH_SHAPE, {},
                                 num_output_shards, pairs.WindowConfig(),
                                 ignored_files=IGNORED)


@pytest.fixture(scope="module")
def gathered(tmp_path_factory):
    directory = tmp_path_factory.mktemp("gathered")
    return directory, gather_dataset(directory)


@pytest.fixture
def copy(gathered, tmp_path):
    """A private copy of the gathered dataset, to damage."""
    target = tmp_path / "dataset"
    shutil.copytree(gathered[0], target)
    return target


def _edit_manifest(directory, change):
    manifest = json.loads((directory / records.MANIFEST_NAME).read_text())
    change(manifest)
    (directory / records.MANIFEST_NAME).write_text(json.dumps(manifest))


def _shard(directory, split, index=0):
    """Path of a shard of the gathered dataset (2 shards in each of train and test)."""
    return directory / records.shard_name(split, index, 2)


# -- one definition of the format ---------------------------------------------------------
def test_shape_constants_are_defined_once_and_used_everywhere():
    assert records.MOUTH_SHAPE == (9, 60, 100) and records.SPEECH_FRAMES == 15
    assert records.FPS == 30.0 and records.SAMPLE_RATE == 16000
    window = pairs.WindowConfig()
    assert window.window_frames == records.WINDOW_FRAMES and window.fps == records.FPS
    assert window.speech_frames == records.SPEECH_FRAMES
    assert SpeechFeatureConfig().sample_rate == records.SAMPLE_RATE
    assert SpeechFeatureConfig().num_filters == records.NUM_FILTERS
    assert NETWORKS["lipread_mouth"].input_shape == records.MOUTH_SHAPE
    assert NETWORKS["lipread_speech"].input_shape[:2] == (records.SPEECH_FRAMES,
                                                          records.NUM_FILTERS)


def test_videos_are_decoded_at_the_feature_config_sample_rate(monkeypatch, tmp_path):
    """Decoding and features can never disagree: build decodes at config.speech's rate."""
    asked = {}

    def fake_decode(path, **kwargs):
        asked.update(kwargs)
        raise DecodeError("stop here")

    monkeypatch.setattr(build, "decode_video", fake_decode)
    config = build.BuildConfig(input_dir=str(tmp_path), output_dir=str(tmp_path / "out"),
                               speech=SpeechFeatureConfig(sample_rate=8000))
    entry = splits.VideoEntry(str(tmp_path / "v.mp4"), "v.mp4", "v", "train")
    _, status = build.process_video(entry, config, tracker=None)
    assert status["status"] == "skipped" and asked["sample_rate"] == 8000
    assert asked["fps"] == records.FPS


# -- what the writer records --------------------------------------------------------------
def test_manifest_keeps_each_shard_size_and_record_count(gathered):
    directory, manifest = gathered
    assert manifest["format_version"] == records.FORMAT_VERSION == 1
    assert records.read_manifest(directory) == manifest
    for split, entry in manifest["splits"].items():
        sizes = records.shard_sizes(entry)
        assert sorted(sizes) == sorted(entry["shards"])
        assert sum(size["records"] for size in sizes.values()) == entry["windows"]
        for name, size in sizes.items():
            path = directory / name
            assert os.path.getsize(path) == size["bytes"]
            assert sum(1 for _ in tf.data.TFRecordDataset(str(path))) == size["records"]
    assert manifest["splits"]["train"]["windows"] == 2 * WINDOWS_PER_VIDEO
    assert not [name for name in os.listdir(directory) if name.startswith(".tmp-")]


def test_manifest_lists_the_ignored_input_files(gathered):
    assert gathered[1]["ignored_files"] == IGNORED


# -- what the reader checks on open -------------------------------------------------------
def test_a_dataset_of_another_format_version_is_refused(copy):
    _edit_manifest(copy, lambda manifest: manifest.update(format_version=2))
    with pytest.raises(ValueError, match="format version 2, this code reads version 1"):
        records.read_manifest(copy)
    with pytest.raises(DatasetError, match="format version 2, this code reads version 1"):
        load_dataset_info(str(copy), required_splits=("train",))


def test_a_manifest_without_version_is_refused(copy):
    _edit_manifest(copy, lambda manifest: manifest.pop("format_version"))
    with pytest.raises(DatasetError, match="format version None"):
        load_dataset_info(str(copy))


def test_a_truncated_shard_is_named_on_open(copy):
    shard = _shard(copy, "train", 1)
    data = shard.read_bytes()
    shard.write_bytes(data[:len(data) // 2])
    with pytest.raises(DatasetError, match=f"{shard.name} is damaged: {len(data) // 2} bytes, "
                                           f"the manifest says {len(data)}"):
        load_dataset_info(str(copy), required_splits=("train",))
    load_dataset_info(str(copy), required_splits=("test",))  # only the splits to be read


def test_a_missing_or_unlisted_shard_is_named(copy):
    shard = _shard(copy, "train", 1)
    stray = copy / records.shard_name("train", 2, 3)
    shutil.copy(shard, stray)
    with pytest.raises(DatasetError, match=f"{stray.name} is not listed"):
        load_dataset_info(str(copy))
    stray.unlink()
    shard.unlink()
    with pytest.raises(DatasetError, match=f"{shard.name} is missing"):
        load_dataset_info(str(copy))


def test_a_manifest_without_sizes_skips_the_size_check(copy):
    """Datasets written before sizes were kept (same format version) still open."""
    def drop_sizes(manifest):
        for entry in manifest["splits"].values():
            entry.pop("shard_sizes")

    _edit_manifest(copy, drop_sizes)
    shard = _shard(copy, "train", 1)
    shard.write_bytes(shard.read_bytes()[:-100])
    info = load_dataset_info(str(copy))
    assert info.windows["train"] == 2 * WINDOWS_PER_VIDEO


def test_an_unreadable_record_during_a_pass_names_the_shard(copy):
    shard = _shard(copy, "test")
    data = bytearray(shard.read_bytes())
    data[len(data) * 3 // 4] ^= 0xFF  # a later record: the open's first-record check passes
    shard.write_bytes(bytes(data))
    info = load_dataset_info(str(copy), required_splits=("test",))
    with pytest.raises(DatasetError, match=f"{shard.name} is damaged: corrupted record"):
        with naming_damaged_shards(str(copy)):
            for _ in window_batches(info, "test", 2):
                pass


def test_an_unreadable_first_record_is_named_on_open(copy):
    shard = _shard(copy, "test")
    data = bytearray(shard.read_bytes())
    data[100] ^= 0xFF
    shard.write_bytes(bytes(data))
    with pytest.raises(DatasetError, match=f"{shard.name} is damaged"):
        load_dataset_info(str(copy), required_splits=("test",))


# -- the scripts' shared pieces: config.json and the demo fallback ------------------------
def test_config_json_is_read_into_the_train_config(tmp_path):
    saved = run_config.TrainConfig(batch_size=8, data_dir="/data/x", trainable_scopes=("a",),
                                   moving_average_decay=0.5)
    features = {"speech": {"kind": "mfec"}, "crop": {"border_fraction": None}}
    payload = dict(saved.to_dict(), features=features, key_of_a_later_version=1)
    (tmp_path / run_config.RUN_CONFIG_NAME).write_text(json.dumps(payload))
    assert run_config.read_saved_run(str(tmp_path)) == run_config.SavedRun(saved, features)
    assert run_config.read_saved_run(str(tmp_path / "none")) == run_config.SavedRun()
    assert run_config.SavedRun().train == run_config.TrainConfig()
    (tmp_path / run_config.RUN_CONFIG_NAME).write_text("{not json")
    with pytest.raises(ValueError, match="not valid JSON"):
        run_config.read_saved_run(str(tmp_path))


def test_dataset_or_demo_prefers_the_given_then_the_trained_on_dataset(monkeypatch, tmp_path):
    monkeypatch.setattr(demo_data, "ensure_demo_dataset", lambda log: "DEMO")
    quiet = {"log": lambda _: None}
    assert demo_data.dataset_or_demo("given", str(tmp_path), **quiet) == "given"
    assert demo_data.dataset_or_demo("", str(tmp_path), **quiet) == str(tmp_path)
    assert demo_data.dataset_or_demo("", str(tmp_path / "gone"), **quiet) == "DEMO"
    assert demo_data.dataset_or_demo(**quiet) == "DEMO"


def test_a_capped_epoch_reads_every_kth_record_of_each_shard(gathered):
    """--max_train_windows: a fixed subset spread over every shard, counted exactly."""
    from avmatch.input_pipeline import (batches_per_epoch, load_dataset_info, subset_stride,
                                        subset_windows, window_batches)
    info = load_dataset_info(gathered[0], required_splits=("train",))
    total = info.windows["train"]
    assert subset_stride(info, "train", 0) == 1
    stride = subset_stride(info, "train", total // 3)
    assert stride == 3 or -(-total // stride) <= total // 3 + 2
    read = sum(len(batch["mouth"]) for batch in window_batches(info, "train", 4, stride=stride))
    assert read == subset_windows(info, "train", stride) < total
    shuffled = sum(len(b["mouth"]) for b in window_batches(info, "train", 4, shuffle=True,
                                                           stride=stride, drop_remainder=True))
    assert shuffled == 4 * batches_per_epoch(info, "train", 4, stride)


def test_runs_hold_consecutive_windows_of_one_video(gathered):
    """run_windows: the records come back in the writer's order (video, then start) as runs,
    and only the runs are shuffled; stride > 1 is refused."""
    info = load_dataset_info(gathered[0], required_splits=("train",))
    written = [(video, start) for video in ("a", "b")
               for start in range(0, 3 * WINDOWS_PER_VIDEO, 3)]
    hashes = {tf.strings.to_hash_bucket_fast(v, 2 ** 62).numpy(): v for v in ("a", "b")}

    def read(**kwargs):
        return [(hashes[int(v)], int(s)) for batch in window_batches(info, "train", 4, **kwargs)
                for v, s in zip(batch["video"].numpy(), batch["start_frame"].numpy())]

    assert read(run_windows=3) == written
    shuffled = read(run_windows=3, shuffle=True, seed=1)
    runs = [tuple(shuffled[i:i + 3]) for i in range(0, len(shuffled), 3)]
    assert sorted(runs) == [tuple(written[i:i + 3]) for i in range(0, len(written), 3)]
    assert shuffled != written
    with pytest.raises(ValueError, match="stride 1"):
        window_batches(info, "train", 4, run_windows=3, stride=2)


class _CubeMeans:
    """A stand-in for MatchingInstance: a cube's embedding is its mean value (1-D)."""

    @staticmethod
    def _means(cubes):
        return tf.reduce_mean(tf.reshape(tf.cast(cubes, tf.float32), [tf.shape(cubes)[0], -1]),
                              axis=1, keepdims=True)

    def embed_mouth(self, mouth, training=False):
        return self._means(mouth)

    def embed_speech(self, speech, training=False):
        return self._means(speech)


def _ordered_dataset(directory, speech_lag):
    """Two training videos of WINDOWS_PER_VIDEO windows; window k's mouth cubes hold k and its
    aligned speech k + speech_lag, so with speech_lag = 1 each mouth is nearest the audio of
    the window before it."""
    entries, statuses = [], {}
    for video_id in ("a", "b"):
        k = np.arange(WINDOWS_PER_VIDEO)
        speech = np.ones((WINDOWS_PER_VIDEO,) + SPEECH_SHAPE, np.float32)
        windows = pairs.Windows(
            mouth=np.ones((WINDOWS_PER_VIDEO,) + records.MOUTH_SHAPE, np.uint8)
            * k[:, None, None, None].astype(np.uint8),
            speech_genuine=speech * (k + speech_lag)[:, None, None, None],
            speech_impostor=speech * 100.0, start_frame=k * 3,
            impostor_shift=np.full(WINDOWS_PER_VIDEO, 0.5, np.float32), dropped={})
        entries.append(splits.VideoEntry(f"/in/{video_id}.mp4", f"{video_id}.mp4", video_id,
                                         "train", speaker=video_id, source="in"))
        status = {"video_id": video_id, "status": "ok", "reason": "",
                  "windows": WINDOWS_PER_VIDEO}
        statuses[video_id] = dataset_writer.write_part(str(directory), video_id, windows, status)
    dataset_writer.gather(str(directory), entries, statuses, SPEECH_SHAPE, {}, 2,
                          pairs.WindowConfig())
    return load_dataset_info(str(directory), required_splits=("train",))


def test_offset_ranking_counts_windows_whose_own_audio_is_nearest(tmp_path):
    from avmatch.scoring import offset_ranking
    aligned = offset_ranking(_CubeMeans(), _ordered_dataset(tmp_path / "a", 0), "train", 4)
    # 12 windows in groups of 4: a0-a3, a4 a5 b0 b1, b2-b5: every window has another offset
    assert aligned["windows"] == 12 and aligned["nearest"] == 12 and aligned["share"] == 1.0
    assert aligned["chance"] == pytest.approx((8 * 1 / 4 + 4 * 1 / 2) / 12)
    lagged = offset_ranking(_CubeMeans(), _ordered_dataset(tmp_path / "b", 1), "train", 4)
    # only the first window of its video in its group has no earlier audio to prefer
    assert lagged["windows"] == 12 and lagged["nearest"] == 4
