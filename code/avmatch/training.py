"""The training run: data, towers, optimiser, checkpoints, logs and per-epoch evaluation.

Model choice is made on the validation split (other speakers, in a dataset split by
speaker): after every epoch it is scored, and the towers of the epoch with the best
validation AUC are kept in TRAIN_DIR/best (test.py scores that checkpoint); the test split
is never scored here. A loss that becomes NaN or infinite stops the run with an error and
leaves the last good checkpoint as it was.
"""

import contextlib
import dataclasses
import json
import math
import os
import signal
import time

import numpy as np
import tensorflow as tf
from absl import logging

from avmatch import checkpoints, metrics, optim, precision
from avmatch.augment import MOUTH_AUGMENTATIONS, AugmentConfig, augment_batch
from avmatch.config import STRATEGIES, EvalConfig
from avmatch.ema import WeightAverages
from avmatch.input_pipeline import (batches_per_epoch, load_dataset_info, model_features,
                                    subset_stride, window_batches)
from avmatch.nets.nets_factory import input_shape
from avmatch.instance import MatchingInstance
from avmatch.precise_bn import recalibrate_batch_norm
from avmatch.scoring import make_scorer, score_split
from avmatch.train_step import StepConfig, TrainStep
from avprep import records


def make_strategy(name):
    """The tf.distribute strategy named by --distribution_strategy.

    auto: MultiWorkerMirroredStrategy when TF_CONFIG is set, MirroredStrategy when more than
    one GPU is visible, else the default (single-device) strategy.
    """
    if name == "auto":
        if os.environ.get("TF_CONFIG"):
            name = "multi_worker"
        elif len(tf.config.list_logical_devices("GPU")) > 1:
            name = "mirrored"
        else:
            name = "none"
    if name == "none":
        return tf.distribute.get_strategy()
    if name == "mirrored":
        return tf.distribute.MirroredStrategy()
    if name == "multi_worker":
        return tf.distribute.MultiWorkerMirroredStrategy()
    raise ValueError(f"distribution_strategy must be one of {STRATEGIES}, got {name!r}")


def parameter_count(variables):
    """int: the number of scalar weights in `variables`."""
    return int(sum(np.prod(v.shape) for v in variables))


def step_log_line(epoch, index, steps_per_epoch, loss, kept_labels, batch, rate, remaining):
    """The reference's per-step line, from 0-based epoch and step indices.

    kept_labels: (K,) labels of the pairs the step learned from; batch: their eer/auc/ap
    (metrics.batch_metrics). Without an impostor among them the metrics are undefined and the
    line says so, as the reference did.
    """
    head = (
        f"Epoch {epoch + 1}, Minibatch {index + 1} of {steps_per_epoch}, "
        f"Minibatch Loss= {loss:.6f}, "
    )
    contrib = f"contrib = {len(kept_labels)} pairs"
    if not len(kept_labels) or np.min(kept_labels) == 1:
        return head + "No contributing impostor pair! " + contrib
    return (
        head
        + f"EER= {batch['eer']:.5f}, AUC= {batch['auc']:.5f}, AP= {batch['ap']:.5f}, "
        + contrib
        + f"  [{rate:.1f} pairs/s, epoch ETA {remaining:.0f} s]"
    )


class NonFiniteLossError(FloatingPointError):
    """The training loss became NaN or infinite."""


def augment_config(config):
    """AugmentConfig of a TrainConfig (a switched-off part has strength 0), or None."""
    if not (config.augment_mouth or config.augment_speech):
        return None
    if config.augment_mouth:
        changes = MOUTH_AUGMENTATIONS[config.mouth_augmentation]
        mouth = dataclasses.replace(AugmentConfig(), **changes)
    else:
        mouth = AugmentConfig(mouth_zoom=0.0, mouth_brightness=0.0, mouth_contrast=0.0,
                              mouth_flip=0.0)
    speech_noise = AugmentConfig().speech_noise if config.augment_speech else 0.0
    return dataclasses.replace(mouth, speech_noise=speech_noise, speech_warp=config.speech_warp)


def best_epoch(history):
    """The row of `history` (results.json epochs) with the highest validation AUC, or None."""
    scored = [row for row in history if row.get("validation")]
    return max(scored, key=lambda row: row["validation"]["auc"]["mean"]) if scored else None


def should_stop_early(history, patience):
    """True when the last `patience` epochs of `history` did not beat the best before them."""
    best = best_epoch(history)
    return bool(patience) and best is not None and history[-1]["epoch"] - best["epoch"] >= patience


class _Interrupted(KeyboardInterrupt):
    """SIGTERM or SIGINT, turned into an exception so the run checkpoints before it stops."""


class _InterruptGuard:
    """Signal handler that raises _Interrupted, except while `hold()` is active: then the
    signal waits until the held block ends.

    A signal usually arrives while a step runs and is handled right after it; raised there,
    the checkpoint would count a step the optimiser made but the progress counter did not.
    """

    def __init__(self):
        self._holding = False
        self._pending = False

    def handler(self, signum, frame):
        if self._holding:
            self._pending = True
        else:
            raise _Interrupted()

    @contextlib.contextmanager
    def hold(self):
        self._holding = True
        try:
            yield
        finally:
            self._holding = False
        if self._pending:
            self._pending = False
            raise _Interrupted()


class Trainer:
    """One training run in `config.train_dir`, resumable."""

    def __init__(self, config, data_dir):
        self.config = config
        self._guard = _InterruptGuard()
        self.info = load_dataset_info(data_dir, required_splits=("train",),
                                      expected_speech=input_shape(config.model_speech_name)[:2])
        self.eval_split = "validation" if self.info.windows["validation"] else None
        self.strategy = make_strategy(config.distribution_strategy)
        replicas = self.strategy.num_replicas_in_sync
        if config.batch_size < 2 or config.batch_size % (2 * replicas):
            raise ValueError(
                f"--batch_size={config.batch_size} must be a positive multiple of "
                f"{2 * replicas}: each window gives a genuine and an impostor pair "
                f"and the windows are split over {replicas} replica(s)"
            )
        self.windows_per_batch = config.batch_size // 2
        self.stride = subset_stride(self.info, "train", config.max_train_windows)
        self.run_windows = config.offset_run_windows if config.offset_loss_weight else 0
        if self.run_windows and self.stride > 1:
            raise ValueError(
                f"--offset_loss_weight needs every training window: --max_train_windows="
                f"{config.max_train_windows} keeps every {self.stride}th of the "
                f"{self.info.windows['train']}; raise it or set it to 0")
        self.steps_per_epoch = batches_per_epoch(self.info, "train", self.windows_per_batch,
                                                 self.stride)
        if self.steps_per_epoch == 0:
            raise ValueError(
                f"the train split has {self.info.windows['train']} windows, fewer "
                f"than one batch of {self.windows_per_batch}; lower --batch_size"
            )
        tf.random.set_seed(config.seed)
        with self.strategy.scope():
            self.instance = MatchingInstance.create(
                config.model_speech_name,
                config.model_mouth_name,
                self.info.speech_shape,
                weight_decay=config.weight_decay,
                batch_norm_decay=config.batch_norm_decay,
                dtype=precision.dtype_policy(config.precision),
            )
            self.variables = checkpoints.trainable_subset(
                self.instance.trainable_variables, config.trainable_scopes
            )
            schedule = optim.learning_rate_schedule(config, self.steps_per_epoch)
            self.optimizer = optim.make_optimizer(config, schedule)
            self.optimizer.build(self.variables)
            self.averages = WeightAverages(
                self.instance.trainable_variables, config.moving_average_decay
            )
            self.progress = {
                "epoch": tf.Variable(0, dtype=tf.int64, trainable=False),
                "step_in_epoch": tf.Variable(0, dtype=tf.int64, trainable=False),
            }
        checkpoint = checkpoints.training_checkpoint(
            self.instance, self.optimizer, self.averages, self.progress
        )
        self.manager = tf.train.CheckpointManager(
            checkpoint, config.train_dir, config.max_checkpoints_to_keep
        )
        self.best_manager = tf.train.CheckpointManager(
            tf.train.Checkpoint(speech_cnn=self.instance.speech_net,
                                mouth_cnn=self.instance.mouth_net),
            os.path.join(config.train_dir, checkpoints.BEST_DIR), max_to_keep=1,
        )
        self.augment = augment_config(config)
        step_config = StepConfig(
            config.margin_gen, config.margin_imp, config.hard_margin, config.online_pair_selection,
            config.selection_rule, config.adaptive_margin_ratio, config.offset_loss_weight,
            config.offset_temperature
        )
        self.train_step = TrainStep(
            self.instance,
            self.optimizer,
            self.variables,
            self.averages,
            step_config,
            self.strategy,
            jit_compile=config.jit_compile and replicas == 1,
        )
        self.scorer = make_scorer(self.instance)
        self.writer = tf.summary.create_file_writer(config.train_dir)

    # -- start -------------------------------------------------------------------------
    def restore_or_initialise(self):
        """Resumes from train_dir's latest checkpoint, or warm-starts from --checkpoint_path;
        CheckpointError when the checkpoint cannot be used."""
        if self.manager.latest_checkpoint:
            # a damaged ckpt-N, or one of another tower, is a CheckpointError naming it
            checkpoints.restore_run(self.manager.checkpoint, self.manager.latest_checkpoint)
            logging.info(
                "Resumed from %s: epoch %d, step %d of the epoch (global step %d)",
                self.manager.latest_checkpoint,
                int(self.progress["epoch"].numpy()),
                int(self.progress["step_in_epoch"].numpy()),
                int(self.optimizer.iterations.numpy()),
            )
        elif self.config.checkpoint_path:
            copied = checkpoints.warm_start(
                self.instance,
                self.config.checkpoint_path,
                self.config.checkpoint_exclude_scopes,
                self.config.ignore_missing_vars,
            )
            self.averages.reset()
            logging.info(
                "Fine-tuning from %s: %d variables copied", self.config.checkpoint_path, copied
            )

    def log_towers(self):
        logging.info("Precision %s: towers computed in %s", self.config.precision,
                     precision.resolve(self.config.precision))
        for tower in (self.instance.speech_net, self.instance.mouth_net):
            logging.info(
                "Tower %s (%s): %d trainable parameters",
                tower.name,
                {
                    "speech_cnn": self.config.model_speech_name,
                    "mouth_cnn": self.config.model_mouth_name,
                }[tower.name],
                parameter_count(tower.trainable_variables),
            )

    # -- loop --------------------------------------------------------------------------
    def _epoch_batches(self, epoch, skip):
        dataset = window_batches(
            self.info,
            "train",
            self.windows_per_batch,
            shuffle=True,
            seed=self.config.seed + epoch,
            drop_remainder=True,
            stride=self.stride,
            run_windows=self.run_windows,
        )
        if skip:
            dataset = dataset.skip(skip)
        if self.augment is not None:
            augment = self.augment
            dataset = dataset.map(lambda batch: augment_batch(batch, augment),
                                  num_parallel_calls=tf.data.AUTOTUNE).prefetch(tf.data.AUTOTUNE)
        return self.strategy.experimental_distribute_dataset(dataset)

    def _log_step(self, epoch, index, out, elapsed_pairs, started):
        kept = out["kept"].numpy()
        labels = out["labels"].numpy()[kept]
        distances = out["distances"].numpy()[kept]
        loss = float(out["loss"])
        if not math.isfinite(loss) or not np.isfinite(distances).all():
            raise NonFiniteLossError(
                f"the training loss became {loss} at epoch {epoch + 1}, step {index + 1} "
                f"(try a lower learning rate); the last good checkpoint "
                f"{self.manager.latest_checkpoint or '(none yet)'} is kept as it was")
        if (index + 1) % self.config.log_every_n_steps:
            # the batch metrics and summaries cost about 10 ms, 3% of a step: only where logged
            return
        batch = metrics.batch_metrics(labels, distances)
        step = int(self.optimizer.iterations.numpy())
        with self.writer.as_default(step=step):
            tf.summary.scalar("loss", loss)
            tf.summary.scalar("learning_rate", optim.current_learning_rate(self.optimizer))
            tf.summary.scalar("kept_pairs", int(kept.sum()))
            for name, value in batch.items():
                if not math.isnan(value):
                    tf.summary.scalar(f"train/{name}", value)
        rate = elapsed_pairs / max(time.time() - started, 1e-9)
        remaining = (self.steps_per_epoch - index - 1) * self.config.batch_size / max(rate, 1e-9)
        logging.info(
            "%s",
            step_log_line(epoch, index, self.steps_per_epoch, loss, labels, batch, rate, remaining),
        )

    def _recalibrate(self, epoch):
        if not self.config.precise_bn_batches:
            return
        batches = window_batches(
            self.info,
            "train",
            self.windows_per_batch,
            shuffle=True,
            seed=self.config.seed + epoch + 1,
            drop_remainder=True,
            stride=self.stride,
        )
        with self.strategy.scope():
            used = recalibrate_batch_norm(
                self.instance, batches.take(self.config.precise_bn_batches)
            )
        logging.info("Batch-norm moving statistics re-estimated on %d training batches", used)

    def _save(self):
        path = self.manager.save(checkpoint_number=self.optimizer.iterations)
        logging.info("Saved checkpoint %s", path)

    def evaluate(self, epoch):
        """Scores the validation split with the current weights; logs, summarises, returns
        the metrics (None when the dataset has no validation split)."""
        if self.eval_split is None:
            logging.warning("No validation split: no per-epoch evaluation; the last epoch "
                            "counts as the best")
            return None
        labels, distances = score_split(self.instance, self.info, self.eval_split,
                                        scorer=self.scorer)
        result = metrics.fold_metrics(
            labels, distances, num_folds=min(EvalConfig.num_folds, len(labels) // 2)
        )
        logging.info(
            "Epoch %d %s: EER= %.5f, EER(interp)= %.5f, AUC= %.5f, AP= %.5f over %d pairs",
            epoch + 1,
            self.eval_split,
            result["eer"]["mean"],
            result["eer_interpolated"]["mean"],
            result["auc"]["mean"],
            result["ap"]["mean"],
            result["num_pairs"],
        )
        with self.writer.as_default(step=int(self.optimizer.iterations.numpy())):
            for name in metrics.METRIC_NAMES:
                tf.summary.scalar(f"{self.eval_split}/{name}", result[name]["mean"])
            for variable in self.instance.trainable_variables:
                tf.summary.histogram(variable.path, variable)
        return result

    def _history(self):
        """The epochs of results.json so far (a list of dicts)."""
        path = os.path.join(self.config.train_dir, "results.json")
        if not os.path.exists(path):
            return []
        with open(path) as handle:
            return json.load(handle)["epochs"]

    def _append_results(self, epoch, result, seconds):
        """Adds the epoch to results.json (the split each number comes from included) and
        keeps its towers in TRAIN_DIR/best when its validation AUC is the best so far;
        returns the history."""
        history = [row for row in self._history() if row["epoch"] != epoch + 1]
        row = {"epoch": epoch + 1, "global_step": int(self.optimizer.iterations.numpy()),
               "train_seconds": round(seconds, 1), "split": self.eval_split}
        if result is not None:
            row[self.eval_split] = result
        history.append(row)
        best = best_epoch(history) or row
        if best is row:
            path = self.best_manager.save(checkpoint_number=self.optimizer.iterations)
            logging.info("Best so far (%s): saved %s",
                         f"{self.eval_split} AUC" if self.eval_split else "no validation split",
                         path)
        records.write_json_atomic(
            os.path.join(self.config.train_dir, "results.json"),
            {"data_dir": self.info.data_dir, "selection_split": self.eval_split,
             "best_epoch": best["epoch"], "best_checkpoint": self.best_manager.latest_checkpoint,
             "epochs": history})
        return history

    def run(self):
        """Trains the remaining epochs; checkpoints each epoch and when interrupted."""
        os.makedirs(self.config.train_dir, exist_ok=True)
        # first: a checkpoint that cannot be resumed leaves the run's config.json as it was
        self.restore_or_initialise()
        records.write_json_atomic(
            os.path.join(self.config.train_dir, "config.json"),
            dict(self.config.to_dict(), data_dir=self.info.data_dir,
                 features=model_features(records.read_manifest(self.info.data_dir))),
        )
        self.log_towers()
        previous = {
            number: signal.signal(number, self._guard.handler)
            for number in (signal.SIGINT, signal.SIGTERM)
        }
        try:
            self._train_epochs()
        except KeyboardInterrupt:
            self._save()
            logging.warning("Interrupted: progress saved; run the same command again to resume")
            raise
        finally:
            for number, handler in previous.items():
                signal.signal(number, handler)

    def _train_epochs(self):
        while int(self.progress["epoch"].numpy()) < self.config.num_epochs:
            if should_stop_early(self._history(), self.config.early_stopping_epochs):
                logging.info("Early stop: no better %s AUC in the last %d epochs",
                             self.eval_split, self.config.early_stopping_epochs)
                break
            epoch = int(self.progress["epoch"].numpy())
            skip = int(self.progress["step_in_epoch"].numpy())
            started = time.time()
            pairs = 0
            first_done = None
            for index, batch in enumerate(self._epoch_batches(epoch, skip), start=skip):
                with self._guard.hold():
                    out = self.train_step(batch)
                    self.progress["step_in_epoch"].assign(index + 1)
                pairs += self.config.batch_size
                self._log_step(epoch, index, out, pairs, started)
                first_done = first_done or time.time()
            ended = time.time()
            seconds = ended - started
            # the first step of a run traces the graph: the steady rate leaves it out
            steady = ((pairs - self.config.batch_size) / max(ended - first_done, 1e-9)
                      if first_done else 0.0)
            self._recalibrate(epoch)
            with self._guard.hold():
                self.progress["epoch"].assign(epoch + 1)
                self.progress["step_in_epoch"].assign(0)
            self._save()
            logging.info(
                "Epoch %d trained in %.1f s (%.1f pairs/s; %.1f pairs/s after its first step)",
                epoch + 1,
                seconds,
                pairs / max(seconds, 1e-9),
                steady,
            )
            self._append_results(epoch, self.evaluate(epoch), seconds)
