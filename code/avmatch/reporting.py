"""The outputs of a test run: metrics.json, scores.csv and three PNG plots in one directory.

Files written by write_test_outputs into `test_dir`:
  metrics.json            fold metrics (see avmatch.metrics.fold_metrics) plus caller extras
  scores.csv              header "label,distance", one row per pair in the given order
  roc.png, precision_recall.png, distance_histogram.png
Every file is written atomically (temporary file in the same directory, then os.replace).
"""
import os

import numpy as np

from avmatch import metrics, plots
from avprep.atomic import atomic_write, check_folder_path
from avprep.records import write_json_atomic

METRICS_NAME = "metrics.json"
SCORES_NAME = "scores.csv"
ROC_NAME = "roc.png"
PRECISION_RECALL_NAME = "precision_recall.png"
HISTOGRAM_NAME = "distance_histogram.png"


def _write_scores_csv(path, labels, distances):
    """Writes "label,distance" rows; distances use repr so they read back to the same float64."""
    def write(handle):
        handle.write("label,distance\n")
        handle.writelines(f"{int(label)},{float(distance)!r}\n"
                          for label, distance in zip(labels, distances))
    atomic_write(path, write, binary=False)


def check_test_dir(test_dir):
    """Raises NotADirectoryError when `test_dir`, or a folder on its way, exists and is not a
    directory (avprep.atomic.check_folder_path)."""
    check_folder_path(test_dir, f"test_dir {test_dir}")


def write_test_outputs(test_dir, labels, distances, num_folds=10, extra=None):
    """Scores a test set, writes the five output files into `test_dir`, returns the metrics.

    Args:
      test_dir: output directory, created when missing.
      labels: shape (n,) 0/1 (1 = genuine pair).
      distances: shape (n,) float, finite; score = -distance.
      num_folds: K consecutive folds for the mean/std (see metrics.fold_metrics).
      extra: optional JSON-serialisable dict merged into metrics.json and the returned dict
        (e.g. checkpoint path, step); its keys may not shadow the metric keys.
    Returns:
      The dict written to metrics.json: "eer", "eer_interpolated", "auc", "ap" each
      {"mean", "std"}, "num_pairs", "num_folds", "skipped_folds", plus `extra`.
    Raises:
      ValueError: bad inputs, no fold with both classes, or `extra` shadowing a metric key.
      NotADirectoryError: `test_dir` cannot be a directory (see check_test_dir).
    """
    check_test_dir(test_dir)  # its own clear error, not os.makedirs' FileExistsError
    result = metrics.fold_metrics(labels, distances, num_folds=num_folds)
    extra = dict(extra or {})
    shadowed = sorted(set(extra) & set(result))
    if shadowed:
        raise ValueError(f"extra keys would overwrite metrics: {', '.join(shadowed)}")
    result.update(extra)
    labels = np.asarray(labels).reshape(-1).astype(np.int64)
    distances = np.asarray(distances, dtype=np.float64).reshape(-1)
    os.makedirs(test_dir, exist_ok=True)
    write_json_atomic(os.path.join(test_dir, METRICS_NAME), result)
    _write_scores_csv(os.path.join(test_dir, SCORES_NAME), labels, distances)
    plots.save_roc(os.path.join(test_dir, ROC_NAME), labels, -distances)
    plots.save_precision_recall(os.path.join(test_dir, PRECISION_RECALL_NAME), labels, -distances)
    plots.save_distance_histogram(os.path.join(test_dir, HISTOGRAM_NAME), labels, distances)
    return result


def format_metrics(result):
    """One printable line of a fold_metrics-style dict, EERs in percent, AUC/AP as fractions.

    Example: "EER=12.34% (+/-1.20) EER(interp)=12.10% (+/-1.15) AUC=0.9512 (+/-0.0100)
    AP=0.9433 (+/-0.0090) over 1280 pairs, 10 folds" (one line; skipped folds are named).
    """
    eer, interp = result["eer"], result["eer_interpolated"]
    line = (f"EER={100 * eer['mean']:.2f}% (+/-{100 * eer['std']:.2f}) "
            f"EER(interp)={100 * interp['mean']:.2f}% (+/-{100 * interp['std']:.2f}) "
            f"AUC={result['auc']['mean']:.4f} (+/-{result['auc']['std']:.4f}) "
            f"AP={result['ap']['mean']:.4f} (+/-{result['ap']['std']:.4f}) "
            f"over {result['num_pairs']} pairs, {result['num_folds']} folds")
    skipped = result.get("skipped_folds", 0)
    if skipped:
        line += f" ({skipped} skipped: single class)"
    return line
