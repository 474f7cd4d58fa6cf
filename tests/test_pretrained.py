"""The shipped multi-speaker model: it loads without training, scores demo pairs through
test.py, refuses a dataset of other features, and its checkpoint round-trips."""
import json

import numpy as np
import pytest

from avmatch import checkpoints
from avmatch.config import read_saved_run
from avmatch.instance import MatchingInstance
from avmatch.sync import read_thresholds
from avprep import demo_data
from test_checkpoints_and_cli import REPO, assert_one_line_error, run_script, write_dataset

MODEL = REPO / "code" / "models" / "multispeaker-v6"


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    directory = str(tmp_path_factory.mktemp("demo"))
    return demo_data.ensure_demo_dataset(directory, log=lambda message: None, num_videos=3,
                                         seconds=3.0)


def test_the_model_folder_is_complete():
    assert (MODEL / "MODEL_CARD.md").is_file() and (MODEL / "test_metrics.json").is_file()
    saved = read_saved_run(str(MODEL))
    assert saved.features["crop"] == {"border_fraction": 0.4}
    assert saved.train.data_dir == ""
    assert not (MODEL / "best").exists()
    # its own verdict thresholds, measured for it (README, "Sync check")
    thresholds = read_thresholds(str(MODEL))
    assert (thresholds.min_evidence, thresholds.min_confidence) == (2.21, 0.0)


def test_test_script_scores_demo_pairs_with_the_shipped_model(demo, tmp_path):
    result = run_script("test.py", f"--checkpoint_dir={MODEL}", f"--data_dir={demo}",
                        "--split=train", f"--test_dir={tmp_path}", "--group_by=speaker")
    assert result.returncode == 0, result.stderr[-3000:]
    with open(tmp_path / "metrics.json") as handle:
        metrics = json.load(handle)
    assert metrics["num_pairs"] > 0 and 0.0 <= metrics["auc"]["mean"] <= 1.0
    assert metrics["checkpoint"].startswith(str(MODEL))


def test_a_dataset_of_other_features_is_refused(tmp_path):
    data = write_dataset(tmp_path / "data", {"test": 4})
    result = run_script("test.py", f"--checkpoint_dir={MODEL}", f"--data_dir={data}",
                        f"--test_dir={tmp_path / 'out'}")
    assert "the model was trained on features" in assert_one_line_error(result)


def test_the_shipped_checkpoint_round_trips(tmp_path):
    rng = np.random.default_rng(0)
    mouth = rng.integers(0, 256, (4, 9, 60, 100), dtype=np.uint8)
    speech = rng.normal(size=(4, 15, 40, 3)).astype(np.float32)
    path = checkpoints.checkpoint_to_score(str(MODEL))
    first = MatchingInstance.create()
    checkpoints.restore_towers(path, first)
    copy = checkpoints.export_towers(first, str(tmp_path), int(path.rsplit("-", 1)[1]))
    second = MatchingInstance.create()
    checkpoints.restore_towers(copy, second)
    expected = first.pair_distances(mouth, speech).numpy()
    assert np.isfinite(expected).all() and expected.std() > 0
    np.testing.assert_array_equal(second.pair_distances(mouth, speech).numpy(), expected)
