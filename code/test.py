"""Scores held-out pairs with a trained model and writes the metrics and plots.

    python code/test.py        # train.py's default run: its best epoch (else its latest)
    python code/test.py --checkpoint_dir=runs/grid --data_dir=DATASET --test_dir=results/grid

Prints the 10-fold mean (and std) EER, interpolated EER, AUC and AP, and writes into
--test_dir: metrics.json, scores.csv (label, distance per pair), roc.png,
precision_recall.png and distance_histogram.png.
"""

import os

from absl import flags, logging

from avmatch.config import EvalConfig
from avprep.cli import UsageError, reported, run
from avprep.records import SPLITS

FLAGS = flags.FLAGS
_D = EvalConfig()
flags.DEFINE_string("checkpoint_dir", _D.checkpoint_dir, "train.py's --train_dir.")
flags.DEFINE_string(
    "data_dir",
    "",
    "Prepared dataset; empty = the dataset the run trained on "
    "(its config.json), else the demo dataset.",
)
flags.DEFINE_string("test_dir", "", "Output directory; empty = CHECKPOINT_DIR/test.")
flags.DEFINE_enum("split", _D.split, list(SPLITS), "Split to score.")
flags.DEFINE_integer("batch_size", _D.batch_size, "Pairs per scoring batch.")
flags.DEFINE_integer(
    "num_folds", _D.num_folds, "Consecutive folds for the mean and std of the metrics."
)
flags.DEFINE_boolean(
    "use_moving_average", _D.use_moving_average, "Score with the moving averages of the weights "
    "(they are in the latest checkpoint: implies --checkpoint=latest)."
)
flags.DEFINE_enum("checkpoint", _D.checkpoint, ["best", "latest"],
                  "best: the epoch with the best validation AUC (CHECKPOINT_DIR/best), when "
                  "the run kept one; latest: the newest checkpoint.")
flags.DEFINE_enum("precision", _D.precision, ["float32", "bfloat16", "auto"], "Scoring "
                  "arithmetic (see train.py --precision); any precision reads any checkpoint.")
flags.DEFINE_integer("offset_windows", _D.offset_windows, "Also count how often a mouth "
                     "window's own audio is nearer than its video's audio at every other "
                     "offset among this many consecutive windows (0.1 s apart; the sync "
                     "check's question per window); 0 = not measured.")
flags.DEFINE_enum("group_by", _D.group_by, ["", "source", "speaker"],
                  "Also report the metrics per source (input folder) or per speaker.")


def check_checkpoint(checkpoint_dir, which):
    """Fails early, before any dataset is made, when there is nothing to score."""
    from avmatch import checkpoints

    try:
        checkpoints.checkpoint_to_score(checkpoint_dir, which)
    except FileNotFoundError as error:
        raise UsageError(f"{error} (train first with code/train.py "
                         f"--train_dir={checkpoint_dir})") from None


def evaluate(config, saved_run):
    """evaluate_checkpoint, with a bad dataset or checkpoint, or a batch too large for the
    memory, reported as a UsageError."""
    import tensorflow as tf

    from avmatch.checkpoints import CheckpointError
    from avmatch.evaluation import evaluate_checkpoint
    from avmatch.input_pipeline import DatasetError, naming_damaged_shards

    try:
        # OSError: the dataset's files, or test_dir's (not writable, replaced by a file meanwhile)
        with reported(DatasetError, CheckpointError, OSError), \
                naming_damaged_shards(config.data_dir):
            return evaluate_checkpoint(config, saved_run, log=logging.info)
    except tf.errors.ResourceExhaustedError:
        raise UsageError(f"--batch_size={config.batch_size} does not fit in memory "
                         "(TensorFlow could not allocate a batch); lower it") from None


def main(argv):
    if len(argv) > 1:
        raise UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
    if FLAGS.batch_size < 2 or FLAGS.num_folds < 1:
        raise UsageError("--batch_size must be >= 2 and --num_folds >= 1")
    if FLAGS.offset_windows == 1 or FLAGS.offset_windows < 0:
        raise UsageError(f"--offset_windows={FLAGS.offset_windows} must be 0 (off) or at least 2")
    from avmatch.config import read_saved_run
    from avmatch.reporting import check_test_dir
    from avprep.demo_data import dataset_or_demo

    test_dir = FLAGS.test_dir or os.path.join(FLAGS.checkpoint_dir, "test")
    with reported(NotADirectoryError):
        check_test_dir(test_dir)  # now, not after the whole split is scored
    check_checkpoint(FLAGS.checkpoint_dir, FLAGS.checkpoint)
    with reported(ValueError):
        saved_run = read_saved_run(FLAGS.checkpoint_dir)
    config = EvalConfig(
        checkpoint_dir=FLAGS.checkpoint_dir,
        data_dir=dataset_or_demo(FLAGS.data_dir, saved_run.train.data_dir, log=logging.info),
        test_dir=test_dir,
        split=FLAGS.split,
        batch_size=FLAGS.batch_size,
        num_folds=FLAGS.num_folds,
        use_moving_average=FLAGS.use_moving_average,
        checkpoint=FLAGS.checkpoint,
        group_by=FLAGS.group_by,
        precision=FLAGS.precision,
        offset_windows=FLAGS.offset_windows,
    )
    result = evaluate(config, saved_run)
    print(result["summary"])
    if config.group_by:
        from avmatch.evaluation import format_groups

        print(format_groups(result["groups"], config.group_by))
    print(
        f"wrote {config.test_dir}: metrics.json, scores.csv, roc.png, precision_recall.png, "
        "distance_histogram.png"
    )


if __name__ == "__main__":
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    run(main)
