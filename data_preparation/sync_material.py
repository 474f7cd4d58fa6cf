"""The sync check's measurement material: shifted copies of the validation and test clips that
evaluation/SYNC_EXPERIMENTS.md scores every candidate on, one folder per named set.

  python data_preparation/sync_material.py --dataset_dir=data/multi \
      --grid_dir=../shared/data/grid_s1 --output_dir=shifted

Writes OUTPUT_DIR/<set>/<clip>_audio<+-N>ms.mp4 (data_preparation/shift_audio.py's copies,
the video stream copied, not re-encoded) for the sets of avprep.sync_material: grid_val,
grid_val2, grid_val_rest, grid_test, grid_test_full (from --grid_dir; left out without it),
lrw_val, lrw_val2, lrw_val_rest, lrw_test, lrw_test_full, lrw_train (training speakers) and
heldout (from the speaker-split dataset), and OUTPUT_DIR/material.json naming each set's
source clips. Copies already there are kept, so an interrupted run goes on where it stopped. Check a set with
`python code/sync.py --video=shifted/grid_val` (`--max_offset=7` for the 1.2 s LRW clips).
"""
import dataclasses
import os

from absl import flags

from avprep.cli import UsageError, reported, run
from avprep.records import MANIFEST_NAME

FLAGS = flags.FLAGS
flags.DEFINE_string("dataset_dir", None, "A dataset built by build_dataset.py --split_by=speaker "
                    "(its validation and test clips; run from where it was built).")
flags.DEFINE_string("grid_dir", "", "One GRID speaker's folder (video/, align/); empty = no "
                    "GRID sets.")
flags.DEFINE_string("output_dir", None, "Folder for the sets (created; resumable).")
flags.DEFINE_list("sets", [], "Sets to write (default: all that the inputs give).")
flags.DEFINE_list("offsets_ms", ["-200", "-100", "0", "100", "200"],
                  "Audio shifts in milliseconds, + = audio late.")


def material_sets(dataset_dir, grid_dir):
    """{set name: [source video path]} from the dataset (and GRID speaker folder, if given)."""
    from avprep import records, sync_material
    from avprep.splits import SplitConfig, list_videos

    manifest = records.read_manifest(dataset_dir)
    try:
        sets = sync_material.dataset_sets(manifest, sync_material.manifest_paths(manifest))
    except (KeyError, TypeError) as error:
        raise ValueError(f"its manifest lacks or garbles {error} (build it with "
                         "build_dataset.py)") from None
    if grid_dir:
        sets.update(sync_material.grid_sets(list_videos(grid_dir, SplitConfig(layout="grid"))))
    return sets


@dataclasses.dataclass(frozen=True)
class MaterialConfig:
    """The inputs, the output folder, the sets asked for (empty = all) and the shifts (ms)."""
    dataset_dir: str
    grid_dir: str
    output_dir: str
    sets: tuple
    offsets_ms: tuple


def config_from_flags(values):
    """MaterialConfig from parsed flags; UsageError for values that cannot work."""
    if not values.dataset_dir or not values.output_dir:
        raise UsageError("--dataset_dir and --output_dir are required")
    if os.path.exists(values.output_dir) and not os.path.isdir(values.output_dir):
        raise UsageError(f"--output_dir={values.output_dir} exists and is not a directory")
    if not os.path.isfile(os.path.join(values.dataset_dir, MANIFEST_NAME)):
        raise UsageError(f"--dataset_dir={values.dataset_dir} is not a dataset (no "
                         f"{MANIFEST_NAME})")
    if values.grid_dir and not os.path.isdir(values.grid_dir):
        raise UsageError(f"--grid_dir={values.grid_dir} is not a folder")
    from avprep.shift import parse_offsets_ms
    from avprep.sync_material import SET_NAMES

    unknown = sorted(set(values.sets) - set(SET_NAMES))
    if unknown:
        raise UsageError(f"--sets: unknown {', '.join(unknown)} (known: {', '.join(SET_NAMES)})")
    with reported(ValueError, prefix="--offsets_ms: "):
        offsets = parse_offsets_ms(values.offsets_ms)
    return MaterialConfig(dataset_dir=values.dataset_dir, grid_dir=values.grid_dir,
                          output_dir=values.output_dir, sets=tuple(values.sets),
                          offsets_ms=tuple(offsets))


def chosen_sets(sets, names, dataset_dir):
    """{set: [source]}: `sets` narrowed to `names` (all when empty); UsageError for a set the
    inputs cannot give."""
    if not names:
        return sets
    missing = [name for name in names if name not in sets]
    if missing:
        raise UsageError(f"--sets: {', '.join(missing)} need --grid_dir")
    empty = [name for name in names if not sets[name]]
    if empty:
        raise UsageError(f"--sets: no clip of {dataset_dir} for {', '.join(empty)}")
    return {name: sets[name] for name in names}


def main(argv):
    if len(argv) > 1:
        raise UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
    config = config_from_flags(FLAGS)
    from avprep import records
    from avprep.shift import write_shifted_copies

    with reported(OSError, ValueError, prefix=f"{config.dataset_dir}: "):
        sets = material_sets(config.dataset_dir, config.grid_dir)
    sets = chosen_sets(sets, config.sets, config.dataset_dir)
    offsets = list(config.offsets_ms)
    os.makedirs(config.output_dir, exist_ok=True)
    records.write_json_atomic(os.path.join(config.output_dir, "material.json"),
                              {"offsets_ms": offsets, "sets": sets})
    for name, sources in sets.items():
        if not sources:
            print(f"{name}: no clip in the inputs, so no copies")
            continue
        with reported(ValueError):
            written = sum(len(write_shifted_copies(source, os.path.join(config.output_dir, name),
                                                   offsets, keep_existing=True))
                          for source in sources)
        print(f"{name}: {len(sources)} clips x {len(offsets)} shifts ({written} copies written)")


if __name__ == "__main__":
    run(main)
