"""code/train.py on bad input: flags and a --train_dir that cannot work, and a train_dir
whose latest checkpoint cannot be resumed, each end in one `error:` line and exit code 2."""
import shutil

import numpy as np
import pytest

# `dataset` (a module-scoped fixture: this module gets its own) is the small dataset there
from test_checkpoints_and_cli import TRAIN_WINDOWS, assert_one_line_error, dataset, run_script


# -- rejected before TensorFlow loads: nothing is created --------------------------------
@pytest.mark.parametrize("value", ["0", "-3"])
def test_train_rejects_a_logging_interval_under_one_step(tmp_path, value):
    result = run_script("train.py", f"--log_every_n_steps={value}",
                        f"--train_dir={tmp_path / 'run'}")
    assert f"--log_every_n_steps={value} must be at least 1" in assert_one_line_error(result)
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("train_dir,expected", [
    ("a_file", "exists and is not a directory"),
    ("a_file/run", "cannot be created: {tmp}/a_file is not a directory"),
    ("", "--train_dir must not be empty"),
])
def test_train_rejects_a_train_dir_that_cannot_be_a_directory(tmp_path, train_dir, expected):
    (tmp_path / "a_file").write_text("not a run")
    argument = str(tmp_path / train_dir) if train_dir else ""
    result = run_script("train.py", f"--train_dir={argument}")
    assert expected.format(tmp=tmp_path) in assert_one_line_error(result)
    assert (tmp_path / "a_file").read_text() == "not a run"


# -- a train_dir whose checkpoint cannot be resumed ---------------------------------------
@pytest.fixture(scope="module")
def one_step_run(dataset, tmp_path_factory):
    """train_dir of a run of code/train.py stopped after one step (checkpoint ckpt-1)."""
    train_dir = tmp_path_factory.mktemp("run")
    result = run_script("train.py", f"--data_dir={dataset}", f"--train_dir={train_dir}",
                        "--batch_size=8", "--num_epochs=1", "--jit_compile=false",
                        f"--max_train_windows={TRAIN_WINDOWS // 4}")
    assert result.returncode == 0, result.stderr[-3000:]
    assert (train_dir / "ckpt-1.index").exists()
    return train_dir


def _junk(data):
    return np.random.default_rng(0).bytes(len(data))


def _truncated(data):
    return data[:len(data) // 2]


@pytest.mark.parametrize("damage,arguments", [
    (_junk, []),
    (_truncated, []),
    (None, ["--model_speech_name=lipread_speech_static"]),  # another tower than the run's
])
def test_resuming_a_checkpoint_that_cannot_be_used_is_one_line_error(
        one_step_run, dataset, tmp_path, damage, arguments):
    train_dir = tmp_path / "run"
    shutil.copytree(one_step_run, train_dir)
    if damage is not None:
        for data_file in train_dir.glob("ckpt-1.data-*"):
            data_file.write_bytes(damage(data_file.read_bytes()))
    saved_config = (train_dir / "config.json").read_text()
    result = run_script("train.py", f"--data_dir={dataset}", f"--train_dir={train_dir}",
                        "--batch_size=8", "--num_epochs=2", "--jit_compile=false", *arguments)
    error = assert_one_line_error(result)
    assert f"cannot resume from checkpoint {train_dir / 'ckpt-1'} (damaged, or" in error
    # the run is left as it was: no new checkpoint, its config.json untouched
    assert sorted(path.name for path in train_dir.glob("ckpt-*.index")) == ["ckpt-1.index"]
    assert (train_dir / "config.json").read_text() == saved_config
