"""Scores held-out pairs with a trained model and writes the metrics and plots.

    python code/test.py                   # latest checkpoint of train.py's default run
    python code/test.py --checkpoint_dir=runs/grid --data_dir=DATASET --test_dir=results/grid

Prints the 10-fold mean (and std) EER, interpolated EER, AUC and AP, and writes into
--test_dir: metrics.json, scores.csv (label, distance per pair), roc.png,
precision_recall.png and distance_histogram.png.
"""

import json
import os

from absl import flags, logging

from avmatch.cli import UsageError, run
from avmatch.config import EvalConfig
from avmatch.records import SPLITS

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
    "use_moving_average", _D.use_moving_average, "Score with the moving averages of the weights."
)


def run_config(checkpoint_dir):
    """The training run's config.json as a dict ({} when absent)."""
    path = os.path.join(checkpoint_dir, "config.json")
    if not os.path.exists(path):
        return {}
    with open(path) as handle:
        return json.load(handle)


def main(argv):
    if len(argv) > 1:
        raise UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
    if FLAGS.batch_size < 2 or FLAGS.num_folds < 1:
        raise UsageError("--batch_size must be >= 2 and --num_folds >= 1")
    config = EvalConfig(
        checkpoint_dir=FLAGS.checkpoint_dir,
        data_dir=FLAGS.data_dir,
        test_dir=FLAGS.test_dir or os.path.join(FLAGS.checkpoint_dir, "test"),
        split=FLAGS.split,
        batch_size=FLAGS.batch_size,
        num_folds=FLAGS.num_folds,
        use_moving_average=FLAGS.use_moving_average,
    )
    from avmatch.evaluation import evaluate_checkpoint

    result = evaluate_checkpoint(config, run_config(config.checkpoint_dir), log=logging.info)
    print(result["summary"])
    print(
        f"wrote {config.test_dir}: metrics.json, scores.csv, roc.png, precision_recall.png, "
        "distance_histogram.png"
    )


if __name__ == "__main__":
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    run(main)
