"""bfloat16 compute (avmatch.precision) and batch norm folded into the convolutions at
inference: both give the float32 / unfolded distances, within their tolerances."""
import keras
import numpy as np
import pytest
import tensorflow as tf

from avmatch import precision
from avmatch.benchmarking import BenchConfig, project_train_fn, random_window_batch
from avmatch.instance import MatchingInstance
from avmatch.nets.layers import ConvBlock
from avmatch.nets.nets_factory import NETWORKS


def _twins(**kwargs):
    """Two instances with identical float32 weights (the second built with kwargs), random
    batch-norm statistics, betas and PReLU slopes so that folding has something to fold."""
    keras.utils.set_random_seed(3)
    first = MatchingInstance.create(formulation="fast")
    second = MatchingInstance.create(formulation="fast", **kwargs)
    rng = np.random.default_rng(4)
    for a, b in zip(first.variables, second.variables):
        if a.path.endswith("moving_variance"):
            a.assign(rng.uniform(0.5, 2.0, a.shape).astype(np.float32))
        elif a.path.endswith(("moving_mean", "beta", "alpha")):
            a.assign(rng.normal(0.0, 0.3, a.shape).astype(np.float32))
        b.assign(a)
    return first, second


def _distances(instance, batch, training=False):
    return instance.window_distances(batch["mouth"], batch["speech_genuine"],
                                     batch["speech_impostor"], training=training).numpy()


def test_folded_inference_equals_batch_norm_after_conv():
    folded, unfolded = _twins()
    for tower in (unfolded.speech_net, unfolded.mouth_net):
        for layer in tower.body:
            if isinstance(layer, ConvBlock):
                layer.fold_batch_norm = False
    batch = random_window_batch(6, seed=5)
    a, b = _distances(folded, batch), _distances(unfolded, batch)
    np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-4)
    assert np.all(a > 0)


@pytest.mark.parametrize("name", sorted(NETWORKS))
def test_every_tower_folds_to_the_same_embeddings(name):
    tower = NETWORKS[name]
    net = tower.builder()
    shape = (3,) + tower.input_shape
    inputs = (tf.constant(np.random.default_rng(1).integers(0, 256, shape, dtype=np.uint8))
              if tower.modality == "mouth" else tf.random.normal(shape, seed=1))
    net(inputs)
    for variable in net.variables:
        if variable.path.endswith("moving_variance"):
            variable.assign(tf.fill(variable.shape, 1.7))
    folded = net(inputs).numpy()
    for layer in net.body:
        if isinstance(layer, ConvBlock):
            layer.fold_batch_norm = False
    np.testing.assert_allclose(folded, net(inputs).numpy(), rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("training", [False, True])
def test_bfloat16_towers_keep_float32_weights_and_close_distances(training):
    reference, mixed = _twins(dtype=precision.dtype_policy("bfloat16"))
    assert all(v.dtype == "float32" for v in mixed.variables)
    batch = random_window_batch(6, seed=6)
    a, b = _distances(reference, batch, training), _distances(mixed, batch, training)
    assert b.dtype == np.float32
    # bfloat16 keeps 8 bits of mantissa: about 0.4% per rounding, a few % through 7 layers
    np.testing.assert_allclose(b, a, rtol=0.05)


def test_a_bfloat16_training_step_updates_float32_weights():
    _, mixed = _twins(dtype=precision.dtype_policy("bfloat16"))
    before = [v.numpy().copy() for v in mixed.trainable_variables]
    step = project_train_fn(mixed, BenchConfig(), jit_compile=False)
    kept = step(random_window_batch(8, seed=7))
    assert 8 <= kept <= 16
    after = mixed.trainable_variables
    assert all(v.dtype == "float32" for v in after)
    assert all(np.isfinite(v.numpy()).all() for v in after)
    assert sum(not np.array_equal(a, b.numpy()) for a, b in zip(before, after)) > len(after) // 2


def test_auto_precision_follows_the_cpu_flags():
    assert precision.resolve("float32") == "float32"
    assert precision.resolve("bfloat16") == "bfloat16"
    if not tf.config.list_physical_devices("GPU"):
        assert precision.resolve("auto", {"avx512f", "avx512_bf16"}) == "bfloat16"
        assert precision.resolve("auto", {"amx_bf16"}) == "bfloat16"
        assert precision.resolve("auto", {"avx512f", "avx2"}) == "float32"
    assert precision.dtype_policy("bfloat16") == "mixed_bfloat16"
    with pytest.raises(ValueError, match="precision must be one of"):
        precision.resolve("float16")


def _block_pass(block, x, weights, fuse):
    """(output, gradients to x and the block's variables, moving statistics) of one
    training-mode call of `block` with fuse_training set to `fuse`."""
    block.fuse_training = fuse
    before = [v.numpy() for v in (block.batch_norm.moving_mean, block.batch_norm.moving_variance)]
    with tf.GradientTape() as tape:
        tape.watch(x)
        y = block(x, training=True, sample_weight=weights)
        loss = tf.reduce_sum(y * tf.sin(tf.range(tf.size(y), dtype=y.dtype)[:1] + y))
    grads = tape.gradient(loss, [x] + block.trainable_variables)
    moved = [v.numpy() for v in (block.batch_norm.moving_mean, block.batch_norm.moving_variance)]
    for variable, value in zip((block.batch_norm.moving_mean, block.batch_norm.moving_variance),
                               before):
        variable.assign(value)
    return y.numpy(), [g.numpy() for g in grads], moved


def test_fused_training_pass_equals_the_separate_layers():
    """ConvBlock's fused batch norm + PReLU (one XLA pass each way) gives the separate
    layers' output, gradients (weights of 0, 1 and 2 included) and moving statistics, in
    float64 to 1e-9."""
    keras.utils.set_random_seed(7)
    block = ConvBlock(8, (1, 3, 3), "SAME", "fast", dtype="float64")
    x = tf.random.normal((4, 2, 6, 5, 3), dtype=tf.float64, seed=2)
    block(x, training=True)
    block.activation.alpha.assign(np.linspace(-0.2, 0.4, 8))
    block.batch_norm.beta.assign(np.linspace(-0.5, 0.5, 8))
    weights = tf.constant([1.0, 0.0, 2.0, 1.0], tf.float64)
    fused = _block_pass(block, x, weights, fuse=True)
    separate = _block_pass(block, x, weights, fuse=False)
    np.testing.assert_allclose(fused[0], separate[0], rtol=1e-9, atol=1e-9)
    for a, b in zip(fused[1] + fused[2], separate[1] + separate[2]):
        np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-9)
    assert np.abs(fused[1][0][1]).max() > 0  # a weight-0 sample still passes a gradient
