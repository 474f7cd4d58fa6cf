"""Reading prepared datasets (see avmatch.records) into batches of windows with tf.data.

A batch is a dict of W windows: mouth uint8 (W, 9, 60, 100), speech_genuine and
speech_impostor float32 (W, T, F, C); it holds 2W pairs (instance.window_pairs), so
--batch_size pairs means batch_size / 2 windows.
"""

import dataclasses
import glob
import os

import numpy as np
import tensorflow as tf

from avmatch import records
from avmatch.cli import UsageError

MODEL_KEYS = ("mouth", "speech_genuine", "speech_impostor")


class DatasetError(UsageError):
    """The dataset directory cannot be used: missing, empty, or of the wrong shape."""


@dataclasses.dataclass(frozen=True)
class DatasetInfo:
    """What a reader needs to know about a dataset directory."""

    data_dir: str
    speech_shape: tuple
    windows: dict  # split -> number of windows (each gives 2 pairs)
    files: dict  # split -> shard paths


def _check_first_record(path, speech_shape):
    """Raises DatasetError if the first record of `path` does not hold the manifest's shapes."""
    example = tf.train.Example()
    for raw in tf.data.TFRecordDataset(path).take(1):
        example.ParseFromString(raw.numpy())
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


def load_dataset_info(data_dir, required_splits=("train",), expected_speech=(15, 40)):
    """Checks a dataset directory and describes it.

    Raises DatasetError, one line, when the directory does not exist, has no manifest, has no
    records for a required split, or holds cubes of a shape the towers cannot take
    (mouth must be (9, 60, 100); speech (15, 40, C)).
    """
    if not os.path.isdir(data_dir):
        raise DatasetError(f"data_dir {data_dir} does not exist or is not a directory")
    try:
        manifest = records.read_manifest(data_dir)
    except FileNotFoundError:
        raise DatasetError(
            f"{data_dir} holds no {records.MANIFEST_NAME}: not a dataset written by "
            "data_preparation/build_dataset.py"
        ) from None
    except ValueError as error:
        raise DatasetError(
            f"{data_dir}/{records.MANIFEST_NAME} is not valid JSON: {error}"
        ) from None
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
        _check_first_record(files[split][0], speech_shape)
    return DatasetInfo(data_dir, speech_shape, windows, files)


def _parser(speech_shape):
    def parse(serialized):
        parsed = records.parse_window(serialized, speech_shape)
        return {key: parsed[key] for key in MODEL_KEYS}

    return parse


def window_batches(info, split, windows_per_batch, shuffle=False, seed=0, drop_remainder=False):
    """tf.data.Dataset of window batches of one split: dicts of mouth uint8 (W, 9, 60, 100),
    speech_genuine and speech_impostor float32 (W, T, F, C), W = windows_per_batch (the last
    batch smaller unless drop_remainder).

    shuffle: read the shards in a seeded random order, interleaved, through a shuffle buffer
    (the order changes with `seed`, so pass seed + epoch for a new order each epoch while
    keeping a resumed epoch identical). Without shuffle the order is the files' order, so
    evaluation folds are consecutive pairs as written.
    """
    files = tf.data.Dataset.from_tensor_slices(info.files[split])
    if shuffle:
        files = files.shuffle(len(info.files[split]), seed=seed)
        dataset = files.interleave(
            tf.data.TFRecordDataset,
            cycle_length=4,
            block_length=8,
            num_parallel_calls=tf.data.AUTOTUNE,
            deterministic=True,
        )
        dataset = dataset.shuffle(4096, seed=seed)
    else:
        dataset = files.flat_map(tf.data.TFRecordDataset)
    dataset = dataset.map(
        _parser(info.speech_shape), num_parallel_calls=tf.data.AUTOTUNE, deterministic=True
    )
    dataset = dataset.batch(windows_per_batch, drop_remainder=drop_remainder)
    return dataset.prefetch(tf.data.AUTOTUNE)


def batches_per_epoch(info, split, windows_per_batch):
    """How many full batches `window_batches(..., drop_remainder=True)` gives for one pass
    over a split."""
    return info.windows[split] // windows_per_batch
