"""EER / AUC / AP on score sets whose answers are worked out by hand, and the fold statistics."""
import math

import numpy as np
import pytest

from avmatch import metrics

# Hand-built set, scores falling: genuine, impostor, impostor, genuine, impostor (P=2, N=3).
# All ROC points (fpr, tpr): (0,0) (0,1/2) (1/3,1/2) (2/3,1/2) (2/3,1) (1,1); fnr = 1 - tpr.
# sklearn's default roc_curve drops the collinear (1/3,1/2), so the reference rule sees
# |fpr - fnr| = 1, 1/2, 1/6, 2/3, 1 and returns fpr = 2/3.
# fpr - fnr goes -1/6 -> +1/6 between (1/3,1/2) and (2/3,1/2): the crossing is at fpr = 1/2.
# AUC: the first genuine beats 3 impostors, the second beats 1: 4/6.
# AP: precision 1/1 at the first genuine, 2/4 at the second: (1 + 1/2) / 2.
HAND_LABELS = np.array([1, 0, 0, 1, 0])
HAND_SCORES = np.array([5.0, 4.0, 3.0, 2.0, 1.0])


def _pairs(genuine_distances, impostor_distances):
    """(labels, distances) with the genuine pairs first."""
    genuine = np.asarray(genuine_distances, dtype=np.float64)
    impostor = np.asarray(impostor_distances, dtype=np.float64)
    labels = np.r_[np.ones(genuine.size, np.int64), np.zeros(impostor.size, np.int64)]
    return labels, np.r_[genuine, impostor]


def test_perfect_separation_scores_perfectly():
    labels, distances = _pairs([0.1, 0.2, 0.3, 0.4], [1.0, 1.1, 1.2])
    scores = -distances
    assert metrics.eer_reference(labels, scores) == 0.0
    assert metrics.eer_interpolated(labels, scores) == 0.0
    assert metrics.auc(labels, scores) == 1.0
    assert metrics.average_precision(labels, scores) == 1.0


def test_fully_inverted_scores_worst():
    labels, distances = _pairs([1.0, 1.1, 1.2], [0.1, 0.2, 0.3, 0.4])
    scores = -distances
    assert metrics.auc(labels, scores) == 0.0
    # ROC (0,0) -> (1,0) -> (1,1): fpr = fnr only at fpr = 1.
    assert metrics.eer_reference(labels, scores) == 1.0
    assert metrics.eer_interpolated(labels, scores) == 1.0
    # All impostors rank first; precision at the genuine pairs: 1/5, 2/6, 3/7.
    assert metrics.average_precision(labels, scores) == pytest.approx((1 / 5 + 2 / 6 + 3 / 7) / 3)


def test_hand_built_set_both_eer_rules():
    assert metrics.eer_reference(HAND_LABELS, HAND_SCORES) == pytest.approx(2 / 3)
    assert metrics.eer_interpolated(HAND_LABELS, HAND_SCORES) == pytest.approx(1 / 2)
    assert metrics.auc(HAND_LABELS, HAND_SCORES) == pytest.approx(4 / 6)
    assert metrics.average_precision(HAND_LABELS, HAND_SCORES) == pytest.approx(0.75)


def test_symmetric_overlap_crossing_on_a_tied_segment():
    # Genuine 0,1,2,3 and impostor 1,2,3,4: three tied distances make one diagonal ROC segment
    # from (0, 1/4) to (3/4, 1). On it fpr = 3t/4 and fnr = 3/4 - 3t/4, equal at t = 1/2.
    labels, distances = _pairs([0, 1, 2, 3], [1, 2, 3, 4])
    assert metrics.eer_interpolated(labels, -distances) == pytest.approx(0.375)
    # The reference rule only sees the segment's ends (|fpr - fnr| = 3/4 at both): fpr = 0.
    assert metrics.eer_reference(labels, -distances) == 0.0


def test_symmetric_overlap_large_matches_the_analytic_crossing():
    # Genuine 0..99, impostor 1..100: diagonal segment from (0, 0.01) to (0.99, 1), crossing at
    # t = 1/2, i.e. EER = 0.495.
    labels, distances = _pairs(np.arange(100), np.arange(100) + 1)
    assert metrics.eer_interpolated(labels, -distances) == pytest.approx(0.495)


def test_interpolated_eer_is_order_invariant_and_near_reference_on_smooth_data():
    rng = np.random.default_rng(0)
    labels, distances = _pairs(rng.normal(1.0, 1.0, 2000), rng.normal(3.0, 1.0, 2000))
    order = rng.permutation(labels.size)
    interp = metrics.eer_interpolated(labels, -distances)
    assert metrics.eer_interpolated(labels[order], -distances[order]) == pytest.approx(interp)
    # Two unit normals 2 apart cross at 1 sigma: EER = Phi(-1) = 0.1587.
    assert interp == pytest.approx(0.1587, abs=0.02)
    assert abs(metrics.eer_reference(labels, -distances) - interp) < 0.005


def test_single_class_raises_in_the_strict_functions():
    for function in (metrics.eer_reference, metrics.eer_interpolated, metrics.auc,
                     metrics.average_precision):
        with pytest.raises(ValueError, match="both genuine"):
            function([1, 1, 1], [0.3, 0.2, 0.1])


def test_bad_inputs_raise_value_error():
    with pytest.raises(ValueError, match="length"):
        metrics.auc([1, 0], [0.1, 0.2, 0.3])
    with pytest.raises(ValueError, match="0 \\(impostor\\) or 1"):
        metrics.auc([1, 2], [0.1, 0.2])
    with pytest.raises(ValueError, match="NaN"):
        metrics.auc([1, 0], [0.1, math.nan])
    with pytest.raises(ValueError, match="no pairs"):
        metrics.auc([], [])


def test_batch_metrics_values_and_nan_for_degenerate_batches():
    labels, distances = _pairs([0.1, 0.2], [0.9, 1.0])
    # Column-shaped float labels, as a training step may hand them over.
    assert metrics.batch_metrics(labels.reshape(-1, 1).astype(np.float32), distances) == {
        "eer": 0.0, "auc": 1.0, "ap": 1.0}
    hand = metrics.batch_metrics(HAND_LABELS, -HAND_SCORES)
    assert hand["eer"] == pytest.approx(2 / 3)
    assert hand["auc"] == pytest.approx(4 / 6)
    for degenerate in (metrics.batch_metrics([1, 1, 1], [0.1, 0.2, 0.3]),
                       metrics.batch_metrics([0, 0], [0.1, 0.2]),
                       metrics.batch_metrics([1, 0], [0.1, math.inf])):
        assert set(degenerate) == {"eer", "auc", "ap"}
        assert all(math.isnan(value) for value in degenerate.values())


def test_fold_metrics_uses_consecutive_folds():
    # First half perfectly separated, second half fully inverted: only a consecutive split
    # gives per-fold AUCs of exactly 1 and 0.
    perfect_labels, perfect_distances = _pairs([0.1, 0.2, 0.3], [0.7, 0.8, 0.9])
    inverted_labels, inverted_distances = _pairs([0.7, 0.8, 0.9], [0.1, 0.2, 0.3])
    labels = np.r_[perfect_labels, inverted_labels]
    distances = np.r_[perfect_distances, inverted_distances]
    result = metrics.fold_metrics(labels, distances, num_folds=2)
    assert result["auc"] == {"mean": 0.5, "std": 0.5}
    assert result["eer"] == {"mean": 0.5, "std": 0.5}
    assert result["num_pairs"] == 12
    assert result["num_folds"] == 2
    assert result["skipped_folds"] == 0


def test_fold_metrics_mean_and_std_match_numpy_on_hand_folds():
    rng = np.random.default_rng(1)
    labels = np.tile([1, 0, 0, 1, 1, 0], 4)[:23]
    distances = rng.normal(1.0, 0.5, 23) + 0.8 * (labels == 0)
    result = metrics.fold_metrics(labels, distances, num_folds=5)
    # np.array_split of 23 into 5: sizes 5, 5, 5, 4, 4.
    bounds = [(0, 5), (5, 10), (10, 15), (15, 19), (19, 23)]
    functions = {"eer": metrics.eer_reference, "eer_interpolated": metrics.eer_interpolated,
                 "auc": metrics.auc, "ap": metrics.average_precision}
    for name, function in functions.items():
        values = [function(labels[a:b], -distances[a:b]) for a, b in bounds]
        assert result[name]["mean"] == pytest.approx(np.mean(values))
        assert result[name]["std"] == pytest.approx(np.std(values))
    assert (result["num_pairs"], result["num_folds"], result["skipped_folds"]) == (23, 5, 0)


def test_fold_metrics_skips_single_class_folds():
    labels = np.array([1, 1, 1, 1, 0, 1, 0, 1])
    distances = np.array([0.1, 0.2, 0.3, 0.4, 0.9, 0.2, 0.8, 0.3])
    result = metrics.fold_metrics(labels, distances, num_folds=2)
    assert result["skipped_folds"] == 1
    assert result["num_folds"] == 2
    assert result["auc"] == {"mean": 1.0, "std": 0.0}


def test_fold_metrics_without_any_two_class_fold_raises():
    with pytest.raises(ValueError, match="none of the 2 folds"):
        metrics.fold_metrics([1, 1, 0, 0], [0.1, 0.2, 0.3, 0.4], num_folds=2)
    with pytest.raises(ValueError, match="num_folds"):
        metrics.fold_metrics([1, 0], [0.1, 0.2], num_folds=3)


def test_group_metrics_score_each_group_alone():
    labels = np.array([1, 0, 1, 0, 1, 0, 1, 0])
    distances = np.array([1.0, 5.0, 2.0, 6.0, 5.0, 1.0, 6.0, 2.0])
    groups = np.array(["good", "good", "good", "good", "bad", "bad", "bad", "bad"])
    result = metrics.group_metrics(labels, distances, groups)
    assert list(result) == ["bad", "good"]
    assert result["good"]["auc"] == 1.0 and result["good"]["eer"] == 0.0
    assert result["bad"]["auc"] == 0.0 and result["good"]["num_pairs"] == 4
    one_class = metrics.group_metrics(labels[:2], distances[:2], np.array(["a", "b"]))
    assert one_class == {}
    with pytest.raises(ValueError, match="groups must have shape"):
        metrics.group_metrics(labels, distances, groups[:3])
