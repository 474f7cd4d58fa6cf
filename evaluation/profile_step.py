"""Profiles the training step (train.py's TrainStep) or the scorer with TensorFlow's profiler.

    python evaluation/profile_step.py --logdir=/tmp/profile            # training step
    python evaluation/profile_step.py --what=scoring --logdir=/tmp/profile

Runs --warmup untimed calls on seeded random inputs, then --calls under the profiler, writes
the trace into --logdir (TensorBoard's profile tab opens it) and prints the op time per call
summed by op type and pass (forward / backward), largest first.
"""
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


def main(argv):
    if len(argv) > 1:
        raise UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
    if not FLAGS.logdir:
        raise UsageError("--logdir is required")
    if FLAGS.calls < 1 or FLAGS.warmup < 0:
        raise UsageError("--calls must be >= 1 and --warmup >= 0")
    for name in ("batch_size", "score_batch_size"):
        if getattr(FLAGS, name) < 2 or getattr(FLAGS, name) % 2:
            raise UsageError(f"--{name} must be a positive even number")
    import time

    from avmatch import profiling

    call = profiled_call(FLAGS.what, FLAGS.batch_size, FLAGS.score_batch_size, FLAGS.precision)
    for _ in range(FLAGS.warmup):
        call()
    started = time.perf_counter()
    trace = profiling.profile_calls(call, FLAGS.logdir, FLAGS.calls)
    wall = (time.perf_counter() - started) / FLAGS.calls
    print(f"{FLAGS.what}: {1e3 * wall:.1f} ms per call under the profiler; trace {trace}")
    print(profiling.format_op_table(profiling.op_table(trace, FLAGS.calls), FLAGS.top))


if __name__ == "__main__":
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    run(main)
