"""Which clips make the sync check's measurement material (evaluation/SYNC_EXPERIMENTS.md).

Named sets of source videos, each fixed by a rule on sorted lists, so a later session makes
the same material again:
  grid_val, grid_val2   GRID s1 validation clips (by id), every 5th from the 1st / the 3rd
  grid_test             GRID s1 test clips, every 5th;  grid_test_full: all of them
  lrw_val, lrw_val2     the dataset's validation clips from `lrw_source` (by path), every
                        10th from the 1st / the 6th, 20 at most
  lrw_test              its test clips from `lrw_source`, every 10th;  lrw_test_full: all
  heldout               its validation and test clips from every other source
GRID's split is its own (avprep.splits, by video); the others are the speaker split written
in the dataset's manifest, so the validation and test speakers are the model's held-out ones.
"""
from avprep.splits import SplitConfig, list_videos

GRID_SETS = {"grid_val": ("validation", 0, 5), "grid_val2": ("validation", 2, 5),
             "grid_test": ("test", 0, 5), "grid_test_full": ("test", 0, 1)}
DATASET_SETS = {"lrw_val": ("validation", 0, 10), "lrw_val2": ("validation", 5, 10),
                "lrw_test": ("test", 0, 10), "lrw_test_full": ("test", 0, 1)}
VALIDATION_SET_SIZE = 20
SET_NAMES = tuple(GRID_SETS) + tuple(DATASET_SETS) + ("heldout",)


def grid_sets(entries):
    """{set name: [video path]} of GRID_SETS from avprep.splits VideoEntry's of one GRID
    speaker."""
    by_split = {}
    for entry in sorted(entries, key=lambda e: e.video_id):
        by_split.setdefault(entry.split, []).append(entry.path)
    return {name: by_split.get(split, [])[first::step]
            for name, (split, first, step) in GRID_SETS.items()}


def manifest_paths(manifest):
    """{manifest path ("source/relative path"): file path} of a dataset's videos, listed again
    as build_dataset.py listed them (avprep.splits.list_videos on the manifest's input_dir,
    relative to the working directory as it was given). FileNotFoundError for an input folder
    that is not there, ValueError when a video of the manifest is no longer in it."""
    build = manifest["build"]
    entries = list_videos(build["input_dir"], SplitConfig(**build["split"]))
    paths = {entry.relpath: entry.path for entry in entries}
    gone = [record["path"] for record in manifest["files"] if record["path"] not in paths]
    if gone:
        raise ValueError(f"{len(gone)} of its videos are not in its input folders any more "
                         f"(first: {gone[0]})")
    return paths


def dataset_sets(manifest, paths, lrw_source="lrw_ar"):
    """{set name: [video path]} of DATASET_SETS and "heldout" from a speaker-split dataset's
    manifest; `paths` maps its file paths to files (manifest_paths). Only videos that gave
    windows ("ok") count."""
    held_out = sorted((record["path"], record["split"], record.get("source", ""))
                      for record in manifest["files"] if record.get("status") == "ok"
                      and record.get("split") in ("validation", "test"))
    sets = {}
    for name, (split, first, step) in DATASET_SETS.items():
        chosen = [path for path, s, source in held_out if s == split and source == lrw_source]
        chosen = chosen[first::step]
        if split == "validation":
            chosen = chosen[:VALIDATION_SET_SIZE]
        sets[name] = [paths[path] for path in chosen]
    sets["heldout"] = [paths[path] for path, _, source in held_out if source != lrw_source]
    return sets
