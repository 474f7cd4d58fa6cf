"""data_preparation/merge_datasets.py: training splits of several datasets joined, the base's
validation and test kept, every record readable through the reader's checks; inputs that
would leak held-out videos into training, or differ in features, refused in one line."""
import json
import subprocess
import sys

import pytest

from avmatch.input_pipeline import load_dataset_info, window_batches
from avprep import merge, records
from test_checkpoints_and_cli import REPO, assert_one_line_error
from test_dataset_format import VIDEOS, WINDOWS_PER_VIDEO, gather_dataset


def run_tool(*args):
    return subprocess.run([sys.executable, str(REPO / "data_preparation" / "merge_datasets.py"),
                           *args], cwd=REPO, capture_output=True, text=True, timeout=600)


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    base, extra = tmp_path_factory.mktemp("base"), tmp_path_factory.mktemp("extra")
    gather_dataset(base)
    gather_dataset(extra, num_output_shards=1, seed=1)
    return base, extra


def read_all(info, split):
    """The first 8 pixels of every mouth cube of a split (random, so they tell windows apart)."""
    return [tuple(row) for batch in window_batches(info, split, 4)
            for row in batch["mouth"].numpy().reshape(len(batch["mouth"]), -1)[:, :8].tolist()]


def test_training_windows_of_both_inputs_and_the_base_held_out_splits(inputs, tmp_path):
    base, extra = inputs
    result = run_tool(f"--base_dir={base}", f"--add_train_from={extra}",
                      f"--output_dir={tmp_path / 'merged'}")
    assert result.returncode == 0, result.stderr
    train_windows = WINDOWS_PER_VIDEO * list(VIDEOS.values()).count("train")
    assert f"{2 * train_windows} training windows in 3 shards from 2 datasets" in result.stdout
    merged = load_dataset_info(str(tmp_path / "merged"), required_splits=("train", "test"))
    assert merged.windows["train"] == 2 * train_windows
    assert (sorted(read_all(merged, "train"))
            == sorted(read_all(load_dataset_info(str(base)), "train")
                      + read_all(load_dataset_info(str(extra)), "train")))
    assert read_all(merged, "test") == read_all(load_dataset_info(str(base),
                                                                  ("test",)), "test")
    manifest = records.read_manifest(str(tmp_path / "merged"))
    assert [m["train_windows"] for m in manifest["merged"]] == [train_windows] * 2
    assert manifest["files"] == records.read_manifest(str(base))["files"]


def test_a_held_out_video_in_the_added_training_data_is_refused(inputs, tmp_path):
    leaking = tmp_path / "leaking"
    gather_dataset(leaking, videos={"a": "train", "c": "train"})
    result = run_tool(f"--base_dir={inputs[0]}", f"--add_train_from={leaking}",
                      f"--output_dir={tmp_path / 'merged'}")
    assert "training video c.mp4 is not a training video of the base (there: test)" in (
        assert_one_line_error(result))
    assert not (tmp_path / "merged").exists()


def test_other_features_are_refused(inputs, tmp_path):
    other = tmp_path / "other"
    gather_dataset(other)
    manifest = json.loads((other / records.MANIFEST_NAME).read_text())
    manifest["features"] = {"crop": {"border_fraction": 0.2}}
    (other / records.MANIFEST_NAME).write_text(json.dumps(manifest))
    result = run_tool(f"--base_dir={inputs[0]}", f"--add_train_from={other}",
                      f"--output_dir={tmp_path / 'merged'}")
    assert "other features or cube shapes" in assert_one_line_error(result)


def test_missing_inputs_and_an_existing_output_are_one_line_errors(inputs, tmp_path):
    assert "required" in assert_one_line_error(run_tool(f"--base_dir={inputs[0]}"))
    assert "is not a dataset" in assert_one_line_error(run_tool(
        f"--base_dir={inputs[0]}", f"--add_train_from={tmp_path}", f"--output_dir={tmp_path}/m"))
    assert "exists" in assert_one_line_error(run_tool(
        f"--base_dir={inputs[0]}", f"--add_train_from={inputs[1]}", f"--output_dir={tmp_path}"))


def test_a_manifest_that_is_not_json_is_named(inputs, tmp_path):
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / records.MANIFEST_NAME).write_text("{oops")
    result = run_tool(f"--base_dir={inputs[0]}", f"--add_train_from={broken}",
                      f"--output_dir={tmp_path / 'merged'}")
    assert f"{broken / records.MANIFEST_NAME} is not a usable dataset manifest" in (
        assert_one_line_error(result))
    assert not (tmp_path / "merged").exists()


def test_record_counts_come_from_the_headers_and_a_cut_record_is_named(inputs, tmp_path):
    shard = inputs[0] / records.shard_name("train", 0, 2)
    expected = records.read_manifest(str(inputs[0]))["splits"]["train"]["shard_sizes"]
    assert merge.count_records(str(shard)) == expected[shard.name]["records"]
    cut = tmp_path / shard.name
    cut.write_bytes(shard.read_bytes()[:-10])
    with pytest.raises(ValueError, match="is damaged: it ends inside record"):
        merge.count_records(str(cut))
