"""Speed of the project's training step and scorer against a straightforward Conv3D baseline.

Both sides run the same function on the same seeded random inputs in one process:

* project: `TrainStep` on the "fast" towers (mouth tower once per window, dropped pairs
  weighted 0, static shapes; without XLA as train.py's default, and with XLA) and
  `scoring.make_scorer` on window batches;
* baseline: the reference's way on the "conv3d" towers: every pair carries its own mouth
  cube, the hard pairs are gathered (`train_step.pairwise_loss`, dynamic shapes, no XLA),
  and scoring runs `pair_distances` on independent pairs.

Throughput is pairs per second of the median repetition, warm-up (tracing, compilation)
excluded. The entry script is evaluation/benchmark.py.
"""
import dataclasses
import statistics
import time

import keras
import numpy as np
import tensorflow as tf

from avmatch.config import TrainConfig
from avmatch.ema import WeightAverages
from avmatch.instance import MatchingInstance, window_pairs
from avmatch.nets.nets_factory import NETWORKS
from avmatch.pair_selection import hard_pair_mask
from avmatch.precision import dtype_policy
from avmatch.scoring import make_scorer
from avmatch.train_step import StepConfig, TrainStep, pairwise_loss
from avprep.records import MOUTH_SHAPE

SPEECH_SHAPE = NETWORKS["lipread_speech"].input_shape


@dataclasses.dataclass(frozen=True)
class BenchConfig:
    """Sizes and repetitions; batch sizes count pairs (two per window), so they are even."""
    batch_size: int = 32
    score_batch_size: int = 128
    repeats: int = 5
    warmup: int = 2
    seed: int = 0
    precisions: tuple = ("float32", "bfloat16")
    # The optimiser as train.py sets it up by default.
    learning_rate: float = TrainConfig.learning_rate
    opt_epsilon: float = TrainConfig.opt_epsilon
    moving_average_decay: float = TrainConfig.moving_average_decay


def time_interleaved(fns, repeats, warmup):
    """Seconds of each timed call of every function in `fns` (name -> fn()).

    Every fn gets `warmup` untimed calls first; then the timed calls go round the functions
    in turn, `repeats` rounds, so a change of load on a shared machine hits every function
    alike and their ratios stay fair. fn must return only when its work is done (e.g. it
    fetches a result with .numpy()). Returns name -> list of `repeats` floats.
    """
    for fn in fns.values():
        for _ in range(warmup):
            fn()
    seconds = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            start = time.perf_counter()
            fn()
            seconds[name].append(time.perf_counter() - start)
    return seconds


def median_rate(items_per_call, seconds):
    """Items per second of the median call: items_per_call / median(seconds)."""
    return items_per_call / statistics.median(seconds)


def rate_summary(items_per_call, seconds, **extra):
    """dict pairs_per_second, median_seconds, seconds (each repetition) and any extra figures."""
    return dict(pairs_per_second=median_rate(items_per_call, seconds),
                median_seconds=statistics.median(seconds), seconds=list(seconds), **extra)


def random_window_batch(num_windows, seed):
    """A window batch of seeded random cubes: mouth uint8 (W, 9, 60, 100), speech_genuine and
    speech_impostor float32 (W, 15, 40, 3), as tf tensors."""
    rng = np.random.default_rng(seed)
    mouth = rng.integers(0, 256, (num_windows,) + MOUTH_SHAPE, dtype=np.uint8)
    speech = rng.standard_normal((2, num_windows) + SPEECH_SHAPE).astype(np.float32)
    return {"mouth": tf.constant(mouth), "speech_genuine": tf.constant(speech[0]),
            "speech_impostor": tf.constant(speech[1])}


def per_pair_inputs(batch):
    """The 2W pairs of a window batch as independent pairs, the reference's layout:
    (mouth uint8 (2W, 9, 60, 100) with each window's cube repeated, speech (2W, 15, 40, 3))."""
    _, window_index = window_pairs(tf.shape(batch["mouth"])[0])
    return (tf.gather(batch["mouth"], window_index),
            tf.concat([batch["speech_genuine"], batch["speech_impostor"]], 0))


def make_instances(seed, precision="float32"):
    """(fast, conv3d) matching instances holding identical weights, the same for a given seed;
    the fast one computes in `precision` (avmatch.precision), the baseline in float32."""
    keras.utils.set_random_seed(seed)
    fast = MatchingInstance.create(formulation="fast", dtype=dtype_policy(precision))
    conv3d = MatchingInstance.create(formulation="conv3d")
    for source, target in zip(fast.variables, conv3d.variables):
        target.assign(source)
    return fast, conv3d


def _optimizer_and_averages(instance, config):
    optimizer = keras.optimizers.Adam(config.learning_rate, epsilon=config.opt_epsilon)
    optimizer.build(instance.trainable_variables)
    averages = WeightAverages(instance.trainable_variables, config.moving_average_decay)
    return optimizer, averages


def project_train_fn(instance, config, jit_compile):
    """A callable batch -> kept-pair count (int) running one project TrainStep."""
    optimizer, averages = _optimizer_and_averages(instance, config)
    step = TrainStep(instance, optimizer, instance.trainable_variables, averages, StepConfig(),
                     tf.distribute.get_strategy(), jit_compile=jit_compile)

    def run(batch):
        return int(tf.reduce_sum(tf.cast(step(batch)["kept"], tf.int32)))
    return run


def baseline_train_fn(instance, config):
    """A callable batch -> kept-pair count (int): the reference's step on per-pair inputs.

    (a) distances of every pair with batch statistics (moving averages untouched), each pair
    with its own mouth cube;
    (b) hard_pair_mask; (c) pairwise_loss on the gathered kept pairs under a tape;
    (d) Adam and the moving averages. tf.function without XLA (the kept set has a
    data-dependent size).
    """
    optimizer, averages = _optimizer_and_averages(instance, config)
    step_config = StepConfig()
    variables = instance.trainable_variables

    @tf.function
    def step(batch):
        labels, _ = window_pairs(tf.shape(batch["mouth"])[0])
        mouth, speech = per_pair_inputs(batch)
        distances = instance.pair_distances(mouth, speech, training=True,
                                            update_statistics=False)
        keep = hard_pair_mask(labels, distances, step_config.hard_margin)
        with tf.GradientTape() as tape:
            loss, _ = pairwise_loss(instance, batch, keep, step_config)
        optimizer.apply_gradients(zip(tape.gradient(loss, variables), variables))
        averages.update(optimizer.iterations)
        return tf.reduce_sum(tf.cast(keep, tf.int32))

    return lambda batch: int(step(batch))


def baseline_score_fn(instance):
    """A compiled function (mouth (N, 9, 60, 100), speech (N, 15, 40, 3)) -> distances (N,)."""
    return tf.function(instance.pair_distances)


def measure_training(config):
    """Training throughput, pairs/s, of the project step in each of config.precisions (and
    with XLA in float32) and of the baseline.

    Each variant starts from the same weights and trains on the same batch, step after step;
    their repetitions are interleaved. Returns a dict project (float32, train.py's default, no
    XLA), project_<precision> for the other precisions, project_xla, baseline (each
    rate_summary plus kept_pairs_mean, the hard pairs kept per timed step), and ratio,
    ratio_<precision>, ratio_xla: each project figure / the baseline's pairs/s.
    """
    batch = random_window_batch(config.batch_size // 2, config.seed)
    builders = {"project": lambda: project_train_fn(make_instances(config.seed)[0], config,
                                                    jit_compile=False)}
    for precision in config.precisions:
        if precision != "float32":
            builders[f"project_{precision}"] = lambda precision=precision: project_train_fn(
                make_instances(config.seed, precision)[0], config, jit_compile=False)
    builders["project_xla"] = lambda: project_train_fn(make_instances(config.seed)[0], config,
                                                       jit_compile=True)
    builders["baseline"] = lambda: baseline_train_fn(make_instances(config.seed)[1], config)
    kept = {name: [] for name in builders}
    calls = {}
    for name, build in builders.items():
        train_fn = build()
        calls[name] = lambda train_fn=train_fn, name=name: kept[name].append(train_fn(batch))
    seconds = time_interleaved(calls, config.repeats, config.warmup)
    results = {name: rate_summary(config.batch_size, seconds[name],
                                  kept_pairs_mean=float(np.mean(kept[name][config.warmup:])))
               for name in builders}
    baseline = results["baseline"]["pairs_per_second"]
    for name in builders:
        if name.startswith("project"):
            results[name.replace("project", "ratio")] = (results[name]["pairs_per_second"]
                                                         / baseline)
    return results


def measure_scoring(config):
    """Scoring throughput, pairs/s, of make_scorer (fast towers with batch norm folded,
    window batches; float32 and each other of config.precisions) and of the conv3d towers'
    pair_distances on the same pairs laid out one mouth cube per pair.

    Returns a dict project (float32), project_<precision>, baseline (rate_summary each),
    ratio and ratio_<precision> (project figure / baseline), and max_abs_difference between
    the float32 project's and the baseline's distances of the same pairs (same weights, so
    about 1e-5).
    """
    batch = random_window_batch(config.score_batch_size // 2, config.seed + 1)
    fast, conv3d = make_instances(config.seed)
    scorers = {"project": make_scorer(fast)}
    for precision in config.precisions:
        if precision != "float32":
            scorers[f"project_{precision}"] = make_scorer(make_instances(config.seed,
                                                                         precision)[0])
    baseline = baseline_score_fn(conv3d)
    mouth, speech = per_pair_inputs(batch)
    outputs = {}

    def scoring_call(name):
        def call():
            outputs[name] = scorers[name](batch)[1].numpy()
        return call

    def baseline_call():
        outputs["baseline"] = baseline(mouth, speech).numpy()

    calls = {name: scoring_call(name) for name in scorers}
    calls["baseline"] = baseline_call
    seconds = time_interleaved(calls, config.repeats, config.warmup)
    results = {name: rate_summary(config.score_batch_size, seconds[name]) for name in calls}
    project, reference = results["project"], results["baseline"]
    # The scorer interleaves genuine and impostor per window; pair_distances keeps
    # all genuine pairs first, then all impostors.
    windows = config.score_batch_size // 2
    project_in_pair_order = outputs["project"].reshape(windows, 2).T.reshape(-1)
    difference = float(np.max(np.abs(project_in_pair_order - outputs["baseline"])))
    for name in scorers:
        results[name.replace("project", "ratio")] = (results[name]["pairs_per_second"]
                                                     / reference["pairs_per_second"])
    results["max_abs_difference"] = difference
    return results
