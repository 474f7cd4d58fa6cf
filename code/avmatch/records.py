"""The on-disk format of a prepared dataset, shared by the writer (data_preparation) and the
reader (avmatch.input_pipeline).

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

The shapes are stored in the manifest under ``shapes`` so that readers need no guess.
"""
import json
import os

import numpy as np

from avmatch.atomic import atomic_write

MANIFEST_NAME = "manifest.json"
SPLITS = ("train", "validation", "test")
MOUTH_SHAPE = (9, 60, 100)
FORMAT_VERSION = 1


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


def read_manifest(data_dir):
    """The manifest of a dataset directory as a dict; raises FileNotFoundError if absent."""
    with open(os.path.join(data_dir, MANIFEST_NAME)) as handle:
        return json.load(handle)
