"""Which clips make the sync check's measurement material (evaluation/SYNC_EXPERIMENTS.md).

Named sets of source videos, each fixed by a rule on sorted lists, so a later session makes
the same material again:
  grid_val, grid_val2   GRID s1 validation clips (by id), every 5th from the 1st / the 3rd
  grid_val_rest         the GRID s1 validation clips in neither of those
  grid_test             GRID s1 test clips, every 5th;  grid_test_full: all of them
  lrw_val, lrw_val2     the dataset's validation clips from `lrw_source` (by path), every
                        10th from the 1st / the 6th, 20 at most
  lrw_val_rest          the validation clips from `lrw_source` in neither of those
  lrw_test              its test clips from `lrw_source`, every 10th;  lrw_test_full: all
  lrw_train             its *training* clips from `lrw_source`, every 16th (clips the model
                        learnt from: how well the check can do on this material at all)
  heldout               its validation and test clips from every other source
GRID's split is its own (avprep.splits, by video); the others are the speaker split written
in the dataset's manifest, so the validation and test speakers (all but lrw_train) are the
model's held-out ones.
"""
from avprep.splits import SplitConfig, list_videos

GRID_SETS = {"grid_val": ("validation", 0, 5), "grid_val2": ("validation", 2, 5),
             "grid_test": ("test", 0, 5), "grid_test_full": ("test", 0, 1)}
DATASET_SETS = {"lrw_val": ("validation", 0, 10), "lrw_val2": ("validation", 5, 10),
                "lrw_test": ("test", 0, 10), "lrw_test_full": ("test", 0, 1),
                "lrw_train": ("train", 0, 16)}
VALIDATION_SET_SIZE = 20
REST_SETS = {"grid_val_rest": ("grid_val", "grid_val2"), "lrw_val_rest": ("lrw_val", "lrw_val2")}
SET_NAMES = (tuple(GRID_SETS) + tuple(DATASET_SETS) + ("heldout",)
             + tuple(sorted(REST_SETS)))


def _with_rest(sets, split_clips, rest_name):
    """sets plus sets[rest_name]: split_clips (in order) in none of REST_SETS[rest_name]."""
    used = {path for name in REST_SETS[rest_name] for path in sets[name]}
    return {**sets, rest_name: [path for path in split_clips if path not in used]}


def grid_sets(entries):
    """{set name: [video path]} of GRID_SETS from avprep.splits VideoEntry's of one GRID
    speaker."""
    by_split = {}
    for entry in sorted(entries, key=lambda e: e.video_id):
        by_split.setdefault(entry.split, []).append(entry.path)
    sets = {name: by_split.get(split, [])[first::step]
            for name, (split, first, step) in GRID_SETS.items()}
    return _with_rest(sets, by_split.get("validation", []), "grid_val_rest")


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
    usable = sorted((record["path"], record["split"], record.get("source", ""))
                    for record in manifest["files"] if record.get("status") == "ok")
    by_split = {}
    for path, split, source in usable:
        if source == lrw_source:
            by_split.setdefault(split, []).append(paths[path])
    sets = {}
    for name, (split, first, step) in DATASET_SETS.items():
        chosen = by_split.get(split, [])[first::step]
        sets[name] = chosen[:VALIDATION_SET_SIZE] if split == "validation" else chosen
    sets["heldout"] = [paths[path] for path, split, source in usable
                       if source != lrw_source and split in ("validation", "test")]
    return _with_rest(sets, by_split.get("validation", []), "lrw_val_rest")
