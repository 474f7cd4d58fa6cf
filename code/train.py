"""Trains the coupled 3D-CNN on genuine/impostor pairs.

    python code/train.py --batch_size=32                   # the demo dataset
    python code/train.py --data_dir=DATASET --train_dir=runs/grid --num_epochs=5

--data_dir is a dataset written by data_preparation/build_dataset.py; without it the
project's demo dataset is generated once (cached) and used. Re-running with the same
--train_dir resumes the run.
"""
import dataclasses
import math
import os
import sys

from absl import flags, logging

from avmatch.config import (DECAY_TYPES, MAX_SPEECH_WARP, OPTIMIZERS, SELECTION_RULES, STRATEGIES,
                            TrainConfig)
from avprep.atomic import check_folder_path
from avprep.cli import UsageError, reported, run

FLAGS = flags.FLAGS
_D = TrainConfig()

flags.DEFINE_string("train_dir", _D.train_dir, "Directory for checkpoints, TensorBoard logs, "
                    "config.json and results.json.")
flags.DEFINE_string("data_dir", "", "Prepared dataset directory; empty = the demo dataset.")
flags.DEFINE_string("model_speech_name", _D.model_speech_name, "Speech tower (nets_factory name).")
flags.DEFINE_string("model_mouth_name", _D.model_mouth_name, "Mouth tower (nets_factory name).")
flags.DEFINE_integer("batch_size", _D.batch_size, "Pairs per batch (genuine + impostor; even).")
flags.DEFINE_integer("num_epochs", _D.num_epochs, "Epochs to train in all (a resumed run "
                     "continues up to this number).")
flags.DEFINE_integer("log_every_n_steps", _D.log_every_n_steps, "Steps between log lines "
                     "and TensorBoard training summaries.")
flags.DEFINE_float("weight_decay", _D.weight_decay, "L2 weight decay of the conv kernels.")
flags.DEFINE_float("batch_norm_decay", _D.batch_norm_decay, "Decay of batch norm's moving "
                   "statistics.")
flags.DEFINE_enum("optimizer", _D.optimizer, list(OPTIMIZERS), "Optimiser.")
flags.DEFINE_float("adam_beta1", _D.adam_beta1, "Adam: decay of the first moment.")
flags.DEFINE_float("adam_beta2", _D.adam_beta2, "Adam: decay of the second moment.")
flags.DEFINE_float("opt_epsilon", _D.opt_epsilon, "Epsilon of adam and rmsprop.")
flags.DEFINE_float("momentum", _D.momentum, "Momentum of the momentum and rmsprop optimisers.")
flags.DEFINE_float("rmsprop_decay", _D.rmsprop_decay, "RMSProp: decay of the squared gradient.")
flags.DEFINE_enum("learning_rate_decay_type", _D.learning_rate_decay_type,
                  list(DECAY_TYPES), "Learning-rate schedule.")
flags.DEFINE_float("learning_rate", _D.learning_rate, "Initial learning rate.")
flags.DEFINE_float("end_learning_rate", _D.end_learning_rate, "Final rate of the polynomial "
                   "schedule.")
flags.DEFINE_float("learning_rate_decay_factor", _D.learning_rate_decay_factor,
                   "Exponential schedule: factor applied every num_epochs_per_decay epochs.")
flags.DEFINE_float("num_epochs_per_decay", _D.num_epochs_per_decay, "Epochs between decays "
                   "(and the length of the polynomial schedule).")
flags.DEFINE_float("moving_average_decay", _D.moving_average_decay, "Decay of the moving "
                   "average of the weights (test.py --use_moving_average).")
flags.DEFINE_float("margin_gen", _D.margin_gen, "Contrastive loss: genuine margin.")
flags.DEFINE_float("margin_imp", _D.margin_imp, "Contrastive loss: impostor margin.")
flags.DEFINE_float("hard_margin", _D.hard_margin, "Online pair selection: keep impostors "
                   "closer than the largest genuine distance plus this.")
flags.DEFINE_boolean("online_pair_selection", _D.online_pair_selection, "Learn from the "
                     "selected pairs only; false = every pair.")
flags.DEFINE_enum("selection_rule", _D.selection_rule, list(SELECTION_RULES), "Online pair "
                  "selection: hard = the reference's fixed --hard_margin; adaptive = a margin of "
                  "--adaptive_margin_ratio times the batch's largest genuine distance.")
flags.DEFINE_float("adaptive_margin_ratio", _D.adaptive_margin_ratio, "The adaptive rule's "
                   "margin as a share of the largest genuine distance.")
flags.DEFINE_float("offset_loss_weight", _D.offset_loss_weight, "Weight of the loss over "
                   "audio offsets (avmatch.losses.offset_loss): each mouth window against its "
                   "clip's audio at the other offsets of its batch; 0 = contrastive loss alone.")
flags.DEFINE_float("offset_temperature", _D.offset_temperature,
                   "Offset loss: distance units per unit of logit.")
flags.DEFINE_integer("offset_run_windows", _D.offset_run_windows, "Offset loss: batches are "
                     "made of runs of this many consecutive windows of a video (0.1 s apart).")
flags.DEFINE_string("checkpoint_path", "", "Checkpoint (file prefix or directory) to fine-tune "
                    "from when train_dir has none.")
flags.DEFINE_list("checkpoint_exclude_scopes", [], "Variable scopes (e.g. mouth_cnn/head) not "
                  "taken from --checkpoint_path.")
flags.DEFINE_list("trainable_scopes", [], "Only variables under these scopes are trained "
                  "(e.g. speech_cnn); empty = all.")
flags.DEFINE_boolean("ignore_missing_vars", False, "Skip variables --checkpoint_path lacks.")
flags.DEFINE_enum("distribution_strategy", _D.distribution_strategy, list(STRATEGIES),
                  "tf.distribute strategy (replaces the reference's --num_clones towers).")
flags.DEFINE_boolean("jit_compile", _D.jit_compile, "Compile the training step with XLA "
                     "(single replica; off by default: about 2x slower on the 2-core CPU).")
flags.DEFINE_integer("max_checkpoints_to_keep", _D.max_checkpoints_to_keep, "Checkpoints kept.")
flags.DEFINE_integer("precise_bn_batches", _D.precise_bn_batches, "Training batches whose batch "
                     "statistics replace batch norm's moving statistics after each epoch, before "
                     "evaluation and the checkpoint (0 = keep the moving averages).")
flags.DEFINE_boolean("augment_mouth", _D.augment_mouth, "Augment the training mouth cubes "
                     "(zoom/shift of the crop, brightness, contrast, flip; avmatch.augment).")
flags.DEFINE_enum("mouth_augmentation", _D.mouth_augmentation, ["standard", "strong"],
                  "With --augment_mouth: 'strong' adds rotation, resolution loss and a larger "
                  "zoom (avmatch.augment.MOUTH_AUGMENTATIONS).")
flags.DEFINE_boolean("augment_speech", _D.augment_speech, "Add noise to the training speech "
                     "cubes (avmatch.augment).")
flags.DEFINE_float("speech_warp", _D.speech_warp, "With --augment_speech: stretch each speech "
                   "cube's Mel-filter axis by a random factor in [1 - w, 1 + w], a change of "
                   "speaker's vocal tract length (avmatch.augment; 0 = off, at most "
                   f"{MAX_SPEECH_WARP}).")
flags.DEFINE_integer("early_stopping_epochs", _D.early_stopping_epochs, "Stop when the "
                     "validation AUC has not improved for this many epochs (0 = never).")
flags.DEFINE_integer("max_train_windows", _D.max_train_windows, "Train on about this many "
                     "windows, every k-th of each training shard (a fixed subset; 0 = all).")
flags.DEFINE_enum("precision", _D.precision, ["float32", "bfloat16", "auto"], "Tower "
                  "arithmetic: float32, or bfloat16 compute with float32 weights and loss; auto "
                  "= bfloat16 where the CPU reports avx512_bf16/amx_bf16 or the GPU has it "
                  "(accuracy parity measured: README, Performance).")
flags.DEFINE_integer("seed", _D.seed, "Seed of the initial weights and the shuffling.")


def check_numbers(config):
    """`config`, or a UsageError for a float flag that is not a finite number (nan and inf
    parse as floats but make every loss and metric nan), a learning rate that is not
    positive, a batch size that is not a positive even number or a logging interval under
    one step."""
    for field in dataclasses.fields(config):
        value = getattr(config, field.name)
        if isinstance(value, float) and not math.isfinite(value):
            raise UsageError(f"--{field.name}={value} must be a finite number")
    if config.adaptive_margin_ratio < 0 or config.max_train_windows < 0:
        raise UsageError("--adaptive_margin_ratio and --max_train_windows must not be negative")
    if config.offset_loss_weight < 0 or config.offset_temperature <= 0:
        raise UsageError("--offset_loss_weight must not be negative and --offset_temperature "
                         "must be positive")
    if config.offset_loss_weight and config.offset_run_windows < 2:
        raise UsageError(f"--offset_run_windows={config.offset_run_windows} must be at least 2: "
                         "the offset loss compares a window with its video's other windows")
    if config.mouth_augmentation != "standard" and not config.augment_mouth:
        raise UsageError(f"--mouth_augmentation={config.mouth_augmentation} needs --augment_mouth")
    if not 0 <= config.speech_warp <= MAX_SPEECH_WARP:
        raise UsageError(f"--speech_warp={config.speech_warp} must be in [0, {MAX_SPEECH_WARP}]")
    if config.speech_warp and not config.augment_speech:
        raise UsageError(f"--speech_warp={config.speech_warp} needs --augment_speech")
    if config.learning_rate <= 0:
        raise UsageError(f"--learning_rate={config.learning_rate} must be positive")
    if config.batch_size < 2 or config.batch_size % 2:
        # checked before the demo data are built; the replica count is checked by Trainer
        raise UsageError(f"--batch_size={config.batch_size} must be a positive even number: "
                         "each window gives a genuine and an impostor pair")
    if config.log_every_n_steps < 1:
        # a step is logged when its number is a multiple of the interval
        raise UsageError(f"--log_every_n_steps={config.log_every_n_steps} must be at least 1")
    return config


def check_train_dir(config):
    """`config`, or a UsageError when --train_dir cannot be a directory to write in: empty,
    it or a folder on its way exists and is not one, or the nearest existing folder is not
    writable. Checked before TensorFlow loads, without creating anything: TensorFlow's summary
    writer would fail on it with a traceback."""
    if not config.train_dir:
        raise UsageError("--train_dir must not be empty")
    with reported(NotADirectoryError):
        path = check_folder_path(config.train_dir, f"--train_dir={config.train_dir}")
    if not os.access(path, os.W_OK | os.X_OK):
        raise UsageError(f"--train_dir={config.train_dir}: {path} is not writable")
    return config


def config_from_flags():
    """TrainConfig from the parsed flags; UsageError for values that cannot work."""
    return check_train_dir(check_numbers(TrainConfig(
        **{field: getattr(FLAGS, field) for field in TrainConfig.__dataclass_fields__
           if field not in ("checkpoint_exclude_scopes", "trainable_scopes")},
        checkpoint_exclude_scopes=tuple(FLAGS.checkpoint_exclude_scopes),
        trainable_scopes=tuple(FLAGS.trainable_scopes))))


def train(trainer):
    """trainer.run(), with a damaged dataset, an unusable --checkpoint_path or a batch too
    large for the memory reported as a UsageError."""
    import tensorflow as tf

    from avmatch.checkpoints import CheckpointError
    from avmatch.input_pipeline import DatasetError, naming_damaged_shards

    try:
        with reported(DatasetError, CheckpointError, FileNotFoundError, FloatingPointError), \
                naming_damaged_shards(trainer.info.data_dir):
            trainer.run()
    except tf.errors.ResourceExhaustedError:
        raise UsageError(f"--batch_size={trainer.config.batch_size} does not fit in memory "
                         "(TensorFlow could not allocate a batch); lower it") from None


def main(argv):
    if len(argv) > 1:
        raise UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
    config = config_from_flags()  # before TensorFlow loads: a bad flag fails at once
    from avmatch.training import Trainer
    from avprep.demo_data import dataset_or_demo
    data_dir = dataset_or_demo(config.data_dir, log=logging.info)
    with reported(ValueError, FileNotFoundError):
        trainer = Trainer(config, data_dir)
    try:
        train(trainer)
    except KeyboardInterrupt:
        sys.exit(130)


if __name__ == "__main__":
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    run(main)
