"""The contrastive loss and the loss over audio offsets against hand-computed values."""
import numpy as np
import pytest
import tensorflow as tf

from avmatch.losses import contrastive_loss, offset_loss


def _loss(labels, distances, **kwargs):
    weights = kwargs.pop("weights", None)
    if weights is not None:
        weights = tf.constant(weights, tf.float32)
    return float(contrastive_loss(tf.constant(labels, tf.float32),
                                  tf.constant(distances, tf.float32), weights=weights, **kwargs))


def test_genuine_beyond_margin_is_pulled_in():
    # (3 - 1)^2 / 2 = 2
    assert _loss([1], [3.0], margin_gen=1.0, margin_imp=10.0) == pytest.approx(2.0)


def test_genuine_within_margin_costs_nothing():
    assert _loss([1], [0.5], margin_gen=1.0, margin_imp=10.0) == 0.0


def test_genuine_with_default_margin_is_half_squared_distance():
    assert _loss([1], [4.0]) == pytest.approx(8.0)


def test_impostor_inside_margin_is_pushed_out():
    # (10 - 4)^2 / 2 = 18
    assert _loss([0], [4.0], margin_gen=1.0, margin_imp=10.0) == pytest.approx(18.0)


def test_impostor_outside_margin_costs_nothing():
    assert _loss([0], [12.0], margin_gen=1.0, margin_imp=10.0) == 0.0


def test_impostor_with_default_margin_of_100():
    assert _loss([0], [90.0]) == pytest.approx(50.0)


def test_mean_over_the_batch():
    # per pair: 2, 0, 18, 0 -> mean 5
    got = _loss([1, 1, 0, 0], [3.0, 0.5, 4.0, 12.0], margin_gen=1.0, margin_imp=10.0)
    assert got == pytest.approx(5.0)


def test_weights_give_a_weighted_mean_and_zero_drops_a_pair():
    labels, distances = [1, 1, 0, 0], [3.0, 0.5, 4.0, 12.0]
    margins = dict(margin_gen=1.0, margin_imp=10.0)
    # per pair 2, 0, 18, 0; dropping the impostor at 4 -> (2 + 0 + 0) / 3
    assert _loss(labels, distances, weights=[1, 1, 0, 1], **margins) == pytest.approx(2.0 / 3.0)
    # equals the unweighted loss of the kept pairs alone
    assert _loss(labels, distances, weights=[1, 1, 0, 1], **margins) == pytest.approx(
        _loss([1, 1, 0], [3.0, 0.5, 12.0], **margins))
    # weight 2 counts a pair twice: (2*2 + 18) / 3
    assert _loss(labels[:1] + labels[2:3], [3.0, 4.0], weights=[2, 1], **margins) == pytest.approx(
        22.0 / 3.0)


def test_all_zero_weights_give_zero_without_nan():
    labels = tf.constant([1.0, 0.0])
    distances = tf.constant([3.0, 4.0])
    with tf.GradientTape() as tape:
        tape.watch(distances)
        loss = contrastive_loss(labels, distances, weights=tf.zeros([2]))
    grad = tape.gradient(loss, distances).numpy()
    assert float(loss) == 0.0
    assert np.all(np.isfinite(grad)) and np.all(grad == 0.0)


def test_gradient_of_a_dropped_pair_is_exactly_zero():
    distances = tf.constant([3.0, 4.0, 5.0])
    with tf.GradientTape() as tape:
        tape.watch(distances)
        loss = contrastive_loss(tf.constant([1.0, 0.0, 0.0]), distances, margin_imp=10.0,
                                weights=tf.constant([1.0, 0.0, 1.0]))
    grad = tape.gradient(loss, distances).numpy()
    # d/dd of mean over 2 kept pairs: genuine d/2 = 1.5, impostor -(10 - d)/2 = -2.5
    np.testing.assert_allclose(grad, [1.5, 0.0, -2.5], rtol=1e-6)


def _offset(genuine, shifted, mask, temperature=10.0):
    return float(offset_loss(tf.constant(genuine, tf.float32), tf.constant(shifted, tf.float32),
                             tf.constant(mask, tf.bool), temperature))


def test_offset_loss_is_the_cross_entropy_of_the_genuine_offset():
    # one window: genuine at 10, shifted audio at 20 and 30, temperature 10
    # -log(e^-1 / (e^-1 + e^-2 + e^-3))
    expected = -np.log(np.exp(-1) / (np.exp(-1) + np.exp(-2) + np.exp(-3)))
    assert _offset([10.0], [[20.0, 30.0]], [[True, True]]) == pytest.approx(expected, rel=1e-5)


def test_offset_loss_ignores_masked_candidates_and_windows_without_any():
    # window 1's candidate at 30 is masked out; window 2 has none and does not count
    one = -np.log(np.exp(-1) / (np.exp(-1) + np.exp(-2)))
    got = _offset([10.0, 10.0, 5.0], [[20.0, 30.0], [20.0, 30.0], [1.0, 1.0]],
                  [[True, True], [True, False], [False, False]])
    two = -np.log(np.exp(-1) / (np.exp(-1) + np.exp(-2) + np.exp(-3)))
    assert got == pytest.approx((two + one) / 2, rel=1e-5)
    assert _offset([5.0], [[1.0]], [[False]]) == 0.0


def test_offset_loss_depends_on_the_order_of_distances_not_their_scale():
    """Adding the same amount to every distance of a window changes nothing: no absolute
    margin, unlike the contrastive loss."""
    near = _offset([10.0], [[14.0, 25.0]], [[True, True]])
    assert _offset([60.0], [[64.0, 75.0]], [[True, True]]) == pytest.approx(near, rel=1e-5)
    assert _offset([14.0], [[10.0, 25.0]], [[True, True]]) > near
