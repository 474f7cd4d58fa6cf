"""Packs a training run's best towers as a pretrained model folder, loadable without training.

    python evaluation/ship_model.py --run_dir=runs/multi --output_dir=code/models/multispeaker-v6

Writes into --output_dir (made anew in a temporary folder beside it, then swapped in by
renames, so an interrupted run leaves the old model or the new one, never half of each;
killed between the two renames, it leaves the old one whole in a .old-* folder beside it):
the towers of the run's best epoch (CHECKPOINT_DIR/best, else its newest checkpoint;
--checkpoint=RUN/ckpt-N for another epoch, chosen by another measure such as sync recovery;
with --use_moving_average, that training checkpoint's moving averages of the weights
instead, as test.py --use_moving_average scores them: the best/ copy holds the towers alone,
so --checkpoint is then required) without optimiser state, and config.json with the run's
settings and the dataset features the model expects (its data_dir cleared: the training
dataset is not part of the model). The towers are built for the speech cubes of those
features, as code/export.py and code/sync.py build them (e.g. float32 (15, 40, 1) cubes for
a run trained on --num_channels=1 data). The model card, its test metrics and its sync
thresholds are written by hand beside it and kept when the folder is shipped again.

--average_with=A,B ships the average of those towers with the towers of the model folders
(or runs) A and B, all weighted alike, batch-norm statistics included: a "model soup" of
models fine-tuned from one start, which need not share a run. A moving-average member is
shipped to a folder of its own first. Every member must have the same towers and features.
"""
import os
import shutil
import tempfile

from absl import flags

from avprep.cli import UsageError, reported, run

FLAGS = flags.FLAGS
flags.DEFINE_string("run_dir", None, "train.py's --train_dir of the run to ship.")
flags.DEFINE_string("output_dir", None, "Model folder to write (replaced whole).")
flags.DEFINE_string("checkpoint", None, "A checkpoint of --run_dir to ship instead of its best "
                    "(a path prefix such as runs/multi/ckpt-1052).")
flags.DEFINE_list("average_with", [], "Model folders (or runs: their best) whose towers "
                  "are averaged with the shipped ones (a model soup).")
flags.DEFINE_boolean("use_moving_average", False,
                     "Ship the checkpoint's moving averages of the weights (train.py "
                     "--moving_average_decay) instead of the weights.")
KEEP = ("MODEL_CARD.md", "test_metrics.json", "sync_thresholds.json")  # written by hand


def _tower_variables(instance):
    return instance.speech_net.variables + instance.mouth_net.variables


def speech_shape(features):
    """The speech cube shape (T, F, C) of a run's recorded dataset features (config.json
    "features"; SpeechFeatureConfig.cube_shape), e.g. (15, 40, 1) for --num_channels=1 data;
    None when the run recorded no speech settings (the tower's registered shape then, as
    before features were recorded). ValueError for settings SpeechFeatureConfig rejects."""
    from avprep.speech_features import SpeechFeatureConfig

    try:
        settings = (features or {}).get("speech")
        speech = SpeechFeatureConfig(**settings) if settings else None
    except (AttributeError, TypeError, ValueError) as error:  # not a mapping, unknown, bad
        raise ValueError(f"config.json \"features\": {error}") from None
    return None if speech is None else speech.cube_shape


def create_instance(saved):
    """Untrained towers of the SavedRun `saved`, for its speech cube shape."""
    from avmatch.instance import MatchingInstance

    return MatchingInstance.create(saved.train.model_speech_name,
                                   saved.train.model_mouth_name, speech_shape(saved.features))


def average_towers(instance, saved, members):
    """Sets the tower variables of `instance` (of the SavedRun `saved`) to their mean with
    those of the model folders `members`, weighted alike; ValueError for a member with other
    towers or features."""
    import numpy as np

    from avmatch import checkpoints
    from avmatch.config import RUN_CONFIG_NAME, read_saved_run

    if not members:
        return
    towers = (saved.train.model_speech_name, saved.train.model_mouth_name)
    sums = [variable.numpy().astype(np.float64) for variable in _tower_variables(instance)]
    for member in members:
        # read_saved_run gives defaults for a folder without config.json: not a model
        if not os.path.isfile(os.path.join(member, RUN_CONFIG_NAME)):
            raise FileNotFoundError(f"--average_with: no model folder {member}")
        other = read_saved_run(member)
        if (other.train.model_speech_name, other.train.model_mouth_name) != towers or \
                other.features != saved.features:
            raise ValueError(f"--average_with: {member} has other towers or features than the "
                             "model shipped; only models of one architecture and input average")
        copy = create_instance(other)  # same features, checked above: same shapes
        checkpoints.restore_towers(checkpoints.checkpoint_to_score(member, "best"), copy)
        for total, variable in zip(sums, _tower_variables(copy)):
            total += variable.numpy()
    for variable, total in zip(_tower_variables(instance), sums):
        variable.assign((total / (1 + len(members))).astype(variable.numpy().dtype))


def ship(run_dir, output_dir, checkpoint=None, use_moving_average=False, average_with=()):
    """Exports the towers of `checkpoint` (by default the run's best; with
    use_moving_average, their moving averages; with average_with, their average with those
    model folders' towers) and the run's settings into output_dir; returns the checkpoint
    path it wrote."""
    import dataclasses

    from avmatch import checkpoints
    from avmatch.config import RUN_CONFIG_NAME, read_saved_run
    from avmatch.ema import WeightAverages
    from avmatch.export import replace_folder
    from avprep import records

    saved = read_saved_run(run_dir)
    source = checkpoint or checkpoints.checkpoint_to_score(run_dir, "best")
    instance = create_instance(saved)
    averages = (WeightAverages(instance.trainable_variables, saved.train.moving_average_decay)
                if use_moving_average else None)
    checkpoints.restore_towers(source, instance, averages)
    if averages is not None:
        averages.copy_to_variables()
    average_towers(instance, saved, average_with)
    parent = os.path.dirname(os.path.abspath(output_dir))
    os.makedirs(parent, exist_ok=True)
    staging = tempfile.mkdtemp(prefix=".ship-", dir=parent)
    os.chmod(staging, 0o755)  # mkdtemp's 0o700 would make the shipped folder private
    try:
        step = int(source.rsplit("-", 1)[1])
        checkpoints.export_towers(instance, staging, step)
        train = dataclasses.replace(saved.train, data_dir="", train_dir=output_dir)
        records.write_json_atomic(os.path.join(staging, RUN_CONFIG_NAME),
                                  dict(train.to_dict(), features=saved.features,
                                       shipped_from=os.path.abspath(source),
                                       moving_average=use_moving_average,
                                       averaged_with=[os.path.abspath(member)
                                                      for member in average_with]))
        for name in KEEP:
            if os.path.exists(os.path.join(output_dir, name)):
                shutil.copy2(os.path.join(output_dir, name), staging)
        replace_folder(staging, output_dir)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return os.path.join(output_dir, os.path.basename(
        checkpoints.latest_checkpoint(output_dir)))


def main(argv):
    if len(argv) > 1:
        raise UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
    if not FLAGS.run_dir or not FLAGS.output_dir:
        raise UsageError("--run_dir and --output_dir are required")
    if FLAGS.use_moving_average and not FLAGS.checkpoint:
        raise UsageError("--use_moving_average needs --checkpoint=RUN/ckpt-N (a training "
                         "checkpoint: the run's best/ copy holds no moving averages)")
    if os.path.exists(FLAGS.output_dir) and not os.path.isdir(FLAGS.output_dir):
        raise UsageError(f"--output_dir={FLAGS.output_dir} exists and is not a directory")
    from avmatch.checkpoints import CheckpointError
    with reported(FileNotFoundError, ValueError, CheckpointError):
        path = ship(FLAGS.run_dir, FLAGS.output_dir, FLAGS.checkpoint,
                    FLAGS.use_moving_average, FLAGS.average_with)
    print(f"shipped {path}")


if __name__ == "__main__":
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    run(main)
