"""The on-disk format of a prepared dataset and its shape constants: the one definition, owned
by the data side, that the writer (avprep.dataset_writer) and the reader
(avmatch.input_pipeline) share.

A dataset directory holds, per split, sharded TFRecord files
``<split>-<index:05d>-of-<count:05d>.tfrecord`` and one ``manifest.json``.
Each record is one 0.3 s *window* of a video: the mouth cube and two speech cubes, the
aligned (genuine) one and a shifted (impostor) one, so genuine:impostor is 1:1 by
construction and the mouth tower can run once for both pairs of a window.

Record features:
  mouth            bytes   uint8 (frames, height, width) = (9, 60, 100), C order
  speech_genuine   bytes   float32 (time, filters, channels), e.g. (15, 40, 3)
  speech_impostor  bytes   float32, same shape as speech_genuine
  video_id         bytes   utf-8 id of the source video
  start_frame      int64   first 30 fps frame of the window
  impostor_shift   float   seconds between the window and its impostor audio
                           (0.0 when the impostor audio comes from another video)

``manifest.json`` holds ``format_version`` (FORMAT_VERSION; `read_manifest` refuses any
other), the cube shapes under ``shapes`` so that readers need no guess, and per split its
counts and shards; ``splits.<split>.shard_sizes`` maps each shard name to its ``bytes`` and
``records``, so a reader can tell a truncated or damaged shard (manifests written before
that key existed have no sizes: same format, the check is skipped).
"""
import json
import os

import numpy as np

from avprep.atomic import atomic_write

MANIFEST_NAME = "manifest.json"
SPLITS = ("train", "validation", "test")
# Raised only when the record bytes or the manifest's meaning change, never for a new
# optional manifest key (readers of version 1 ignore keys they do not know).
FORMAT_VERSION = 1

FPS = 30.0  # video frames per second the mouth tower sees (sources are resampled to it)
SAMPLE_RATE = 16000  # Hz of the decoded mono audio, which the speech features assume
WINDOW_FRAMES = 9  # video frames per window: 0.3 s at FPS
SPEECH_FRAME_SECONDS = 0.02  # speech feature frame length and step (non-overlapping)
SPEECH_FRAMES = 15  # speech feature frames per window: 0.3 s / SPEECH_FRAME_SECONDS
NUM_FILTERS = 40  # Mel filters per speech frame (the speech tower's frequency extent)
MOUTH_HEIGHT, MOUTH_WIDTH = 60, 100  # pixels of a grey mouth crop
MOUTH_SHAPE = (WINDOW_FRAMES, MOUTH_HEIGHT, MOUTH_WIDTH)


def shard_name(split, index, count):
    """File name of shard `index` of `count` of a split."""
    return f"{split}-{index:05d}-of-{count:05d}.tfrecord"


def shard_pattern(split):
    """Glob pattern matching every shard of a split."""
    return f"{split}-?????-of-?????.tfrecord"


def _bytes_feature(value):
    import tensorflow as tf
    return tf.train.Feature(bytes_list=tf.train.BytesList(value=[value]))


def serialize_window(mouth, speech_genuine, speech_impostor, video_id, start_frame,
                     impostor_shift):
    """One window as a serialized tf.train.Example.

    Args:
      mouth: uint8 array (9, 60, 100).
      speech_genuine, speech_impostor: float32 arrays (T, F, C) of equal shape.
      video_id: str; start_frame: int; impostor_shift: float seconds.
    Returns:
      bytes.
    """
    import tensorflow as tf
    mouth = np.asarray(mouth)
    if mouth.dtype != np.uint8 or mouth.shape != MOUTH_SHAPE:
        raise ValueError(f"mouth cube must be uint8 {MOUTH_SHAPE}, got {mouth.dtype} {mouth.shape}")
    genuine = np.ascontiguousarray(speech_genuine, dtype=np.float32)
    impostor = np.ascontiguousarray(speech_impostor, dtype=np.float32)
    if genuine.shape != impostor.shape or genuine.ndim != 3:
        raise ValueError(f"speech cubes must share one (T, F, C) shape, got "
                         f"{genuine.shape} and {impostor.shape}")
    feature = {
        "mouth": _bytes_feature(np.ascontiguousarray(mouth).tobytes()),
        "speech_genuine": _bytes_feature(genuine.tobytes()),
        "speech_impostor": _bytes_feature(impostor.tobytes()),
        "video_id": _bytes_feature(video_id.encode("utf-8")),
        "start_frame": tf.train.Feature(int64_list=tf.train.Int64List(value=[int(start_frame)])),
        "impostor_shift": tf.train.Feature(
            float_list=tf.train.FloatList(value=[float(impostor_shift)])),
    }
    return tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString()


def parse_window(serialized, speech_shape):
    """Parses one serialized window (a scalar string tensor) into tensors.

    Returns a dict: mouth uint8 (9, 60, 100), speech_genuine and speech_impostor float32
    `speech_shape`, video_id string, start_frame int64, impostor_shift float32.
    """
    import tensorflow as tf
    spec = {
        "mouth": tf.io.FixedLenFeature([], tf.string),
        "speech_genuine": tf.io.FixedLenFeature([], tf.string),
        "speech_impostor": tf.io.FixedLenFeature([], tf.string),
        "video_id": tf.io.FixedLenFeature([], tf.string),
        "start_frame": tf.io.FixedLenFeature([], tf.int64),
        "impostor_shift": tf.io.FixedLenFeature([], tf.float32),
    }
    parsed = tf.io.parse_single_example(serialized, spec)
    mouth = tf.reshape(tf.io.decode_raw(parsed["mouth"], tf.uint8), MOUTH_SHAPE)
    genuine = tf.reshape(tf.io.decode_raw(parsed["speech_genuine"], tf.float32), speech_shape)
    impostor = tf.reshape(tf.io.decode_raw(parsed["speech_impostor"], tf.float32), speech_shape)
    return {"mouth": mouth, "speech_genuine": genuine, "speech_impostor": impostor,
            "video_id": parsed["video_id"], "start_frame": parsed["start_frame"],
            "impostor_shift": parsed["impostor_shift"]}


def write_json_atomic(path, payload):
    """Writes `payload` as JSON to `path` so that a reader sees the old or the new file, whole."""
    atomic_write(path, lambda handle: json.dump(payload, handle, indent=2, sort_keys=True),
                 binary=False)


def write_manifest(data_dir, manifest):
    """Writes `manifest` (a JSON-ready dict) as the dataset's manifest.json, atomically,
    stamped with FORMAT_VERSION; returns the dict written."""
    manifest = dict(manifest, format_version=FORMAT_VERSION)
    write_json_atomic(os.path.join(data_dir, MANIFEST_NAME), manifest)
    return manifest


def check_format_version(manifest, path):
    """Raises ValueError when the manifest dict read from `path` is of another format
    version than this code reads."""
    found = manifest.get("format_version") if isinstance(manifest, dict) else None
    if found != FORMAT_VERSION:
        raise ValueError(f"{path}: dataset format version {found}, this code reads version "
                         f"{FORMAT_VERSION}; rebuild the dataset with this version's data "
                         "preparation")


def read_manifest(data_dir):
    """The manifest of a dataset directory as a dict.

    Raises FileNotFoundError when it is absent, json.JSONDecodeError (a ValueError) when it
    is not JSON, ValueError when its format_version is not FORMAT_VERSION.
    """
    path = os.path.join(data_dir, MANIFEST_NAME)
    with open(path) as handle:
        manifest = json.load(handle)
    check_format_version(manifest, path)
    return manifest


def shard_sizes(split_entry):
    """{shard name: {"bytes": int, "records": int}} of a manifest's split entry; {} for a
    manifest written before shards had recorded sizes."""
    return dict(split_entry.get("shard_sizes") or {})
