"""Model choice on the validation split: the best epoch, early stopping, the best checkpoint
that test.py scores, and a run whose loss becomes NaN stopping with its last good checkpoint."""
import json
import math
import os

import pytest
import tensorflow as tf

from avmatch import checkpoints
from avmatch.config import TrainConfig
from avmatch.training import NonFiniteLossError, Trainer, best_epoch, should_stop_early
from test_checkpoints_and_cli import write_dataset


def _row(epoch, auc):
    return {"epoch": epoch, "validation": {"auc": {"mean": auc}}}


def test_best_epoch_and_early_stopping():
    history = [_row(1, 0.6), _row(2, 0.7), _row(3, 0.65), _row(4, 0.69)]
    assert best_epoch(history)["epoch"] == 2
    assert should_stop_early(history, 2)
    assert not should_stop_early(history, 3)
    assert not should_stop_early(history, 0)
    assert best_epoch([{"epoch": 1, "split": None}]) is None


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    return write_dataset(tmp_path_factory.mktemp("dataset"),
                         {"train": 16, "validation": 8, "test": 8})


def _config(train_dir, **kwargs):
    return TrainConfig(train_dir=str(train_dir), batch_size=8, precise_bn_batches=1, **kwargs)


def test_each_epoch_is_scored_on_validation_and_the_best_kept(dataset, tmp_path):
    trainer = Trainer(_config(tmp_path, num_epochs=2, augment_mouth=True,
                              mouth_augmentation="strong", augment_speech=True,
                              speech_warp=0.1), dataset)
    trainer.run()
    with open(tmp_path / "results.json") as handle:
        results = json.load(handle)
    with open(tmp_path / "config.json") as handle:
        assert json.load(handle)["speech_warp"] == 0.1
    assert results["selection_split"] == "validation"
    assert [row["split"] for row in results["epochs"]] == ["validation", "validation"]
    assert all("test" not in row for row in results["epochs"])
    assert all(row["validation"]["num_pairs"] == 16 for row in results["epochs"])
    best = best_epoch(results["epochs"])
    assert results["best_epoch"] == best["epoch"]
    path = checkpoints.checkpoint_to_score(str(tmp_path))
    assert path == results["best_checkpoint"]
    assert path.endswith(f"ckpt-{best['global_step']}")
    assert checkpoints.checkpoint_to_score(str(tmp_path), "latest").endswith("ckpt-8")


def test_a_non_finite_loss_stops_the_run_and_keeps_the_last_checkpoint(dataset, tmp_path):
    trainer = Trainer(_config(tmp_path, num_epochs=1), dataset)
    trainer.run()
    kept = tf.train.latest_checkpoint(str(tmp_path))
    trainer = Trainer(_config(tmp_path, num_epochs=2), dataset)
    step = trainer.train_step

    def diverging(batch):
        out = dict(step(batch))
        out["loss"] = tf.constant(math.nan)
        return out

    trainer.train_step = diverging
    with pytest.raises(NonFiniteLossError, match="nan at epoch 2, step 1"):
        trainer.run()
    assert tf.train.latest_checkpoint(str(tmp_path)) == kept
    assert os.path.exists(kept + ".index")


def _summary_steps(train_dir, tag):
    """Global steps at which the run's event files hold a scalar `tag`."""
    steps = []
    for path in sorted(os.listdir(train_dir)):
        if path.startswith("events.out.tfevents"):
            for event in tf.compat.v1.train.summary_iterator(os.path.join(train_dir, path)):
                steps += [event.step for value in event.summary.value if value.tag == tag]
    return steps


def test_training_summaries_follow_the_log_steps(dataset, tmp_path):
    """The batch metrics and TensorBoard training scalars are written on logged steps only
    (4 steps per epoch here, every 2nd logged), while every step is checked for a finite
    loss (test above)."""
    Trainer(_config(tmp_path, num_epochs=1, log_every_n_steps=2), dataset).run()
    assert _summary_steps(tmp_path, "loss") == [2, 4]
    assert _summary_steps(tmp_path, "train/auc") == [2, 4]
