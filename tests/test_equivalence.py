"""With the same weights, the fast nets and the Conv3D baseline compute the same function.

Float32 on CPU: distances and the loss agree to 1e-5 relative. The gradients are compared by
global relative error (norm of all differences / norm of all gradients). With oneDNN (TF's
default on x86) the bound is 1e-2, not 1e-5: its float32 convolutions accumulate in another
order for conv2d and conv3d, and over the ~10^6 pooling windows of a batch a few near-ties then
pick another maximum, which moves whole gradient units. Measured on this batch in separate
processes: 8e-5 to 2.5e-3 with oneDNN (it varies from process to process), 1.5e-6 with
TF_ENABLE_ONEDNN_OPTS=0, where the bound is 1e-5 (run `TF_ENABLE_ONEDNN_OPTS=0 pytest
tests/test_equivalence.py` for the strict check). A different function would differ by O(1).
That the fast formulation's weighted step is exact is shown in float64 by
tests/test_train_step.py (agreement to 1e-8; max_pool3d has no float64 kernel, so the conv3d
baseline cannot be checked in float64).
"""
import os

import numpy as np
import pytest
import tensorflow as tf

from avmatch.instance import MatchingInstance
from avmatch.nets.layers import MaxPool
from avmatch.train_step import StepConfig, pairwise_loss

WINDOWS = 3
ONEDNN = os.environ.get("TF_ENABLE_ONEDNN_OPTS", "1") != "0"
GRADIENT_BOUND = 1e-2 if ONEDNN else 1e-5


def _randomise(instance, rng):
    """Nonzero PReLU slopes, random betas and moving statistics."""
    for variable in instance.variables:
        path = variable.path
        if path.endswith("/alpha"):
            variable.assign(rng.uniform(0.1, 0.3, variable.shape).astype(np.float32))
        elif path.endswith(("/beta", "/moving_mean", "/bias")):
            variable.assign(rng.normal(0.0, 0.1, variable.shape).astype(np.float32))
        elif path.endswith("/moving_variance"):
            variable.assign(rng.uniform(0.5, 2.0, variable.shape).astype(np.float32))


def _copy(source, target):
    assert [v.path for v in source.variables] == [v.path for v in target.variables]
    for s, t in zip(source.variables, target.variables):
        t.assign(s)


@pytest.fixture(scope="module")
def pair():
    """(fast instance, conv3d instance with the same weights, random float batch)."""
    rng = np.random.default_rng(0)
    fast = MatchingInstance.create(formulation="fast")
    conv3d = MatchingInstance.create(formulation="conv3d")
    _randomise(fast, rng)
    _copy(fast, conv3d)
    def normal(*shape):
        return tf.constant(rng.normal(size=shape).astype(np.float32))

    batch = {"mouth": normal(WINDOWS, 9, 60, 100), "speech_genuine": normal(WINDOWS, 15, 40, 3),
             "speech_impostor": normal(WINDOWS, 15, 40, 3)}
    return fast, conv3d, batch


def _distances(instance, batch, training):
    return instance.window_distances(batch["mouth"], batch["speech_genuine"],
                                     batch["speech_impostor"], training=training).numpy()


@pytest.mark.parametrize("training", [False, True])
def test_same_distances(pair, training):
    fast, conv3d, batch = pair
    a, b = _distances(fast, batch, training), _distances(conv3d, batch, training)
    assert a.shape == (2 * WINDOWS,) and np.all(a > 0)
    np.testing.assert_allclose(b, a, rtol=1e-5)


def test_same_loss_and_gradients(pair):
    fast, conv3d, batch = pair
    keep = tf.constant([True, True, True, True, False, True])
    results = []
    for instance in (fast, conv3d):
        with tf.GradientTape() as tape:
            loss, _ = pairwise_loss(instance, batch, keep, StepConfig())
        results.append((float(loss), tape.gradient(loss, instance.trainable_variables)))
    (loss_a, grads_a), (loss_b, grads_b) = results
    assert loss_b == pytest.approx(loss_a, rel=1e-5)
    assert all(g is not None for g in grads_a + grads_b)
    difference = np.sqrt(sum(np.sum((a.numpy() - b.numpy()) ** 2)
                             for a, b in zip(grads_a, grads_b)))
    norm = np.sqrt(sum(np.sum(a.numpy() ** 2) for a in grads_a))
    assert norm > 0
    assert difference / norm <= GRADIENT_BOUND


@pytest.mark.parametrize("pool_size,strides,shape", [
    ((1, 3, 3), (1, 2, 2), (2, 3, 13, 21, 4)),   # the mouth tower's pooling
    ((1, 2, 1), (1, 2, 1), (2, 5, 18, 1, 6)),    # the speech tower's pooling
])
@pytest.mark.parametrize("ties", [False, True])
def test_pooling_gradient_equals_max_pool2d(pool_size, strides, shape, ties):
    rng = np.random.default_rng(1)
    x = rng.normal(size=shape).astype(np.float32)
    if ties:
        # A few levels only: many windows hold their maximum more than once.
        x = np.round(x).astype(np.float32)
    x = tf.constant(x)
    outputs, grads = [], []
    for formulation in ("fast", "conv3d"):
        pool = MaxPool(pool_size, strides, formulation)
        with tf.GradientTape() as tape:
            tape.watch(x)
            y = pool(x)
            upstream = tf.constant(np.random.default_rng(2).normal(size=y.shape).astype(np.float32))
            objective = tf.reduce_sum(y * upstream)
        outputs.append(y.numpy())
        grads.append(tape.gradient(objective, x).numpy())
        # Each window hands its gradient to exactly one input: the units add up to the outputs.
        with tf.GradientTape() as tape:
            tape.watch(x)
            total = tf.reduce_sum(pool(x))
        assert float(tf.reduce_sum(tape.gradient(total, x))) == np.prod(y.shape)
    np.testing.assert_array_equal(outputs[1], outputs[0])
    np.testing.assert_array_equal(grads[1], grads[0])
