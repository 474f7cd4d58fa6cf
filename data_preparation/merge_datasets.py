"""Trains on several pair settings at once: a dataset whose training split joins the training
splits of datasets built from the same videos (e.g. with --impostor_shift=0.5 and 0.1), and
whose validation and test splits are the first one's.

  python data_preparation/merge_datasets.py --base_dir=data/multi \
      --add_train_from=data/multi_s01 --output_dir=data/multi_mix

The merged folder links to the inputs' shards (nothing is copied, so keep the inputs); its
manifest records each input (avprep.merge has the checks). Train on part of it with
train.py's --max_train_windows to keep an epoch's length.
"""
import os

from absl import flags

from avprep.cli import UsageError, reported, run
from avprep.records import MANIFEST_NAME

FLAGS = flags.FLAGS
flags.DEFINE_string("base_dir", None, "Dataset whose splits are kept (validation and test).")
flags.DEFINE_list("add_train_from", [], "Datasets whose training shards are added.")
flags.DEFINE_string("output_dir", None, "Merged dataset folder to create (must not exist).")


def main(argv):
    if len(argv) > 1:
        raise UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
    if not FLAGS.base_dir or not FLAGS.add_train_from or not FLAGS.output_dir:
        raise UsageError("--base_dir, --add_train_from and --output_dir are required")
    for data_dir in [FLAGS.base_dir] + FLAGS.add_train_from:
        if not os.path.isfile(os.path.join(data_dir, MANIFEST_NAME)):
            raise UsageError(f"{data_dir} is not a dataset (no {MANIFEST_NAME})")
    if os.path.exists(FLAGS.output_dir):
        raise UsageError(f"--output_dir={FLAGS.output_dir} exists; choose a new folder")
    from avprep.merge import merge_training_data

    with reported(ValueError, OSError):
        manifest = merge_training_data(FLAGS.base_dir, FLAGS.add_train_from, FLAGS.output_dir)
    train = manifest["splits"]["train"]
    print(f"{FLAGS.output_dir}: {train['windows']} training windows in "
          f"{len(train['shards'])} shards from {len(manifest['merged'])} datasets; validation "
          f"and test from {FLAGS.base_dir}")


if __name__ == "__main__":
    run(main)
