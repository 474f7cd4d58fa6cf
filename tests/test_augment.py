"""Augmentation keeps shapes, dtypes and value ranges, and moves all 9 frames of a window
together."""
import numpy as np
import pytest
import tensorflow as tf

from avmatch.augment import (MOUTH_AUGMENTATIONS, AugmentConfig, _lower_resolution, _rotated,
                             augment_batch, augment_mouth)
from avmatch.config import TrainConfig
from avmatch.training import augment_config

STRONG = AugmentConfig(**MOUTH_AUGMENTATIONS["strong"], speech_noise=0.0)


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


def test_strong_augmentation_moves_a_window_as_one():
    tf.random.set_seed(2)
    frame = np.tile(np.linspace(0, 255, 100, dtype=np.float32), (60, 1)).astype(np.uint8)
    mouth = tf.constant(np.broadcast_to(frame, (4, 9, 60, 100)).copy())
    out = augment_mouth(mouth, STRONG).numpy()
    assert out.shape == mouth.shape and out.dtype == np.uint8
    assert (out == out[:, :1]).all(), "every frame of a window gets the same transform"
    assert not np.array_equal(out, mouth.numpy())


def test_rotation_and_resolution_loss_invent_no_border():
    """A flat grey crop stays flat: rotated corners repeat the edge instead of turning black."""
    flat = tf.fill([3, 9, 60, 100], tf.constant(128, tf.uint8))
    only_geometry = AugmentConfig(0.0, 0.0, 0.0, 0.0, 0.0, mouth_rotation=0.14,
                                  mouth_resolution=0.5)
    np.testing.assert_array_equal(augment_mouth(flat, only_geometry).numpy(), flat.numpy())


def test_rotation_turns_about_the_centre():
    image = np.random.default_rng(0).uniform(0, 255, (1, 60, 100, 1)).astype(np.float32)
    half_turn = _rotated(tf.constant(image), tf.constant([np.pi], tf.float32)).numpy()
    np.testing.assert_allclose(half_turn, image[:, ::-1, ::-1], atol=1e-2)
    none = _rotated(tf.constant(image), tf.constant([0.0])).numpy()
    np.testing.assert_allclose(none, image, atol=1e-4)


def test_resolution_loss_removes_fine_detail():
    checkers = (np.indices((60, 100)).sum(0) % 2 * 255).astype(np.float32)
    windows = tf.constant(np.broadcast_to(checkers, (8, 9, 60, 100)).copy())
    tf.random.set_seed(3)
    lowered = _lower_resolution(windows, 0.5).numpy()
    assert lowered.shape == windows.shape
    assert (lowered.std(axis=(1, 2, 3)) < 0.5 * checkers.std()).all()


def test_train_config_picks_the_mouth_augmentation():
    strong = augment_config(TrainConfig(augment_mouth=True, mouth_augmentation="strong"))
    assert strong == STRONG
    standard = augment_config(TrainConfig(augment_mouth=True))
    assert standard == AugmentConfig(speech_noise=0.0)
    speech_only = augment_config(TrainConfig(augment_speech=True))
    assert speech_only == AugmentConfig(0.0, 0.0, 0.0, 0.0, 0.1)
    assert augment_config(TrainConfig()) is None
