"""Profiles the training step (train.py's TrainStep) or the scorer with TensorFlow's profiler.

    python evaluation/profile_step.py --logdir=/tmp/profile            # training step
    python evaluation/profile_step.py --what=scoring --logdir=/tmp/profile

Runs --warmup untimed calls on seeded random inputs, then --calls under the profiler, writes
the trace into --logdir (TensorBoard's profile tab opens it) and prints the op time per call
summed by op type and pass (forward / backward), largest first.
"""
import dataclasses
import os

from absl import flags

from avprep.cli import UsageError, run

FLAGS = flags.FLAGS
flags.DEFINE_enum("what", "training", ["training", "scoring"], "What to profile.")
flags.DEFINE_string("logdir", None, "Folder for the trace.")
flags.DEFINE_integer("calls", 5, "Profiled calls.")
flags.DEFINE_integer("warmup", 3, "Untimed calls first (tracing).")
flags.DEFINE_integer("batch_size", 32, "Training pairs per step (even).")
flags.DEFINE_integer("score_batch_size", 128, "Scoring pairs per call (even).")
flags.DEFINE_integer("top", 15, "Rows of the table.")
flags.DEFINE_enum("precision", "float32", ["float32", "bfloat16", "auto"], "Tower arithmetic "
                  "(train.py --precision).")


def profiled_call(what, batch_size, score_batch_size, precision="float32"):
    """A zero-argument function that runs one training step or one scoring call."""
    from avmatch import benchmarking
    from avmatch.scoring import make_scorer

    config = benchmarking.BenchConfig(batch_size=batch_size, score_batch_size=score_batch_size)
    fast, _ = benchmarking.make_instances(config.seed, precision)
    if what == "training":
        step = benchmarking.project_train_fn(fast, config, jit_compile=False)
        batch = benchmarking.random_window_batch(batch_size // 2, config.seed)
        return lambda: step(batch)
    scorer = make_scorer(fast)
    batch = benchmarking.random_window_batch(score_batch_size // 2, config.seed + 1)
    return lambda: scorer(batch)[1].numpy()


@dataclasses.dataclass(frozen=True)
class ProfileConfig:
    """What to profile, how many calls, on what batches, and where the trace goes."""
    what: str
    logdir: str
    calls: int
    warmup: int
    batch_size: int
    score_batch_size: int
    top: int
    precision: str


def config_from_flags(values):
    """ProfileConfig from parsed flags; UsageError for values that cannot work."""
    if not values.logdir:
        raise UsageError("--logdir is required")
    if values.calls < 1 or values.warmup < 0:
        raise UsageError("--calls must be >= 1 and --warmup >= 0")
    for name in ("batch_size", "score_batch_size"):
        if getattr(values, name) < 2 or getattr(values, name) % 2:
            raise UsageError(f"--{name} must be a positive even number")
    if values.top < 1:
        raise UsageError("--top must be >= 1")
    return ProfileConfig(**{field.name: getattr(values, field.name)
                            for field in dataclasses.fields(ProfileConfig)})


def main(argv):
    if len(argv) > 1:
        raise UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
    config = config_from_flags(FLAGS)
    import time

    from avmatch import profiling

    call = profiled_call(config.what, config.batch_size, config.score_batch_size,
                         config.precision)
    for _ in range(config.warmup):
        call()
    started = time.perf_counter()
    trace = profiling.profile_calls(call, config.logdir, config.calls)
    wall = (time.perf_counter() - started) / config.calls
    print(f"{config.what}: {1e3 * wall:.1f} ms per call under the profiler; trace {trace}")
    print(profiling.format_op_table(profiling.op_table(trace, config.calls), config.top))


if __name__ == "__main__":
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    run(main)
