"""write_test_outputs writes metrics.json, scores.csv and three valid PNGs; format_metrics."""
import csv
import json
import stat
import subprocess
import sys

import numpy as np
import pytest

from avmatch import metrics, plots, reporting

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
OUTPUT_FILES = {"metrics.json", "scores.csv", "roc.png", "precision_recall.png",
                "distance_histogram.png"}


def _scored_pairs(count=200, seed=0):
    """(labels int64 (count,), distances float64 (count,)) with overlapping classes."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 2, count)
    distances = rng.normal(1.0, 0.4, count) + 0.7 * (labels == 0)
    return labels, distances


def _assert_png(path):
    data = path.read_bytes()
    assert data[:8] == PNG_SIGNATURE
    # A drawn 600x500 figure with curves, text and a legend is tens of KB; a blank one is ~5 KB.
    assert len(data) > 15_000


def test_write_test_outputs_writes_all_files(tmp_path):
    labels, distances = _scored_pairs()
    test_dir = tmp_path / "test_logs"
    result = reporting.write_test_outputs(str(test_dir), labels, distances, num_folds=10,
                                          extra={"checkpoint": "ckpt-7", "step": 7})
    assert {p.name for p in test_dir.iterdir()} == OUTPUT_FILES
    written = json.loads((test_dir / "metrics.json").read_text())
    assert written == result
    for name in metrics.METRIC_NAMES:
        assert set(written[name]) == {"mean", "std"}
    assert written["num_pairs"] == 200
    assert written["num_folds"] == 10
    assert written["checkpoint"] == "ckpt-7" and written["step"] == 7
    assert written == {**metrics.fold_metrics(labels, distances, 10),
                       "checkpoint": "ckpt-7", "step": 7}
    with open(test_dir / "scores.csv", newline="") as handle:
        rows = list(csv.reader(handle))
    assert rows[0] == ["label", "distance"]
    assert len(rows) == 201
    assert [int(row[0]) for row in rows[1:]] == labels.tolist()
    assert np.array_equal(np.array([float(row[1]) for row in rows[1:]]), distances)
    for name in ("roc.png", "precision_recall.png", "distance_histogram.png"):
        _assert_png(test_dir / name)


def test_write_test_outputs_rejects_extra_shadowing_metrics(tmp_path):
    labels, distances = _scored_pairs(40)
    with pytest.raises(ValueError, match="auc"):
        reporting.write_test_outputs(str(tmp_path), labels, distances, num_folds=2,
                                     extra={"auc": 1.0})
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("inside", ["", "sub/dir"])
def test_a_file_where_test_dir_goes_is_refused_before_anything_is_written(tmp_path, inside):
    blocking = tmp_path / "taken"
    blocking.write_text("not a folder")
    test_dir = blocking / inside if inside else blocking
    reporting.check_test_dir(str(tmp_path / "new" / "dir"))  # missing folders are made
    labels, distances = _scored_pairs(40)
    with pytest.raises(NotADirectoryError, match=f"{blocking} .*is not a directory"):
        reporting.write_test_outputs(str(test_dir), labels, distances, num_folds=2)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["taken"]


def test_plots_leave_no_temporary_files_and_are_readable(tmp_path):
    labels, distances = _scored_pairs(60, seed=3)
    plots.save_distance_histogram(str(tmp_path / "h.png"), labels, distances, bins=10)
    plots.save_roc(str(tmp_path / "r.png"), labels, -distances)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["h.png", "r.png"]
    _assert_png(tmp_path / "r.png")
    assert stat.S_IMODE((tmp_path / "r.png").stat().st_mode) == 0o644


def test_importing_reporting_loads_neither_pyplot_nor_tensorflow():
    # A fresh interpreter: other tests in this process may have imported either module.
    probe = ("import sys, avmatch.reporting; "
             "print(sorted(m for m in ('matplotlib.pyplot', 'tensorflow') if m in sys.modules))")
    completed = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                               check=True, timeout=120)
    assert completed.stdout.strip() == "[]"


def test_format_metrics_is_one_line_with_every_number():
    result = {"eer": {"mean": 0.1234, "std": 0.012},
              "eer_interpolated": {"mean": 0.121, "std": 0.011},
              "auc": {"mean": 0.9512, "std": 0.01}, "ap": {"mean": 0.9433, "std": 0.009},
              "num_pairs": 1280, "num_folds": 10, "skipped_folds": 0}
    line = reporting.format_metrics(result)
    assert line == ("EER=12.34% (+/-1.20) EER(interp)=12.10% (+/-1.10) AUC=0.9512 (+/-0.0100) "
                    "AP=0.9433 (+/-0.0090) over 1280 pairs, 10 folds")
    skipped = reporting.format_metrics({**result, "skipped_folds": 2})
    assert skipped.endswith("10 folds (2 skipped: single class)")
    assert "\n" not in skipped
