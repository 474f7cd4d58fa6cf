"""Reading prepared datasets (see avprep.records) into batches of windows with tf.data.

A batch is a dict of W windows: mouth uint8 (W, 9, 60, 100), speech_genuine and
speech_impostor float32 (W, T, F, C); it holds 2W pairs (instance.window_pairs), so
--batch_size pairs means batch_size / 2 windows.

A dataset that cannot be used raises DatasetError (a ValueError) whose message names the
directory or the shard and what is wrong with it.
"""

import contextlib
import dataclasses
import glob
import json
import os
import re

import numpy as np
import tensorflow as tf

from avprep import records

MODEL_KEYS = ("mouth", "speech_genuine", "speech_impostor")
# windows the shuffle of runs holds (about 68 kB each: ~1.1 GB), most of a 17k-window split
_RUN_SHUFFLE_WINDOWS = 16384


class DatasetError(ValueError):
    """The dataset directory cannot be used: missing, empty, damaged, of another format
    version or of the wrong shape."""


@dataclasses.dataclass(frozen=True)
class DatasetInfo:
    """What a reader needs to know about a dataset directory."""

    data_dir: str
    speech_shape: tuple
    windows: dict  # split -> number of windows (each gives 2 pairs)
    files: dict  # split -> shard paths


def _first_line(error):
    """What a TensorFlow error says, without the graph context around it: its first line
    less the "{{function_node ...}}" prefix and the "[Op:...]" suffix."""
    message = getattr(error, "message", None) or str(error)
    line = (message.strip().splitlines() or [""])[0]
    line = re.sub(r"^\{\{[^}]*\}\}\s*", "", line)
    return re.sub(r"\s*\[Op:.*$", "", line)


def _check_first_record(path, speech_shape):
    """Raises DatasetError if the first record of `path` cannot be read or does not hold the
    manifest's shapes."""
    example = tf.train.Example()
    try:
        for raw in tf.data.TFRecordDataset(path).take(1):
            example.ParseFromString(raw.numpy())
    except tf.errors.DataLossError as error:
        raise DatasetError(f"{path} is damaged: {_first_line(error)}; rebuild the "
                           "dataset") from None
    feature = example.features.feature
    expected = {
        "mouth": int(np.prod(records.MOUTH_SHAPE)),
        "speech_genuine": 4 * int(np.prod(speech_shape)),
        "speech_impostor": 4 * int(np.prod(speech_shape)),
    }
    for key, size in expected.items():
        values = feature[key].bytes_list.value if key in feature else []
        if len(values) != 1 or len(values[0]) != size:
            got = len(values[0]) if values else 0
            raise DatasetError(
                f"{path}: field {key!r} holds {got} bytes, expected {size} "
                f"(mouth {records.MOUTH_SHAPE} uint8, speech {speech_shape} float32)"
            )


def _check_shard_sizes(data_dir, paths, sizes):
    """Raises DatasetError naming the first shard that disagrees with the manifest's sizes.

    paths: the split's shard files found on disk; sizes: {shard name: {"bytes", "records"}}
    from the manifest ({} for a manifest written before sizes were kept: nothing to check).
    A truncated shard still reads without error (TFRecord stops at the cut), so its size
    is the only sign of it.
    """
    if not sizes:
        return
    found = {os.path.basename(path): path for path in paths}
    for name in sorted(set(sizes) | set(found)):
        path = found.get(name, os.path.join(data_dir, name))
        if name not in found:
            raise DatasetError(f"{path} is missing (listed in the manifest); rebuild the dataset")
        if name not in sizes:
            raise DatasetError(f"{path} is not listed in {records.MANIFEST_NAME} (left from "
                               "another build?); rebuild the dataset")
        actual, expected = os.path.getsize(path), int(sizes[name]["bytes"])
        if actual != expected:
            raise DatasetError(
                f"{path} is damaged: {actual} bytes, the manifest says {expected} "
                f"({sizes[name]['records']} records); rebuild the dataset"
            )


def _read_manifest(data_dir):
    """The manifest dict of `data_dir`; DatasetError when absent, not JSON, or of another
    format version."""
    if not os.path.isdir(data_dir):
        raise DatasetError(f"data_dir {data_dir} does not exist or is not a directory")
    try:
        return records.read_manifest(data_dir)
    except FileNotFoundError:
        raise DatasetError(
            f"{data_dir} holds no {records.MANIFEST_NAME}: not a dataset written by "
            "data_preparation/build_dataset.py"
        ) from None
    except json.JSONDecodeError as error:
        raise DatasetError(
            f"{data_dir}/{records.MANIFEST_NAME} is not valid JSON: {error}"
        ) from None
    except ValueError as error:
        raise DatasetError(str(error)) from None


def load_dataset_info(data_dir, required_splits=("train",),
                      expected_speech=(records.SPEECH_FRAMES, records.NUM_FILTERS)):
    """Checks a dataset directory and describes it.

    Raises DatasetError, one line, when the directory does not exist, has no manifest or one
    of another format version, has no records for a required split, a shard of a required
    split whose size differs from the manifest's (truncated, or missing), or holds cubes of
    a shape the towers cannot take (mouth must be (9, 60, 100); speech (15, 40, C)).
    """
    manifest = _read_manifest(data_dir)
    shapes = manifest.get("shapes", {})
    if tuple(shapes.get("mouth", ())) != records.MOUTH_SHAPE:
        raise DatasetError(
            f"{data_dir}: mouth cubes are {shapes.get('mouth')}, the mouth tower "
            f"takes {list(records.MOUTH_SHAPE)}"
        )
    speech_shape = tuple(shapes.get("speech", ()))
    if len(speech_shape) != 3 or speech_shape[:2] != tuple(expected_speech):
        raise DatasetError(
            f"{data_dir}: speech cubes are {shapes.get('speech')}, the speech tower "
            f"takes [{expected_speech[0]}, {expected_speech[1]}, channels]"
        )
    windows, files = {}, {}
    for split in records.SPLITS:
        files[split] = sorted(glob.glob(os.path.join(data_dir, records.shard_pattern(split))))
        windows[split] = int(manifest.get("splits", {}).get(split, {}).get("windows", 0))
    for split in required_splits:
        if not files[split] or windows[split] == 0:
            raise DatasetError(f"{data_dir} holds no records for the {split!r} split")
        sizes = records.shard_sizes(manifest.get("splits", {}).get(split, {}))
        _check_shard_sizes(data_dir, files[split], sizes)
        _check_first_record(files[split][0], speech_shape)
    return DatasetInfo(data_dir, speech_shape, windows, files)


def find_damaged_shard(data_dir):
    """(path, reason) of the first shard of `data_dir` whose records cannot be read (bad
    checksum, cut record), or None. Reads every record, so it is for naming the shard after
    a pass failed, not for every open."""
    for split in records.SPLITS:
        for path in sorted(glob.glob(os.path.join(data_dir, records.shard_pattern(split)))):
            try:
                for _ in tf.data.TFRecordDataset(path):
                    pass
            except tf.errors.DataLossError as error:
                return path, _first_line(error)
    return None


@contextlib.contextmanager
def naming_damaged_shards(data_dir):
    """Inside the block, a DataLossError from reading the records of `data_dir` (which names
    no file) becomes a DatasetError that names the damaged shard."""
    try:
        yield
    except tf.errors.DataLossError as error:
        found = find_damaged_shard(data_dir)
        if found is None:
            raise DatasetError(f"{data_dir}: a record cannot be read: "
                               f"{_first_line(error)}") from None
        raise DatasetError(f"{found[0]} is damaged: {found[1]}; rebuild the dataset") from None


def model_features(manifest):
    """What a model depends on in a dataset's manifest: its speech feature settings and its
    mouth crop rule ({"speech": dict, "crop": dict}; a manifest without a crop entry was made
    with the reference's fixed 30 px border)."""
    features = manifest.get("features", {})
    return {"speech": features.get("speech"),
            "crop": features.get("crop", {"border_fraction": None})}


def _parser(speech_shape, keys=MODEL_KEYS):
    def parse(serialized):
        parsed = records.parse_window(serialized, speech_shape)
        return {key: parsed[key] for key in keys}

    return parse


def subset_stride(info, split, max_windows):
    """int k >= 1: reading every k-th record of each shard of `split` gives at most about
    `max_windows` windows (0 = no cap: k = 1)."""
    if max_windows <= 0:
        return 1
    return max(1, -(-info.windows[split] // max_windows))


def subset_windows(info, split, stride):
    """Windows that every `stride`-th record of each shard of `split` gives, from the
    manifest's per-shard record counts (a manifest without them: the writer spreads the
    windows evenly over the shards, so each holds windows / shards, rounded up)."""
    if stride == 1:
        return info.windows[split]
    entry = records.read_manifest(info.data_dir).get("splits", {}).get(split, {})
    counts = [int(size["records"]) for size in records.shard_sizes(entry).values()]
    if not counts:
        shards = max(1, len(info.files[split]))
        counts = [-(-info.windows[split] // shards)] * shards
    return sum(-(-count // stride) for count in counts)


def _video_runs(info, split, run_windows, shuffle, seed):
    """Unbatched windows of a split as runs of `run_windows` consecutive windows in the order
    the writer numbered them (video, then start), each window with `video` int64 (a hash of
    its video_id) and `start_frame`; the runs, not the windows, are shuffled.

    The writer deals windows round-robin over the shards, so reading every shard one record
    at a time restores that order; a run then holds one video's windows 0.1 s apart (two
    videos where it straddles one's end). A merged dataset (merge_datasets.py) interleaves
    its inputs' orders, so its runs hold fewer windows of one video; the loss and the
    ranking compare windows by video and start frame, never by position.
    """
    files = tf.data.Dataset.from_tensor_slices(info.files[split])
    dataset = files.interleave(tf.data.TFRecordDataset, cycle_length=len(info.files[split]),
                               block_length=1)
    keys = MODEL_KEYS + ("video_id", "start_frame")
    dataset = dataset.map(_parser(info.speech_shape, keys), num_parallel_calls=tf.data.AUTOTUNE,
                          deterministic=True)
    dataset = dataset.map(_with_video_hash, num_parallel_calls=tf.data.AUTOTUNE,
                          deterministic=True)
    dataset = dataset.batch(run_windows)
    if shuffle:
        dataset = dataset.shuffle(max(1, _RUN_SHUFFLE_WINDOWS // run_windows), seed=seed)
    return dataset.unbatch()


def _with_video_hash(window):
    window = dict(window)
    window["video"] = tf.strings.to_hash_bucket_fast(window.pop("video_id"), 2 ** 62)
    return window


def window_batches(info, split, windows_per_batch, shuffle=False, seed=0, drop_remainder=False,
                   with_video_id=False, stride=1, run_windows=0):
    """tf.data.Dataset of window batches of one split: dicts of mouth uint8 (W, 9, 60, 100),
    speech_genuine and speech_impostor float32 (W, T, F, C), W = windows_per_batch (the last
    batch smaller unless drop_remainder).

    shuffle: read the shards in a seeded random order, interleaved, through a shuffle buffer
    (the order changes with `seed`, so pass seed + epoch for a new order each epoch while
    keeping a resumed epoch identical). Without shuffle the order is the files' order, so
    evaluation folds are consecutive pairs as written. with_video_id: batches also hold
    video_id, string (W,). stride: read every stride-th record of each shard only (a fixed
    subset spread over every video, see subset_stride).
    run_windows > 0: batches are made of runs of that many consecutive windows of a video
    (see _video_runs; for the loss over audio offsets) and also hold video int64 (W,), a hash
    of video_id, and start_frame int64 (W,); needs stride 1.
    """
    if run_windows:
        if stride != 1:
            raise ValueError("runs of consecutive windows need every window (stride 1)")
        dataset = _video_runs(info, split, run_windows, shuffle, seed)
        dataset = dataset.batch(windows_per_batch, drop_remainder=drop_remainder)
        return dataset.prefetch(tf.data.AUTOTUNE)

    def read(path):
        return tf.data.TFRecordDataset(path).shard(stride, 0)

    files = tf.data.Dataset.from_tensor_slices(info.files[split])
    if shuffle:
        files = files.shuffle(len(info.files[split]), seed=seed)
        dataset = files.interleave(
            read,
            cycle_length=4,
            block_length=8,
            num_parallel_calls=tf.data.AUTOTUNE,
            deterministic=True,
        )
        dataset = dataset.shuffle(4096, seed=seed)
    else:
        dataset = files.flat_map(read)
    keys = MODEL_KEYS + (("video_id",) if with_video_id else ())
    dataset = dataset.map(
        _parser(info.speech_shape, keys), num_parallel_calls=tf.data.AUTOTUNE, deterministic=True
    )
    dataset = dataset.batch(windows_per_batch, drop_remainder=drop_remainder)
    return dataset.prefetch(tf.data.AUTOTUNE)


def batches_per_epoch(info, split, windows_per_batch, stride=1):
    """How many full batches `window_batches(..., drop_remainder=True, stride=stride)` gives
    for one pass over a split."""
    return subset_windows(info, split, stride) // windows_per_batch
