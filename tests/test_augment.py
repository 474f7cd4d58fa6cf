"""Augmentation keeps shapes, dtypes and value ranges, and moves all 9 frames of a window
together."""
import numpy as np
import pytest
import tensorflow as tf

from avmatch.augment import (MOUTH_AUGMENTATIONS, AugmentConfig, _lower_resolution, _rotated,
                             augment_batch, augment_mouth, augment_speech, warp_positions,
                             warped_speech)
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
    warped = augment_config(TrainConfig(augment_speech=True, speech_warp=0.1))
    assert warped == AugmentConfig(0.0, 0.0, 0.0, 0.0, 0.1, speech_warp=0.1)
    assert augment_config(TrainConfig()) is None


def test_the_warp_stretches_the_filter_axis_and_keeps_its_ends():
    positions = warp_positions(tf.constant([0.9, 1.0, 1.2]), 40).numpy()
    np.testing.assert_allclose(positions[1], np.arange(40))
    np.testing.assert_allclose(positions[:, 10], [9.0, 10.0, 12.0], rtol=1e-6)
    assert (positions[:, 0] == 0).all() and np.allclose(positions[:, -1], 39)
    assert (np.diff(positions, axis=1) > 0).all(), "the warp keeps the filters in order"


def test_warped_speech_interpolates_between_neighbouring_filters():
    rng = np.random.default_rng(4)
    speech = rng.normal(size=(3, 15, 40, 3)).astype(np.float32)
    factors = np.array([0.9, 1.0, 1.15], np.float32)
    out = warped_speech(tf.constant(speech), tf.constant(factors)).numpy()
    np.testing.assert_allclose(out[1], speech[1], atol=1e-6)
    # Window 0, filter 15 reads position 13.5: halfway between filters 13 and 14.
    np.testing.assert_allclose(out[0, :, 15], (speech[0, :, 13] + speech[0, :, 14]) / 2,
                               atol=1e-5)
    positions = warp_positions(tf.constant(factors), 40).numpy()
    for w in range(3):
        expected = np.stack([np.stack([np.interp(positions[w], np.arange(40), speech[w, t, :, c])
                                       for c in range(3)], axis=-1) for t in range(15)])
        np.testing.assert_allclose(out[w], expected, atol=1e-5)


def test_speech_warp_alone_moves_the_cubes_and_is_bounded():
    tf.random.set_seed(5)
    speech = tf.constant(np.tile(np.arange(40, dtype=np.float32)[None, None, :, None],
                                 (64, 15, 1, 3)))
    out = augment_speech(speech, AugmentConfig(speech_noise=0.0, speech_warp=0.1)).numpy()
    assert out.shape == speech.shape
    # A ramp over the filters stays a ramp of slope = the window's factor, below the knee.
    slopes = out[:, 0, 10, 0] / 10.0
    assert 0.9 <= slopes.min() < 0.97 and 1.03 < slopes.max() <= 1.1
    assert np.allclose(out[:, :, -1], 39.0)
    with pytest.raises(ValueError, match="speech_warp must be at most 0.2"):
        AugmentConfig(speech_warp=0.3)
