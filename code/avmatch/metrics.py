"""Verification metrics of audio-visual pairs: equal error rate, ROC AUC and average precision.

Conventions shared by every function here:
  labels     1-D array of 0/1 (any integer, bool or float dtype holding only 0 and 1), shape (n,);
             1 = genuine pair (audio and mouth in sync), 0 = impostor pair.
  scores     1-D float array, shape (n,); larger = more likely genuine.
  distances  1-D float array, shape (n,); the embedding distance of a pair; the score of a pair is
             its negated distance, as in the reference (score = -d).
All returned rates are fractions in [0, 1] as Python floats.
"""
import math

import numpy as np
from sklearn.metrics import average_precision_score, roc_auc_score, roc_curve

METRIC_NAMES = ("eer", "eer_interpolated", "auc", "ap")


def _checked_pairs(labels, values, name, require_finite=True):
    """`labels` as an int64 array and `values` as a float64 array, both shape (n,), after checks.

    Raises ValueError on a shape mismatch, an empty input, labels other than 0/1, or (when
    `require_finite`) non-finite values, which sklearn would reject with a less clear message.
    """
    labels = np.asarray(labels).reshape(-1)
    values = np.asarray(values, dtype=np.float64).reshape(-1)
    if labels.shape != values.shape:
        raise ValueError(f"labels and {name} differ in length: {labels.size} vs {values.size}")
    if labels.size == 0:
        raise ValueError("no pairs to evaluate")
    if not np.isin(labels, (0, 1)).all():
        raise ValueError("labels must be 0 (impostor) or 1 (genuine)")
    if require_finite and not np.isfinite(values).all():
        raise ValueError(f"{name} contain NaN or infinite values")
    return labels.astype(np.int64), values


def has_both_classes(labels):
    """True when `labels` (shape (n,)) holds at least one genuine (1) and one impostor (0) pair."""
    labels = np.asarray(labels).reshape(-1)
    return bool((labels == 1).any() and (labels == 0).any())


def _checked_two_class(labels, scores):
    """The checked (labels, scores) pair; raises ValueError when only one class is present."""
    labels, scores = _checked_pairs(labels, scores, "scores")
    if not has_both_classes(labels):
        raise ValueError("the metrics need both genuine (1) and impostor (0) pairs; "
                         f"got only label {int(labels[0])}")
    return labels, scores


def eer_reference(labels, scores):
    """The reference's EER: the false positive rate at the ROC point where |fpr - fnr| is smallest.

    fpr, tpr come from sklearn's roc_curve with its defaults (as in the reference), fnr = 1 - tpr.
    On ties the first such ROC point (highest threshold) wins, as with numpy argmin.
    Raises ValueError when `labels` hold a single class.
    """
    labels, scores = _checked_two_class(labels, scores)
    fpr, tpr, _ = roc_curve(labels, scores, pos_label=1)
    return float(fpr[np.argmin(np.abs(fpr - (1.0 - tpr)))])


def eer_interpolated(labels, scores):
    """The EER where the piecewise-linear fpr and fnr = 1 - tpr curves cross.

    Along the ROC points (thresholds falling) fpr - fnr rises from -1 to +1; the crossing is taken
    on the straight segment between the last point below zero and the first point at or above it,
    where fpr and fnr are equal. Raises ValueError when `labels` hold a single class.
    """
    labels, scores = _checked_two_class(labels, scores)
    fpr, tpr, _ = roc_curve(labels, scores, pos_label=1, drop_intermediate=False)
    fnr = 1.0 - tpr
    gap = fpr - fnr
    upper = int(np.argmax(gap >= 0.0))
    # sklearn's first ROC point is (0, 0), where the gap is -1, so upper >= 1 here.
    if gap[upper] == 0.0:
        return float(fpr[upper])
    lower = upper - 1
    fraction = -gap[lower] / (gap[upper] - gap[lower])
    return float(fpr[lower] + fraction * (fpr[upper] - fpr[lower]))


def auc(labels, scores):
    """Area under the ROC curve (sklearn roc_auc_score); raises ValueError for a single class."""
    labels, scores = _checked_two_class(labels, scores)
    return float(roc_auc_score(labels, scores))


def average_precision(labels, scores):
    """Average precision of the genuine class (sklearn average_precision_score).

    Raises ValueError for a single class (sklearn would only warn and return a meaningless value).
    """
    labels, scores = _checked_two_class(labels, scores)
    return float(average_precision_score(labels, scores, pos_label=1))


def batch_metrics(labels, distances):
    """{"eer", "auc", "ap"} of one batch for training logs, never raising on degenerate batches.

    eer follows the reference rule. All three values are NaN when the batch holds a single class
    or a non-finite distance (e.g. a diverged step), so a log line is still written.
    Shape/label errors still raise ValueError: they are bugs, not unlucky batches.
    """
    labels, values = _checked_pairs(labels, distances, "distances", require_finite=False)
    if not has_both_classes(labels) or not np.isfinite(values).all():
        return {"eer": math.nan, "auc": math.nan, "ap": math.nan}
    scores = -values
    return {"eer": eer_reference(labels, scores), "auc": auc(labels, scores),
            "ap": average_precision(labels, scores)}


def group_metrics(labels, distances, groups):
    """{group: {"num_pairs", "eer", "eer_interpolated", "auc", "ap"}} over all pairs of each
    group (no folds: groups can be small), for groups holding both classes; labels (n,) 0/1,
    distances (n,), groups (n,) any hashable labels. Sorted by group name."""
    labels, values = _checked_pairs(labels, distances, "distances")
    groups = np.asarray(groups)
    if groups.shape != labels.shape:
        raise ValueError(f"groups must have shape {labels.shape}, got {groups.shape}")
    result = {}
    for group in sorted(set(groups.tolist())):
        chosen = groups == group
        if has_both_classes(labels[chosen]):
            result[str(group)] = dict(_one_fold(labels[chosen], -values[chosen]),
                                      num_pairs=int(chosen.sum()))
    return result


def _one_fold(labels, scores):
    """{name: value} for every name in METRIC_NAMES on one fold holding both classes."""
    return {"eer": eer_reference(labels, scores),
            "eer_interpolated": eer_interpolated(labels, scores),
            "auc": auc(labels, scores),
            "ap": average_precision(labels, scores)}


def fold_metrics(labels, distances, num_folds=10):
    """Mean and standard deviation of every metric over K consecutive folds of the pairs.

    The n pairs are cut in their given order into `num_folds` consecutive folds with
    np.array_split (fold sizes differ by at most one; every pair is used). The reference instead
    used K folds of floor(n / K) pairs and dropped the remainder.
    A fold holding a single class has no EER/AUC/AP: it is skipped, left out of every mean and
    std, and counted in "skipped_folds"; the means are over num_folds - skipped_folds folds.
    The std is numpy's population std (ddof=0) over the scored folds.

    Args:
      labels: shape (n,), 0/1.
      distances: shape (n,), float, finite.
      num_folds: K, 1 <= K <= n.
    Returns:
      {"eer"|"eer_interpolated"|"auc"|"ap": {"mean": float, "std": float},
       "num_pairs": n, "num_folds": K, "skipped_folds": number of single-class folds}
    Raises:
      ValueError: on bad inputs, K out of range, or when no fold holds both classes.
    """
    labels, values = _checked_pairs(labels, distances, "distances")
    num_folds = int(num_folds)
    if not 1 <= num_folds <= labels.size:
        raise ValueError(f"num_folds must be between 1 and the number of pairs ({labels.size}); "
                         f"got {num_folds}")
    per_fold = [_one_fold(fold_labels, -fold_values)
                for fold_labels, fold_values in zip(np.array_split(labels, num_folds),
                                                    np.array_split(values, num_folds))
                if has_both_classes(fold_labels)]
    if not per_fold:
        raise ValueError(f"none of the {num_folds} folds of {labels.size} pairs holds both "
                         "genuine (1) and impostor (0) pairs; cannot compute EER/AUC/AP")
    result = {}
    for name in METRIC_NAMES:
        column = np.array([fold[name] for fold in per_fold])
        result[name] = {"mean": float(column.mean()), "std": float(column.std())}
    result["num_pairs"] = int(labels.size)
    result["num_folds"] = num_folds
    result["skipped_folds"] = num_folds - len(per_fold)
    return result
