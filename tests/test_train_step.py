"""The training step: the weighted formulation equals the reference's gather-and-run, and a
compiled step (single device and MirroredStrategy) updates what it should."""
import json
import subprocess
import sys
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf

from avmatch.ema import WeightAverages
from avmatch.instance import MatchingInstance
from avmatch.train_step import (StepConfig, TrainStep, kept_pairs, pairwise_loss,
                                weighted_loss)

HERE = Path(__file__).resolve().parent
WINDOWS = 4


def random_batch(seed, windows=WINDOWS, dtype=np.float32):
    rng = np.random.default_rng(seed)
    return {"mouth": tf.constant(rng.integers(0, 256, (windows, 9, 60, 100), dtype=np.uint8)),
            "speech_genuine": tf.constant(rng.normal(size=(windows, 15, 40, 3)).astype(dtype)),
            "speech_impostor": tf.constant(rng.normal(size=(windows, 15, 40, 3)).astype(dtype))}


def randomise_alphas(instance, seed):
    """Nonzero PReLU slopes, so no max-pool window ties at the ReLU's zeros."""
    rng = np.random.default_rng(seed)
    for variable in instance.variables:
        if variable.path.endswith("/alpha"):
            variable.assign(rng.uniform(0.1, 0.3, variable.shape).astype(variable.dtype))


def margin_dropping_half(instance, batch):
    """A hard_margin that keeps the two closest of the 4 impostors and drops the other two.

    On random inputs every impostor tends to be closer than the farthest genuine pair, so a
    fixed margin (even 0) may keep them all; the margin is set from the selection pass's
    distances (batch statistics).
    """
    distances = instance.window_distances(batch["mouth"], batch["speech_genuine"],
                                          batch["speech_impostor"], training=True,
                                          update_statistics=False).numpy()
    max_gen = distances[:WINDOWS].max()
    impostors = np.sort(distances[WINDOWS:])
    return float((impostors[1] + impostors[2]) / 2 - max_gen)


@pytest.fixture(scope="module")
def float64_case():
    """A float64 instance, a batch, the kept pairs and both losses' gradients."""
    keras.utils.set_random_seed(1)
    instance = MatchingInstance.create(formulation="fast", dtype="float64")
    randomise_alphas(instance, 2)
    batch = random_batch(3, dtype=np.float64)
    config = StepConfig(hard_margin=margin_dropping_half(instance, batch))
    keep = kept_pairs(instance, batch, config)
    weights = tf.cast(keep, tf.float64)
    variables = instance.trainable_variables
    inputs = [batch["speech_impostor"]]
    with tf.GradientTape(persistent=True) as tape:
        tape.watch(inputs)
        weighted, _ = weighted_loss(instance, batch, weights, config)
    weighted_grads = tape.gradient(weighted, variables)
    input_grad = tape.gradient(weighted, inputs[0])
    with tf.GradientTape() as tape:
        reference, _ = pairwise_loss(instance, batch, keep, config)
    reference_grads = tape.gradient(reference, variables)
    return dict(keep=keep.numpy(), weighted=float(weighted), reference=float(reference),
                weighted_grads=weighted_grads, reference_grads=reference_grads,
                input_grad=input_grad.numpy(), variables=variables)


def test_selection_drops_some_impostors(float64_case):
    keep = float64_case["keep"]
    assert keep[:WINDOWS].all(), "every genuine pair is kept"
    assert keep[WINDOWS:].sum() == 2, keep


def test_weighted_loss_equals_pairwise_loss_in_float64(float64_case):
    assert float64_case["weighted"] == pytest.approx(float64_case["reference"], rel=1e-9)


def test_weighted_gradients_equal_pairwise_gradients_in_float64(float64_case):
    grads, reference = float64_case["weighted_grads"], float64_case["reference_grads"]
    assert len(grads) == len(float64_case["variables"]) == 40
    assert all(g is not None for g in grads) and all(r is not None for r in reference)
    difference = np.sqrt(sum(float(tf.reduce_sum(tf.square(g - r)))
                             for g, r in zip(grads, reference)))
    norm = np.sqrt(sum(float(tf.reduce_sum(tf.square(r))) for r in reference))
    assert norm > 0
    assert difference / norm <= 1e-8


def test_dropped_impostors_get_no_input_gradient(float64_case):
    keep_impostor = float64_case["keep"][WINDOWS:]
    row_norms = np.abs(float64_case["input_grad"]).reshape(WINDOWS, -1).max(axis=1)
    assert np.all(row_norms[~keep_impostor] == 0.0)
    assert np.all(row_norms[keep_impostor] > 0.0)


def _snapshot(variables):
    return [v.numpy().copy() for v in variables]


@pytest.mark.parametrize("jit_compile", [False, True])
def test_train_step_on_default_strategy(jit_compile):
    keras.utils.set_random_seed(4)
    strategy = tf.distribute.get_strategy()
    instance = MatchingInstance.create()
    variables = instance.trainable_variables
    optimizer = keras.optimizers.Adam(1e-3, epsilon=1.0)
    optimizer.build(variables)
    averages = WeightAverages(variables, decay=0.9999)
    step = TrainStep(instance, optimizer, variables, averages, StepConfig(), strategy,
                     jit_compile=jit_compile)
    before = _snapshot(variables)
    moving_before = _snapshot([v for v in instance.variables if not v.trainable])
    out = step(random_batch(5))
    after = _snapshot(variables)

    assert int(optimizer.iterations) == 1
    assert np.isfinite(float(out["loss"])) and float(out["loss"]) > 0
    for key in ("distances", "labels", "kept"):
        assert out[key].shape == (2 * WINDOWS,)
    np.testing.assert_array_equal(out["labels"].numpy(), [1] * WINDOWS + [0] * WINDOWS)
    assert out["kept"].numpy()[:WINDOWS].all()
    assert np.all(np.isfinite(out["distances"].numpy()))
    changed = [not np.array_equal(b, a) for b, a in zip(before, after)]
    assert sum(changed) == len(variables)
    moving_after = _snapshot([v for v in instance.variables if not v.trainable])
    assert all(not np.array_equal(b, a) for b, a in zip(moving_before, moving_after))
    # The shadow after update n = 1 is decay * v0 + (1 - decay) * v1, decay = (1 + 1) / (10 + 1).
    decay = 2.0 / 11.0
    for shadow, b, a in zip(averages.shadows, before, after):
        np.testing.assert_allclose(shadow.numpy(), decay * b + (1 - decay) * a,
                                   rtol=1e-5, atol=1e-7)


def test_train_step_under_mirrored_strategy_with_two_cpus():
    # Logical devices must be set before TensorFlow initialises its devices: a fresh process.
    result = subprocess.run([sys.executable, str(HERE / "mirrored_step_check.py")],
                            capture_output=True, text=True, timeout=300, cwd=HERE.parent)
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["replicas"] == 2
    assert report["iterations"] == 2
    assert all(np.isfinite(report["losses"])) and all(loss > 0 for loss in report["losses"])
    assert report["outputs_shape"] == [2 * 4]
    assert report["changed_variables"] == report["num_variables"] == 40
    assert report["shadows_moved"] == 40


def _moving_statistics(instance):
    return [v.numpy().copy() for v in instance.variables if "moving_" in v.path]


def test_selection_uses_batch_statistics_like_the_reference():
    """kept_pairs equals the reference's rule on the reference's selection pass: every pair
    with its own mouth cube, batch norm on the batch's statistics; the moving averages are
    not touched (they would be with training=True alone)."""
    keras.utils.set_random_seed(4)
    instance = MatchingInstance.create(formulation="fast")
    randomise_alphas(instance, 5)
    batch = random_batch(6, windows=8)
    labels = np.r_[np.ones(8), np.zeros(8)]
    window_index = np.r_[np.arange(8), np.arange(8)]
    mouth = tf.gather(batch["mouth"], window_index)
    speech = tf.concat([batch["speech_genuine"], batch["speech_impostor"]], 0)
    before = _moving_statistics(instance)
    reference = instance.pair_distances(mouth, speech, training=True,
                                        update_statistics=False).numpy()
    inference = instance.pair_distances(mouth, speech).numpy()
    # the two modes differ by an order of magnitude at initialisation: the test can tell them
    assert np.median(reference) > 3 * np.median(inference)
    # a margin half-way between two impostors, so float rounding cannot move one across it
    hard_margin = float(np.sort(reference[8:])[3:5].mean() - reference[:8].max())
    expected = labels.astype(bool) | (reference < reference[:8].max() + hard_margin)
    keep = kept_pairs(instance, batch, StepConfig(hard_margin=hard_margin)).numpy()
    np.testing.assert_array_equal(keep, expected)
    assert 0 < keep[8:].sum() < 8
    for old, new in zip(before, _moving_statistics(instance)):
        np.testing.assert_array_equal(old, new)


def test_adaptive_selection_applies_the_relative_margin():
    """selection_rule="adaptive": impostors kept below max_gen * (1 + ratio) of the same
    batch-statistics distances the hard rule sees."""
    keras.utils.set_random_seed(4)
    instance = MatchingInstance.create(formulation="fast")
    batch = random_batch(6, windows=8)
    distances = instance.window_distances(batch["mouth"], batch["speech_genuine"],
                                          batch["speech_impostor"], training=True,
                                          update_statistics=False).numpy()
    max_gen = distances[:8].max()
    ratio = float(np.sort(distances[8:])[3] / max_gen - 1.0)
    keep = kept_pairs(instance, batch, StepConfig(selection_rule="adaptive",
                                                  adaptive_margin_ratio=ratio)).numpy()
    np.testing.assert_array_equal(keep[8:], distances[8:] < max_gen * (1.0 + ratio))
    assert keep[:8].all()


def test_offset_loss_adds_the_weighted_offset_term_with_finite_gradients():
    """weighted_loss with the offset loss = the contrastive loss + weight x the mean over
    windows of -log softmax(-distance / t) of the genuine audio against the video's other
    windows' audio and the window's impostor, computed here from the embeddings by hand."""
    keras.utils.set_random_seed(1)
    instance = MatchingInstance.create(formulation="fast", dtype="float64")
    randomise_alphas(instance, 2)
    batch = random_batch(3, dtype=np.float64)
    batch["video"] = tf.constant([1, 1, 1, 2], tf.int64)
    batch["start_frame"] = tf.constant([0, 3, 6, 0], tf.int64)
    weights = tf.ones([2 * WINDOWS], tf.float64)
    plain, _ = weighted_loss(instance, batch, weights, StepConfig())
    config = StepConfig(offset_loss_weight=2.0, offset_temperature=5.0)
    with tf.GradientTape() as tape:
        total, _ = weighted_loss(instance, batch, weights, config)
    grads = tape.gradient(total, instance.trainable_variables)

    mouth, speech = (t.numpy() for t in instance.window_embeddings(
        batch["mouth"], batch["speech_genuine"], batch["speech_impostor"], training=True,
        pair_weights=weights))
    cross = np.linalg.norm(mouth[:, None] - speech[None, :WINDOWS], axis=-1)
    impostor = np.linalg.norm(mouth - speech[WINDOWS:], axis=-1)
    others = {0: [1, 2], 1: [0, 2], 2: [0, 1], 3: []}
    terms = []
    for i, same_video in others.items():
        candidates = np.concatenate([[cross[i, i]], cross[i, same_video], [impostor[i]]])
        logits = -candidates / 5.0
        terms.append(np.log(np.exp(logits).sum()) - logits[0])
    assert float(total) == pytest.approx(float(plain) + 2.0 * np.mean(terms), rel=1e-9)
    assert all(g is not None and np.all(np.isfinite(g.numpy())) for g in grads)
