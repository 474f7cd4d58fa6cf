"""Trains on several pair settings at once: a dataset whose training split joins the training
splits of datasets built from the same videos (e.g. with --impostor_shift=0.5 and 0.1), and
whose validation and test splits are the first one's.

  python data_preparation/merge_datasets.py --base_dir=data/multi \
      --add_train_from=data/multi_s01 --output_dir=data/multi_mix

The merged folder links to the inputs' shards (nothing is copied, so keep the inputs); its
manifest records each input (avprep.merge has the checks). Train on part of it with
train.py's --max_train_windows to keep an epoch's length.
"""
import dataclasses
import os

from absl import flags

from avprep.cli import UsageError, reported, run
from avprep.records import MANIFEST_NAME

FLAGS = flags.FLAGS
flags.DEFINE_string("base_dir", None, "Dataset whose splits are kept (validation and test).")
flags.DEFINE_list("add_train_from", [], "Datasets whose training shards are added.")
flags.DEFINE_string("output_dir", None, "Merged dataset folder to create (must not exist).")


@dataclasses.dataclass(frozen=True)
class MergeConfig:
    """The dataset whose splits are kept, those whose training shards join it, the output."""
    base_dir: str
    add_train_from: tuple
    output_dir: str


def config_from_flags(values):
    """MergeConfig from parsed flags; UsageError for values that cannot work."""
    if not values.base_dir or not values.add_train_from or not values.output_dir:
        raise UsageError("--base_dir, --add_train_from and --output_dir are required")
    for data_dir in [values.base_dir] + list(values.add_train_from):
        if not os.path.isfile(os.path.join(data_dir, MANIFEST_NAME)):
            raise UsageError(f"{data_dir} is not a dataset (no {MANIFEST_NAME})")
    if os.path.exists(values.output_dir):
        raise UsageError(f"--output_dir={values.output_dir} exists; choose a new folder")
    return MergeConfig(base_dir=values.base_dir, add_train_from=tuple(values.add_train_from),
                       output_dir=values.output_dir)


def main(argv):
    if len(argv) > 1:
        raise UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
    config = config_from_flags(FLAGS)
    from avprep.merge import merge_training_data

    with reported(ValueError, OSError):
        manifest = merge_training_data(config.base_dir, list(config.add_train_from),
                                       config.output_dir)
    train = manifest["splits"]["train"]
    print(f"{config.output_dir}: {train['windows']} training windows in "
          f"{len(train['shards'])} shards from {len(manifest['merged'])} datasets; validation "
          f"and test from {config.base_dir}")


if __name__ == "__main__":
    run(main)
