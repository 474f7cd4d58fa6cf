"""End to end through code/train.py and code/test.py on a tiny dataset of random windows, plus
resuming, fine-tuning and the one-line errors for bad input.

The windows are random: these tests check mechanics (files, counters, restored state), not
learning.
"""
import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

from avmatch import checkpoints, precision
from avmatch.config import TrainConfig
from avmatch.input_pipeline import window_batches
from avmatch.instance import MatchingInstance
from avprep import records

REPO = Path(__file__).resolve().parents[1]
TRAIN_WINDOWS, TEST_WINDOWS = 16, 8


def write_dataset(path, windows, manifest_speech=(15, 40, 3), record_speech=None, seed=0,
                  format_version=records.FORMAT_VERSION):
    """A dataset directory in the format of avprep.records: one shard per split, with its
    size and record count in the manifest.

    windows: {split: number of windows}; record_speech: the speech shape actually written
    (default: the manifest's), to build datasets whose records disagree with their manifest.
    """
    rng = np.random.default_rng(seed)
    record_speech = tuple(record_speech or manifest_speech)
    os.makedirs(path, exist_ok=True)
    for split, count in windows.items():
        with tf.io.TFRecordWriter(os.path.join(path, records.shard_name(split, 0, 1))) as writer:
            for index in range(count):
                writer.write(records.serialize_window(
                    rng.integers(0, 256, records.MOUTH_SHAPE, dtype=np.uint8),
                    rng.normal(size=record_speech).astype(np.float32),
                    rng.normal(size=record_speech).astype(np.float32),
                    f"video{index % 3}", 9 * index, 1.0))
    splits = {}
    for split, count in windows.items():
        name = records.shard_name(split, 0, 1)
        size = {"bytes": os.path.getsize(os.path.join(path, name)), "records": count}
        splits[split] = {"windows": count, "shards": [name], "shard_sizes": {name: size}}
    records.write_json_atomic(os.path.join(path, records.MANIFEST_NAME), {
        "format_version": format_version,
        "shapes": {"mouth": list(records.MOUTH_SHAPE), "speech": list(manifest_speech)},
        "splits": splits})
    return str(path)


def run_script(script, *args):
    return subprocess.run([sys.executable, str(REPO / "code" / script), *args], cwd=REPO,
                          capture_output=True, text=True, timeout=600)


def assert_one_line_error(result):
    """Exit code 2, exactly one stderr line starting with "error:", no traceback.

    TensorFlow 2.21 prints start-up lines (oneDNN, CUDA) to stderr that TF_CPP_MIN_LOG_LEVEL
    does not silence, so the other lines are not required to be absent.
    """
    lines = result.stderr.splitlines()
    assert result.returncode == 2, result.stderr[-3000:]
    assert "Traceback" not in result.stderr and "Traceback" not in result.stdout
    errors = [line for line in lines if line.startswith("error:")]
    assert len(errors) == 1, result.stderr
    return errors[0]


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    return write_dataset(tmp_path_factory.mktemp("dataset"),
                         {"train": TRAIN_WINDOWS, "validation": TEST_WINDOWS,
                          "test": TEST_WINDOWS})


@pytest.fixture(scope="module")
def trained_run(dataset, tmp_path_factory):
    """A one-epoch run of code/train.py (4 steps of 8 pairs): (train_dir, CompletedProcess)."""
    train_dir = str(tmp_path_factory.mktemp("run"))
    result = run_script("train.py", f"--data_dir={dataset}", f"--train_dir={train_dir}",
                        "--batch_size=8", "--num_epochs=1", "--jit_compile=false")
    return train_dir, result


# -- train.py and test.py ---------------------------------------------------------------
def test_train_script_runs_an_epoch(trained_run, dataset):
    train_dir, result = trained_run
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Tower speech_cnn (lipread_speech): 164816 trainable parameters" in result.stderr
    assert "Tower mouth_cnn (lipread_mouth): 610096 trainable parameters" in result.stderr
    assert "Epoch 1, Minibatch 4 of 4" in result.stderr
    with open(os.path.join(train_dir, "config.json")) as handle:
        config = json.load(handle)
    assert config["batch_size"] == 8 and config["data_dir"] == dataset
    assert config["precision"] == "auto"  # bfloat16 where the hardware has it
    with open(os.path.join(train_dir, "results.json")) as handle:
        epochs = json.load(handle)["epochs"]
    assert [row["epoch"] for row in epochs] == [1]
    assert epochs[0]["global_step"] == 4
    assert epochs[0]["split"] == "validation" and "test" not in epochs[0]
    assert epochs[0]["validation"]["num_pairs"] == 2 * TEST_WINDOWS
    assert tf.train.latest_checkpoint(train_dir).endswith("ckpt-4")


@pytest.mark.parametrize("moving_average", [False, True])
def test_test_script_writes_metrics_and_plots(trained_run, dataset, tmp_path, moving_average):
    train_dir, _ = trained_run
    test_dir = tmp_path / "test"
    args = [f"--checkpoint_dir={train_dir}", f"--data_dir={dataset}", f"--test_dir={test_dir}"]
    if moving_average:
        args.append("--use_moving_average")
    result = run_script("test.py", *args)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "EER=" in result.stdout and "AP=" in result.stdout
    with open(test_dir / "metrics.json") as handle:
        metrics = json.load(handle)
    for name in ("eer", "eer_interpolated", "auc", "ap"):
        assert set(metrics[name]) >= {"mean", "std"}
        assert 0.0 <= metrics[name]["mean"] <= 1.0
    assert metrics["num_pairs"] == 2 * TEST_WINDOWS
    assert metrics["use_moving_average"] is moving_average
    # test.py's default precision is auto, recorded as what it resolved to on this machine
    assert metrics["precision"] == precision.resolve("auto")
    scores = (test_dir / "scores.csv").read_text().splitlines()
    assert scores[0] == "label,distance" and len(scores) == 1 + 2 * TEST_WINDOWS
    for name in ("roc.png", "precision_recall.png", "distance_histogram.png"):
        assert (test_dir / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_test_script_counts_the_offset_ranking(trained_run, dataset, tmp_path):
    """--offset_windows=4 on the 8 test windows (videos 0 1 2 0 | 1 2 0 1 in groups of 4):
    4 windows have another offset of their video, 1 each (chance 0.5)."""
    train_dir, _ = trained_run
    test_dir = tmp_path / "test"
    result = run_script("test.py", f"--checkpoint_dir={train_dir}", f"--data_dir={dataset}",
                        f"--test_dir={test_dir}", "--offset_windows=4")
    assert result.returncode == 0, result.stderr[-3000:]
    assert "own audio nearer than every other offset" in result.stdout
    ranking = json.loads((test_dir / "metrics.json").read_text())["offset_ranking"]
    assert ranking["windows"] == 4 and ranking["window_count"] == 4
    assert ranking["chance"] == pytest.approx(0.5) and 0 <= ranking["nearest"] <= 4
    refused = run_script("test.py", f"--checkpoint_dir={train_dir}", "--offset_windows=1")
    assert "--offset_windows=1" in assert_one_line_error(refused)


# -- resuming ---------------------------------------------------------------------------
def _optimizer_state(optimizer):
    """[(name, value)] of the optimiser's variables, in order (paths carry a per-process
    optimiser number, adam or adam_1, so the names drop it)."""
    return [(v.path.split("/", 1)[-1], v.numpy().copy()) for v in optimizer.variables]


def test_interrupted_run_resumes_mid_epoch(dataset, tmp_path, caplog):
    """SIGTERM right after the first step (the signal arrives while a step runs, its usual
    moment): the run saves, and a new Trainer continues from step 1 with the same state."""
    from avmatch.training import Trainer
    config = TrainConfig(train_dir=str(tmp_path / "run"), data_dir=dataset, batch_size=16,
                         num_epochs=1, jit_compile=False)
    first = Trainer(config, dataset)
    assert first.steps_per_epoch == 2
    step = first.train_step

    def step_then_terminate(batch):
        out = step(batch)
        os.kill(os.getpid(), signal.SIGTERM)
        return out

    first.train_step = step_then_terminate
    with pytest.raises(KeyboardInterrupt):
        first.run()
    assert int(first.optimizer.iterations.numpy()) == 1
    saved_optimizer = _optimizer_state(first.optimizer)
    saved_weights = [v.numpy().copy() for v in first.instance.variables]
    saved_shadows = [v.numpy().copy() for v in first.averages.shadows]

    second = Trainer(config, dataset)
    assert int(second.optimizer.iterations.numpy()) == 0
    second.restore_or_initialise()
    assert int(second.optimizer.iterations.numpy()) == 1
    assert int(second.progress["epoch"].numpy()) == 0
    assert int(second.progress["step_in_epoch"].numpy()) == 1
    restored = _optimizer_state(second.optimizer)
    assert [name for name, _ in restored] == [name for name, _ in saved_optimizer]
    for (name, value), (_, saved) in zip(restored, saved_optimizer):
        np.testing.assert_array_equal(value, saved, err_msg=name)
    moments = [value for name, value in restored if name.endswith(("_momentum", "_velocity"))]
    assert len(moments) == 2 * len(second.variables)
    assert all(np.any(value != 0) for value in moments)
    for saved, variable in zip(saved_weights, second.instance.variables):
        np.testing.assert_array_equal(variable.numpy(), saved)
    for saved, shadow in zip(saved_shadows, second.averages.shadows):
        np.testing.assert_array_equal(shadow.numpy(), saved)

    with caplog.at_level("INFO"):
        second.run()
    assert any("Resumed from" in r.getMessage() and "step 1 of the epoch" in r.getMessage()
               for r in caplog.records)
    assert int(second.optimizer.iterations.numpy()) == second.steps_per_epoch * config.num_epochs
    assert int(second.progress["epoch"].numpy()) == 1
    with open(tmp_path / "run" / "results.json") as handle:
        assert json.load(handle)["epochs"][0]["global_step"] == 2


# -- fine-tuning --------------------------------------------------------------------------
def _saved_values(train_dir):
    """{variable path: value} of the towers in train_dir's latest checkpoint."""
    saved = MatchingInstance.create()
    checkpoints.restore_towers(checkpoints.latest_checkpoint(train_dir), saved)
    return {v.path: v.numpy() for v in saved.variables}


def test_warm_start_copies_all_but_excluded_scopes(trained_run):
    train_dir, _ = trained_run
    source = _saved_values(train_dir)
    instance = MatchingInstance.create()
    fresh = {v.path: v.numpy().copy() for v in instance.variables}
    copied = checkpoints.warm_start(instance, train_dir, exclude_scopes=("mouth_cnn/head",))
    excluded = {"mouth_cnn/head/kernel", "mouth_cnn/head/bias"}
    assert copied == len(instance.variables) - len(excluded) == 62
    for variable in instance.variables:
        saved = source[variable.path]
        if variable.path in excluded:
            np.testing.assert_array_equal(variable.numpy(), fresh[variable.path])
            assert not np.array_equal(variable.numpy(), saved)
        else:
            np.testing.assert_array_equal(variable.numpy(), saved)


def test_warm_start_missing_variables(tmp_path):
    speech_only = MatchingInstance.create()
    path = tf.train.Checkpoint(speech_cnn=speech_only.speech_net).save(str(tmp_path / "speech"))
    instance = MatchingInstance.create()
    with pytest.raises(checkpoints.CheckpointError, match="mouth_cnn/.* is missing"):
        checkpoints.warm_start(instance, path)
    copied = checkpoints.warm_start(instance, path, ignore_missing_vars=True)
    assert copied == len(instance.speech_net.variables) == 32


def test_restoring_a_checkpoint_that_does_not_exist_says_so(tmp_path):
    missing = str(tmp_path / "ckpt-3")
    with pytest.raises(checkpoints.CheckpointError, match=r"ckpt-3\.index does not exist"):
        checkpoints.restore_towers(missing, MatchingInstance.create())


def test_fine_tuning_with_trainable_scopes_trains_speech_only(trained_run, dataset, tmp_path):
    from avmatch.training import Trainer
    train_dir, _ = trained_run
    config = TrainConfig(train_dir=str(tmp_path / "tuned"), data_dir=dataset, batch_size=16,
                         jit_compile=False, checkpoint_path=train_dir,
                         checkpoint_exclude_scopes=("mouth_cnn/head",),
                         trainable_scopes=("speech_cnn",))
    trainer = Trainer(config, dataset)
    assert trainer.variables == trainer.instance.speech_net.trainable_variables
    trainer.restore_or_initialise()
    source = _saved_values(train_dir)
    for variable in trainer.instance.variables:
        if not variable.path.startswith("mouth_cnn/head/"):
            np.testing.assert_array_equal(variable.numpy(), source[variable.path])
    # After a warm start the weight averages start from the copied weights.
    for shadow, variable in zip(trainer.averages.shadows, trainer.instance.trainable_variables):
        np.testing.assert_array_equal(shadow.numpy(), variable.numpy())
    speech = [v.numpy().copy() for v in trainer.instance.speech_net.trainable_variables]
    mouth = [v.numpy().copy() for v in trainer.instance.mouth_net.trainable_variables]
    batch = next(iter(window_batches(trainer.info, "train", trainer.windows_per_batch)))
    out = trainer.train_step(batch)
    assert np.isfinite(float(out["loss"]))
    for before, variable in zip(mouth, trainer.instance.mouth_net.trainable_variables):
        np.testing.assert_array_equal(variable.numpy(), before)
    assert all(not np.array_equal(variable.numpy(), before) for before, variable
               in zip(speech, trainer.instance.speech_net.trainable_variables))


# -- bad input ----------------------------------------------------------------------------
@pytest.fixture(scope="module")
def bad_datasets(tmp_path_factory):
    root = tmp_path_factory.mktemp("bad")
    os.makedirs(root / "empty")
    small = {"train": 2, "test": 2}
    return {
        "missing": str(root / "does-not-exist"),
        "empty": str(root / "empty"),
        "records_disagree": write_dataset(root / "records_disagree", small,
                                          manifest_speech=(15, 40, 3), record_speech=(15, 40, 1)),
        "wrong_filters": write_dataset(root / "wrong_filters", small, manifest_speech=(15, 13, 3)),
        "other_version": write_dataset(root / "other_version", small, format_version=2),
    }


@pytest.mark.parametrize("case,expected", [
    ("missing", "does not exist"),
    ("empty", "manifest.json"),
    ("records_disagree", "speech_genuine"),
    ("wrong_filters", "speech cubes are [15, 13, 3]"),
    ("other_version", "dataset format version 2, this code reads version 1"),
])
def test_train_bad_dataset_is_one_line_error(bad_datasets, tmp_path, case, expected):
    result = run_script("train.py", f"--data_dir={bad_datasets[case]}",
                        f"--train_dir={tmp_path / 'run'}", "--jit_compile=false")
    assert expected in assert_one_line_error(result)


def test_train_odd_batch_size_is_one_line_error(dataset, tmp_path):
    result = run_script("train.py", f"--data_dir={dataset}", f"--train_dir={tmp_path / 'run'}",
                        "--batch_size=7")
    assert "--batch_size=7" in assert_one_line_error(result)
    assert not (tmp_path / "run").exists()


def test_test_without_checkpoint_is_one_line_error(dataset, tmp_path):
    result = run_script("test.py", f"--checkpoint_dir={tmp_path}", f"--data_dir={dataset}")
    assert "no checkpoint in" in assert_one_line_error(result)


@pytest.mark.parametrize("inside", ["", "sub"])
def test_test_dir_that_cannot_be_a_folder_fails_before_scoring(tmp_path, inside):
    """Refused before the checkpoint is looked for (there is none here), so before any
    scoring: not os.makedirs' FileExistsError once the split is scored."""
    blocking = tmp_path / "results.txt"
    blocking.write_text("a file")
    test_dir = blocking / inside if inside else blocking
    result = run_script("test.py", f"--checkpoint_dir={tmp_path / 'run'}",
                        f"--test_dir={test_dir}")
    assert f"{blocking} " in assert_one_line_error(result)


@pytest.mark.parametrize("script,argument,expected", [
    ("train.py", "--no_such_flag=1", "no_such_flag"),
    ("test.py", "--split=bogus", "--split=bogus"),
    ("train.py", "--batch_size=x", "--batch_size=x"),
])
def test_unparsable_flag_is_one_line_error(script, argument, expected):
    assert expected in assert_one_line_error(run_script(script, argument))


def test_step_log_line_follows_the_reference():
    from avmatch.training import step_log_line
    batch = {"eer": 0.25, "auc": 0.75, "ap": 0.8}
    line = step_log_line(0, 4, 62, 12.5, np.array([1.0, 1.0, 0.0]), batch, 30.0, 10.0)
    assert line.startswith("Epoch 1, Minibatch 5 of 62, Minibatch Loss= 12.500000, EER= 0.25000, "
                           "AUC= 0.75000, AP= 0.80000, contrib = 3 pairs")
    only_genuine = step_log_line(1, 0, 62, 1.0, np.array([1.0, 1.0]), batch, 30.0, 10.0)
    assert "No contributing impostor pair!" in only_genuine
    assert only_genuine.endswith("contrib = 2 pairs")


# -- damaged data, checkpoints and sizes that cannot work --------------------------------
@pytest.mark.parametrize("value", ["nan", "inf", "-0.01", "0"])
def test_train_rejects_a_learning_rate_that_is_not_a_positive_number(tmp_path, value):
    result = run_script("train.py", f"--learning_rate={value}",
                        f"--train_dir={tmp_path / 'run'}")
    assert "--learning_rate=" in assert_one_line_error(result)
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("argument", ["--adaptive_margin_ratio=-0.1", "--max_train_windows=-5"])
def test_train_rejects_negative_selection_and_cap_settings(tmp_path, argument):
    result = run_script("train.py", argument, f"--train_dir={tmp_path / 'run'}")
    assert "must not be negative" in assert_one_line_error(result)
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("arguments,expected", [
    (["--offset_loss_weight=-1"], "--offset_loss_weight must not be negative"),
    (["--offset_temperature=0"], "--offset_temperature must be positive"),
    (["--offset_loss_weight=1", "--offset_run_windows=1"], "--offset_run_windows=1 must be"),
    (["--mouth_augmentation=strong"], "--mouth_augmentation=strong needs --augment_mouth"),
    (["--speech_warp=0.1"], "--speech_warp=0.1 needs --augment_speech"),
    (["--augment_speech", "--speech_warp=0.3"], "--speech_warp=0.3 must be in [0, 0.2]"),
    (["--batch_size=0"], "--batch_size=0 must be a positive even number"),
    (["--batch_size=7"], "--batch_size=7 must be a positive even number"),
])
def test_train_rejects_loss_and_augmentation_settings_that_cannot_work(tmp_path, arguments, expected):
    result = run_script("train.py", *arguments, f"--train_dir={tmp_path / 'run'}")
    assert expected in assert_one_line_error(result)
    assert not (tmp_path / "run").exists()


def test_training_with_the_offset_loss_through_the_script(dataset, tmp_path):
    """--offset_loss_weight trains on runs of a video's windows and is recorded; with a
    --max_train_windows that skips windows it is refused in one line."""
    train_dir = tmp_path / "run"
    result = run_script("train.py", f"--data_dir={dataset}", f"--train_dir={train_dir}",
                        "--batch_size=8", "--num_epochs=1", "--offset_loss_weight=50",
                        "--offset_run_windows=2")
    assert result.returncode == 0, result.stderr[-3000:]
    config = json.loads((train_dir / "config.json").read_text())
    assert config["offset_loss_weight"] == 50 and config["offset_run_windows"] == 2
    results = json.loads((train_dir / "results.json").read_text())
    assert np.isfinite(results["epochs"][-1]["validation"]["auc"]["mean"])
    capped = run_script("train.py", f"--data_dir={dataset}", f"--train_dir={tmp_path / 'c'}",
                        "--batch_size=8", "--offset_loss_weight=50", "--max_train_windows=8")
    assert "--offset_loss_weight needs every training window" in assert_one_line_error(capped)


def test_bfloat16_training_and_scoring_through_the_scripts(dataset, tmp_path):
    """--precision reaches the towers of train.py and test.py and is recorded."""
    train_dir = tmp_path / "run"
    result = run_script("train.py", f"--data_dir={dataset}", f"--train_dir={train_dir}",
                        "--batch_size=8", "--num_epochs=1", "--precision=bfloat16",
                        "--selection_rule=adaptive")
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Precision bfloat16: towers computed in bfloat16" in result.stderr
    config = json.loads((train_dir / "config.json").read_text())
    assert config["precision"] == "bfloat16" and config["selection_rule"] == "adaptive"
    scored = run_script("test.py", f"--checkpoint_dir={train_dir}", f"--data_dir={dataset}",
                        f"--test_dir={tmp_path / 'test'}", "--precision=bfloat16")
    assert scored.returncode == 0, scored.stderr[-3000:]
    metrics = json.loads((tmp_path / "test" / "metrics.json").read_text())
    assert metrics["precision"] == "bfloat16"
    assert 0.0 <= metrics["auc"]["mean"] <= 1.0


def _damaged_copy(dataset, tmp_path, split, damage):
    """A copy of `dataset` whose `split` shard went through damage(bytes) -> bytes."""
    copy = tmp_path / "damaged"
    shutil.copytree(dataset, copy)
    shard = copy / records.shard_name(split, 0, 1)
    shard.write_bytes(damage(shard.read_bytes()))
    return copy, shard


def _half(data):
    return data[:len(data) // 2]


def _flip_late_byte(data):
    data = bytearray(data)
    data[len(data) * 3 // 4] ^= 0xFF  # a later record: opening the dataset still works
    return bytes(data)


@pytest.mark.parametrize("script,split,damage,expected", [
    ("train.py", "train", _half, "is damaged: "),
    ("test.py", "test", _half, "is damaged: "),
    ("test.py", "test", _flip_late_byte, "is damaged: corrupted record"),
])
def test_damaged_shard_is_named_in_one_line(trained_run, dataset, tmp_path, script, split,
                                            damage, expected):
    copy, shard = _damaged_copy(dataset, tmp_path, split, damage)
    train_dir, _ = trained_run
    if script == "train.py":
        args = [f"--data_dir={copy}", f"--train_dir={tmp_path / 'run'}", "--batch_size=8"]
    else:
        args = [f"--checkpoint_dir={train_dir}", f"--data_dir={copy}",
                f"--test_dir={tmp_path / 'test'}"]
    error = assert_one_line_error(run_script(script, *args))
    assert f"{shard} {expected}" in error


def test_damaged_checkpoint_is_one_line_error(trained_run, dataset, tmp_path):
    train_dir, _ = trained_run
    damaged = tmp_path / "run"
    shutil.copytree(train_dir, damaged)
    rng = np.random.default_rng(0)
    data_files = sorted(damaged.rglob("*.data-*"))
    assert data_files
    for data_file in data_files:
        data_file.write_bytes(rng.bytes(data_file.stat().st_size))
    result = run_script("test.py", f"--checkpoint_dir={damaged}", f"--data_dir={dataset}",
                        f"--test_dir={tmp_path / 'test'}")
    assert "cannot restore checkpoint" in assert_one_line_error(result)


def test_test_batch_size_beyond_memory_is_one_line_error(trained_run, dataset, tmp_path):
    train_dir, _ = trained_run
    result = run_script("test.py", f"--checkpoint_dir={train_dir}", f"--data_dir={dataset}",
                        f"--test_dir={tmp_path / 'test'}", "--batch_size=100000000")
    assert "--batch_size=100000000 does not fit in memory" in assert_one_line_error(result)
