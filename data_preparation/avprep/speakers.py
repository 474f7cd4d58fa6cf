"""Speaker identities of a dataset's videos, and contact sheets to check them by eye.

A video's speaker id is its layout's label where the layout has one (GRID speaker folders:
"<source>:<label>"), else the face group of its descriptor ("face-NNN", groups found by
clustering the descriptors of all unlabelled videos of all sources together, so one person
in two corpora is one speaker), else its own id ("file:<video_id>", a video with no face
descriptor, which also gives no window).
"""
import collections
import math

import cv2
import numpy as np

from avprep.faces import CHIP_SIZE, group_by_face

_LABEL_HEIGHT = 14


def speaker_ids(entries, descriptors):
    """dict video_id -> speaker id (see module doc).

    entries: avprep.splits.VideoEntry list; descriptors: dict video_id -> float (128,) face
    descriptor, for the videos that have one.
    """
    unlabelled = [e.video_id for e in entries if e.speaker is None and e.video_id in descriptors]
    groups = group_by_face([descriptors[v] for v in unlabelled])
    face_ids = {video_id: f"face-{group:03d}" for video_id, group in zip(unlabelled, groups)}
    ids = {}
    for entry in entries:
        if entry.speaker is not None:
            ids[entry.video_id] = f"{entry.source}:{entry.speaker}"
        else:
            ids[entry.video_id] = face_ids.get(entry.video_id, f"file:{entry.video_id}")
    return ids


def speaker_counts(files):
    """{"per_source": {source: speakers}, "per_split": {split: speakers}} of manifest file
    entries (dicts with source, split, speaker, windows), counting speakers with windows."""
    per_source, per_split = collections.defaultdict(set), collections.defaultdict(set)
    for item in files:
        if item.get("windows", 0) > 0:
            per_source[item["source"]].add(item["speaker"])
            per_split[item["split"]].add(item["speaker"])
    return {"per_source": {k: len(v) for k, v in sorted(per_source.items())},
            "per_split": {k: len(v) for k, v in sorted(per_split.items())}}


def contact_sheet(chips, labels, columns=10):
    """uint8 (H, W, 3) RGB image: the (80, 80, 3) face chips in a grid, each above its
    label (shortened to fit)."""
    columns = max(1, min(columns, len(chips)))
    rows = max(1, math.ceil(len(chips) / columns))
    cell_height = CHIP_SIZE + _LABEL_HEIGHT
    sheet = np.full((rows * cell_height, columns * CHIP_SIZE, 3), 255, np.uint8)
    for index, (chip, label) in enumerate(zip(chips, labels)):
        top, left = (index // columns) * cell_height, (index % columns) * CHIP_SIZE
        sheet[top:top + CHIP_SIZE, left:left + CHIP_SIZE] = chip
        cv2.putText(sheet, label[-13:], (left + 1, top + CHIP_SIZE + 10),
                    cv2.FONT_HERSHEY_PLAIN, 0.7, (0, 0, 0), 1, cv2.LINE_AA)
    return sheet
