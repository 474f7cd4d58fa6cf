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
import os

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


def manifest_paths(manifest, base_dir="."):
    """{manifest path ("source/relative path"): file path} of a dataset's processed videos,
    their source folders taken from the manifest's build input_dir (relative to base_dir, as
    it was given to build_dataset.py); ValueError naming a source folder that is not there."""
    folders = {}
    for folder in manifest["build"]["input_dir"].split(","):
        folder = os.path.join(base_dir, folder)
        if not os.path.isdir(folder):
            raise ValueError(f"the dataset's input folder {folder} is not there (run from "
                             "where build_dataset.py was run, or give that folder)")
        folders[os.path.basename(os.path.normpath(folder))] = folder
    paths = {}
    for record in manifest["files"]:
        source, _, relative = record["path"].partition("/")
        if len(folders) == 1 and source not in folders:  # one source: paths are unprefixed
            source, relative = next(iter(folders)), record["path"]
        paths[record["path"]] = os.path.join(folders[source], relative)
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
