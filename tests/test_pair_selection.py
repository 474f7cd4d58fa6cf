"""Online pair selection against a plain rendition of the reference's loop."""
import numpy as np
import pytest
import tensorflow as tf

from avmatch.pair_selection import all_pairs_mask, hard_pair_mask, offset_pair_mask


def reference_mask(labels, distances, hard_margin):
    """The reference's train.py loop: max_gen from 0 over genuine pairs, then the filter."""
    max_gen = 0.0
    for label, distance in zip(labels, distances):
        if label == 1 and distance > max_gen:
            max_gen = distance
    return np.array([label == 1 or distance < max_gen + hard_margin
                     for label, distance in zip(labels, distances)])


def _mask(labels, distances, hard_margin):
    return hard_pair_mask(tf.constant(labels, tf.float32), tf.constant(distances, tf.float32),
                          hard_margin).numpy()


@pytest.mark.parametrize("seed", range(40))
def test_matches_reference_on_random_batches(seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(1, 40))
    labels = rng.integers(0, 2, n).astype(np.float32)
    distances = (rng.gamma(2.0, 5.0, n)).astype(np.float32)
    hard_margin = float(rng.choice([0.0, 1.0, 10.0, 25.0]))
    np.testing.assert_array_equal(_mask(labels, distances, hard_margin),
                                  reference_mask(labels, distances, np.float32(hard_margin)))


def test_no_genuine_pair_uses_max_gen_zero():
    labels = np.zeros(4, np.float32)
    distances = np.array([1.0, 9.9, 10.0, 30.0], np.float32)
    expected = [True, True, False, False]
    np.testing.assert_array_equal(_mask(labels, distances, 10.0), expected)
    np.testing.assert_array_equal(reference_mask(labels, distances, 10.0), expected)


def test_no_impostor_keeps_every_genuine():
    labels = np.ones(5, np.float32)
    distances = np.array([0.0, 3.0, 100.0, 1e4, 7.0], np.float32)
    assert _mask(labels, distances, 0.0).all()


def test_far_impostors_are_all_dropped():
    labels = np.array([1, 1, 0, 0, 0], np.float32)
    distances = np.array([2.0, 5.0, 50.0, 60.0, 15.1], np.float32)
    np.testing.assert_array_equal(_mask(labels, distances, 10.0),
                                  [True, True, False, False, False])


def test_tie_at_threshold_is_dropped_strictly_less():
    labels = np.array([1, 0, 0, 0], np.float32)
    # max_gen + hard_margin = 4 + 2 = 6 exactly (representable in float32)
    distances = np.array([4.0, 6.0, np.nextafter(np.float32(6.0), np.float32(0.0)), 4.0],
                         np.float32)
    expected = [True, False, True, True]
    np.testing.assert_array_equal(_mask(labels, distances, 2.0), expected)
    np.testing.assert_array_equal(reference_mask(labels, distances, 2.0), expected)


def test_genuine_pairs_are_kept_even_if_far():
    labels = np.array([1, 1, 0], np.float32)
    distances = np.array([1000.0, 1.0, 1.0], np.float32)
    assert _mask(labels, distances, 0.0).all()


def test_all_pairs_mask_keeps_everything():
    labels = tf.constant([1.0, 0.0, 0.0, 1.0])
    mask = all_pairs_mask(labels).numpy()
    assert mask.dtype == bool and mask.shape == (4,) and mask.all()


def test_offset_pairs_are_other_starts_of_the_same_video():
    # windows: video 7 at frames 0 and 3, video 9 at 0, video 7 again at 0 (a second build of
    # the same window: same audio, so not an offset)
    video = tf.constant([7, 7, 9, 7], tf.int64)
    start = tf.constant([0, 3, 0, 0], tf.int64)
    expected = np.array([[0, 1, 0, 0],
                         [1, 0, 0, 1],
                         [0, 0, 0, 0],
                         [0, 1, 0, 0]], bool)
    np.testing.assert_array_equal(offset_pair_mask(video, start).numpy(), expected)
