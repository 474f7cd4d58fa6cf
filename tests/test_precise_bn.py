"""Precise batch-norm statistics: the moving statistics become the mean of the batch ones."""
import numpy as np
import pytest
import tensorflow as tf

from avmatch.instance import MatchingInstance
from avmatch.precise_bn import recalibrate_batch_norm


def _batch(seed, windows=3):
    rng = np.random.default_rng(seed)
    return {"mouth": tf.constant(rng.integers(0, 256, (windows, 9, 60, 100), dtype=np.uint8)),
            "speech_genuine": tf.constant(rng.normal(size=(windows, 15, 40, 3)), tf.float32),
            "speech_impostor": tf.constant(rng.normal(size=(windows, 15, 40, 3)), tf.float32)}


def test_moving_statistics_are_the_mean_of_the_batch_statistics():
    instance = MatchingInstance.create()
    batches = [_batch(seed) for seed in range(3)]
    first = instance.speech_net.conv1
    expected_mean, expected_variance = [], []
    for batch in batches:
        speech = tf.concat([batch["speech_genuine"], batch["speech_impostor"]], 0)
        conv = first.conv(tf.expand_dims(speech, 3))
        mean, variance = tf.nn.moments(conv, axes=[0, 1, 2, 3])
        expected_mean.append(mean.numpy())
        expected_variance.append(variance.numpy())
    decay = first.batch_norm.decay

    assert recalibrate_batch_norm(instance, batches) == 3

    np.testing.assert_allclose(first.batch_norm.moving_mean.numpy(),
                               np.mean(expected_mean, 0), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(first.batch_norm.moving_variance.numpy(),
                               np.mean(expected_variance, 0), rtol=1e-4, atol=1e-5)
    assert first.batch_norm.decay == pytest.approx(decay)
    assert not np.allclose(instance.mouth_net.conv1.batch_norm.moving_variance.numpy(), 1.0)


def test_no_batches_leaves_the_statistics_alone():
    instance = MatchingInstance.create()
    before = [v.numpy().copy() for v in instance.variables]
    assert recalibrate_batch_norm(instance, []) == 0
    for value, variable in zip(before, instance.variables):
        np.testing.assert_array_equal(value, variable.numpy())
