"""Augmentation keeps shapes, dtypes and value ranges, and moves all 9 frames of a window
together."""
import numpy as np
import pytest
import tensorflow as tf

from avmatch.augment import AugmentConfig, augment_batch, augment_mouth


def _batch(seed=0, windows=6):
    rng = np.random.default_rng(seed)
    return {"mouth": tf.constant(rng.integers(0, 256, (windows, 9, 60, 100), dtype=np.uint8)),
            "speech_genuine": tf.constant(rng.normal(size=(windows, 15, 40, 3)), tf.float32),
            "speech_impostor": tf.constant(rng.normal(size=(windows, 15, 40, 3)), tf.float32),
            "video_id": tf.constant([b"v"] * windows)}


def test_shapes_dtypes_and_ranges_are_kept():
    tf.random.set_seed(0)
    batch = _batch()
    out = augment_batch(batch, AugmentConfig())
    for key in ("mouth", "speech_genuine", "speech_impostor"):
        assert out[key].shape == batch[key].shape and out[key].dtype == batch[key].dtype
    assert out["video_id"] is batch["video_id"]
    noise = (out["speech_genuine"] - batch["speech_genuine"]).numpy()
    assert 0.07 < noise.std() < 0.13
    assert not np.array_equal(out["mouth"].numpy(), batch["mouth"].numpy())


def test_a_window_moves_as_one_and_flip_mirrors_it():
    tf.random.set_seed(1)
    frame = np.tile(np.linspace(0, 255, 100, dtype=np.float32), (60, 1)).astype(np.uint8)
    mouth = tf.constant(np.broadcast_to(frame, (4, 9, 60, 100)).copy())
    out = augment_mouth(mouth, AugmentConfig()).numpy()
    assert (out == out[:, :1]).all(), "every frame of a window gets the same transform"
    flipped = augment_mouth(mouth, AugmentConfig(0.0, 0.0, 0.0, 1.0, 0.0)).numpy()
    np.testing.assert_array_equal(flipped, mouth.numpy()[..., ::-1])
    same = augment_mouth(mouth, AugmentConfig(0.0, 0.0, 0.0, 0.0, 0.0)).numpy()
    np.testing.assert_array_equal(same, mouth.numpy())


def test_strengths_are_checked():
    with pytest.raises(ValueError, match="mouth_zoom"):
        AugmentConfig(mouth_zoom=1.5)
