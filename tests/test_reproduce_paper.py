"""The paper's experiment grid (evaluation/reproduce_paper.py) on tiny demo datasets: the
variants, the selection modes, the outputs, resuming without redoing, and bad input."""
import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

from avmatch import experiments
from avmatch.pair_selection import adaptive_pair_mask, hard_pair_mask
from avprep import build, demo_data, splits
from avprep.speech_features import SpeechFeatureConfig

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "evaluation" / "reproduce_paper.py"


@pytest.fixture(scope="module")
def datasets(tmp_path_factory):
    """{"mfec": dir, "mfcc": dir}: six 2 s demo videos built twice, split 4/1/1 alike."""
    videos = tmp_path_factory.mktemp("videos")
    for index in range(6):
        demo_data.make_demo_video(videos / f"speaker{index}.mp4", index, seconds=2.0)
    built = {}
    for kind in ("mfec", "mfcc"):
        output = tmp_path_factory.mktemp(kind)
        build.build_dataset(build.BuildConfig(
            input_dir=str(videos), output_dir=str(output),
            split=splits.SplitConfig("flat", 4 / 6, 1 / 6, 1 / 6),
            speech=SpeechFeatureConfig(kind=kind), num_output_shards=1), log=lambda _: None)
        built[kind] = str(output)
    return built


def run_grid(datasets, output_dir, *extra):
    return subprocess.run(
        [sys.executable, str(SCRIPT), f"--data_dir={datasets['mfec']}",
         f"--mfcc_data_dir={datasets['mfcc']}", f"--output_dir={output_dir}",
         "--variants=CNN-MFCC-1,3D-CNN-MFEC-3", "--selection_modes=none,adaptive",
         "--num_epochs=2", "--max_train_windows=24", "--batch_size=8", *extra],
        cwd=REPO, capture_output=True, text=True, timeout=900)


@pytest.fixture(scope="module")
def grid(datasets, tmp_path_factory):
    output = tmp_path_factory.mktemp("paper")
    return output, run_grid(datasets, output)


def test_grid_writes_tables_figure_and_every_number(grid):
    output, result = grid
    assert result.returncode == 0, result.stderr[-3000:]
    payload = json.loads((output / "results.json").read_text())
    runs = {(run["variant"], run["mode"]): run for run in payload["runs"]}
    assert set(runs) == {(v, m) for v in ("CNN-MFCC-1", "3D-CNN-MFEC-3")
                         for m in ("none", "adaptive")}
    for run in runs.values():
        assert [row["epoch"] for row in run["epochs"]] == [1, 2]
        for row in run["epochs"]:
            for split in ("validation", "test"):
                assert 0.0 <= row[split]["auc"] <= 1.0 and 0.0 <= row[split]["eer"] <= 1.0
        assert run["test"] == run["epochs"][run["best_epoch"] - 1]["test"]
    assert runs["3D-CNN-MFEC-3", "none"]["parameters"] == {
        "speech": 164_816, "mouth": 610_096, "total": 774_912}
    assert runs["CNN-MFCC-1", "adaptive"]["parameters"]["speech"] == 706_688
    table = (output / "paper_tables.md").read_text()
    assert "| 3D-CNN-MFEC-3 | 774,912 | none |" in table and "| 93.8 |" in table
    assert "| CNN-MFCC-1 | " in table and "| 90.2 |" in table
    assert "Online pair selection vs all pairs" in table
    assert (output / "convergence.png").read_bytes()[:4] == b"\x89PNG"
    assert "trainable parameters (speech" in result.stderr


def test_started_again_nothing_is_redone(grid, datasets):
    output, _ = grid
    before = {path: path.stat().st_mtime_ns for path in output.glob("runs/*/ckpt-*.index")}
    again = run_grid(datasets, output)
    assert again.returncode == 0, again.stderr[-3000:]
    assert ": training" not in again.stderr
    after = {path: path.stat().st_mtime_ns for path in output.glob("runs/*/ckpt-*.index")}
    assert after == before


def test_runs_use_their_variant_and_selection_settings(grid):
    output, _ = grid
    config = json.loads((output / "runs" / "CNN-MFCC-1_adaptive" / "config.json").read_text())
    assert config["model_speech_name"] == "cnn_speech_static"
    assert config["model_mouth_name"] == "cnn_mouth"
    assert config["selection_rule"] == "adaptive" and config["online_pair_selection"]
    assert config["features"]["speech"]["kind"] == "mfcc"
    assert config["precision"] == "float32"  # the grid's default, whatever train.py's is
    none = json.loads((output / "runs" / "3D-CNN-MFEC-3_none" / "config.json").read_text())
    assert not none["online_pair_selection"] and none["max_train_windows"] == 24


@pytest.mark.parametrize("args,expected", [
    (["--variants=CNN-MFCC-2"], "unknown or no variants"),
    (["--selection_modes=soft"], "unknown or no variants"),
    (["--mfcc_data_dir="], "need --mfcc_data_dir"),
])
def test_bad_flags_are_one_line_errors(datasets, tmp_path, args, expected):
    result = run_grid(datasets, tmp_path, *args)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert expected in [line for line in result.stderr.splitlines()
                        if line.startswith("error:")][0]


def test_datasets_of_the_wrong_kind_are_refused(datasets, tmp_path):
    swapped = dict(mfec=datasets["mfcc"], mfcc=datasets["mfec"])
    result = run_grid(swapped, tmp_path)
    assert result.returncode == 2
    assert re.search(r"holds mf[ce]c speech features, expected mf[ce]c", result.stderr)


def test_adaptive_margin_follows_the_distance_scale():
    labels = tf.constant([1.0, 1.0, 0.0, 0.0, 0.0])
    small = tf.constant([4.0, 5.0, 5.5, 6.5, 20.0])
    np.testing.assert_array_equal(adaptive_pair_mask(labels, small, 0.2).numpy(),
                                  [True, True, True, False, False])
    # the fixed margin of 10 keeps every impostor under 15 at this scale; scaled 10x, the
    # adaptive rule selects the same pairs while the fixed one keeps fewer
    np.testing.assert_array_equal(hard_pair_mask(labels, small, 10.0).numpy(),
                                  [True, True, True, True, False])
    np.testing.assert_array_equal(adaptive_pair_mask(labels, 10 * small, 0.2).numpy(),
                                  [True, True, True, False, False])


def test_table_and_findings_from_records():
    def record(variant, mode, ap):
        test = {"eer": 0.2, "auc": 0.8, "ap": ap}
        return experiments.run_record(
            variant, mode, {"speech": 1, "mouth": 2, "total": 3},
            [{"epoch": 1, "train_seconds": 1.0, "global_step": 5,
              "validation": {k: {"mean": v} for k, v in test.items()}}],
            {"1": {k: {"mean": v} for k, v in test.items()}})

    rows = [record("CNN-MFCC-3", "none", 0.70), record("CNN-MFCC-3", "hard", 0.72),
            record("3D-CNN-MFEC-3", "none", 0.75), record("3D-CNN-MFEC-3", "hard", 0.74)]
    table = experiments.paper_table(rows)
    assert "| CNN-MFCC-3 | 3 | hard | 1 | 72.0 +/- 0.0 | 0.800 | 20.0 | 90.4 |" in table
    lines = experiments.findings(rows)
    assert lines[0].startswith("- Online pair selection vs all pairs: selection had the "
                               "higher test AP in 1 of 2")
    assert lines[1].startswith("- 3D-CNN-MFEC vs CNN-MFCC: 3D-CNN-MFEC had the higher test AP "
                               "in 2 of 2")
