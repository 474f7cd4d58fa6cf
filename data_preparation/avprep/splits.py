"""Which videos a dataset is made of, and their deterministic train/validation/test split.

Layouts:
  flat  any folder of videos, searched recursively; no speaker is known, so each video is
        its own group.
  lrw   Lip Reading in the Wild: WORD/{train,val,test}/*.mp4; the folder gives the split
        (val -> validation).
  grid  the GRID corpus: either one speaker's folder holding video/ and align/ (like
        ../shared/data/grid_s1) or a folder of speaker folders sN/ (each with video/ and
        align/, or with the videos directly and alignments in sN/align/, align/sN/ or
        alignments/sN/). Word timings come from <id>.align (units of 1/25000 s). With
        several speakers the split is by speaker; with one, by video.

Several sources: `input_dir` may name several folders separated by commas, and `layout`
one layout for all or one per folder ("flat,flat,grid"). Each folder is listed under its own
layout; its name (the folder's base name) is the video's `source`, and with several sources
ids and relative paths are prefixed by it ("lrw_ar/video/00139"), so they never collide.

Split by speaker (`split_by="speaker"`): the split is not fixed when listing but after the
videos are processed, from each video's speaker (a layout's label, else a face group; see
avprep.speakers), so that every speaker is in exactly one split (`assign_speaker_splits`).

Splitting by file (flat and grid): the groups (speakers, or videos) are ordered by the SHA-256 of
their name (relative path for a video) and cut by the fractions, with counts rounded by
largest remainder; so no video is in two splits, the split does not depend on file system
order or on a random state, and the same input gives the same split on every machine.
Adding videos to a folder can move others (the cut is by rank), which keeps small
datasets at exactly the requested proportions.
"""
import collections
import dataclasses
import hashlib
import os
from pathlib import Path
from typing import Optional

import numpy as np

from avprep.records import SPLITS

LAYOUTS = ("flat", "lrw", "grid")
SPLIT_BY = ("file", "speaker")
VIDEO_EXTENSIONS = (".mp4", ".mpg", ".mpeg", ".avi", ".mov", ".mkv", ".webm", ".m4v",
                    ".flv", ".wmv")
LRW_SPLITS = {"train": "train", "val": "validation", "test": "test"}
GRID_UNITS_PER_SECOND = 25000.0


@dataclasses.dataclass(frozen=True)
class SplitConfig:
    """layout: one of LAYOUTS, or a comma-separated list of them (one per input folder);
    fractions of groups per split; split_by: "file" (each layout's own rule, see module
    doc) or "speaker" (every speaker in one split, decided after processing)."""
    layout: str = "flat"
    train_fraction: float = 0.8
    validation_fraction: float = 0.1
    test_fraction: float = 0.1
    split_by: str = "file"

    def __post_init__(self):
        for layout in self.layout.split(","):
            if layout not in LAYOUTS:
                raise ValueError(f"layout must be one of {LAYOUTS}, got {layout!r}")
        if self.split_by not in SPLIT_BY:
            raise ValueError(f"split_by must be one of {SPLIT_BY}, got {self.split_by!r}")
        fractions = self.fractions
        if min(fractions) < 0 or abs(sum(fractions) - 1.0) > 1e-6:
            raise ValueError(f"split fractions must be >= 0 and sum to 1, got {fractions}")

    @property
    def fractions(self):
        """(train, validation, test) fractions."""
        return (self.train_fraction, self.validation_fraction, self.test_fraction)

    def to_dict(self):
        """The settings as a JSON-ready dict."""
        return dataclasses.asdict(self)


@dataclasses.dataclass(frozen=True)
class VideoEntry:
    """One input video: absolute path, relative path (posix), id (relative path without
    extension), split, speaker (a layout's label, None when unknown), word alignment path
    (or None), source (the name of the input folder it comes from)."""
    path: str
    relpath: str
    video_id: str
    split: str
    speaker: Optional[str] = None
    align_path: Optional[str] = None
    source: str = ""


def stable_fraction(name):
    """A number in [0, 1) fixed by `name` (SHA-256), independent of the platform."""
    digest = hashlib.sha256(name.encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") / 2.0 ** 64


def split_counts(count, fractions):
    """Group counts per split summing to `count`, by largest remainder (ties to train)."""
    exact = [count * f for f in fractions]
    counts = [int(x) for x in exact]
    by_remainder = sorted(range(len(fractions)), key=lambda i: (-(exact[i] - counts[i]), i))
    for i in by_remainder[:count - sum(counts)]:
        counts[i] += 1
    return counts


def assign_splits(names, fractions):
    """dict name -> split for group names, cut by hash rank (see module doc)."""
    ordered = sorted(set(names), key=lambda name: (stable_fraction(name), name))
    assignment, begin = {}, 0
    for split, count in zip(SPLITS, split_counts(len(ordered), fractions)):
        for name in ordered[begin:begin + count]:
            assignment[name] = split
        begin += count
    return assignment


def assign_weighted_splits(weights, fractions):
    """dict name -> split for a dict name -> weight (e.g. videos per speaker): names in hash
    rank order, each going to the split its weight's midpoint falls in on the cumulative
    scale, so the splits get about the requested share of the weight even when groups
    differ in size (a speaker with 200 clips against one with 2)."""
    ordered = sorted(weights, key=lambda name: (stable_fraction(name), name))
    total = float(sum(weights.values())) or 1.0
    bounds = np.cumsum(fractions)
    assignment, done = {}, 0.0
    for name in ordered:
        middle = (done + weights[name] / 2.0) / total
        assignment[name] = SPLITS[min(int(np.searchsorted(bounds, middle, side="right")),
                                      len(SPLITS) - 1)]
        done += weights[name]
    return assignment


def read_align(path):
    """GRID word timings: list of (start_seconds, end_seconds, word)."""
    spans = []
    with open(path) as handle:
        for line in handle:
            parts = line.split()
            if len(parts) == 3:
                spans.append((int(parts[0]) / GRID_UNITS_PER_SECOND,
                              int(parts[1]) / GRID_UNITS_PER_SECOND, parts[2]))
    return spans


def _is_video(path):
    return path.is_file() and path.suffix.lower() in VIDEO_EXTENSIONS


def videos_in(folder):
    """The video files directly in `folder` (not below it), sorted; ValueError when there are
    none."""
    videos = sorted(p for p in Path(folder).iterdir() if _is_video(p))
    if not videos:
        raise ValueError(f"no video in {folder} (extensions: {' '.join(VIDEO_EXTENSIONS)})")
    return videos


def _videos_under(folder):
    """Video files below `folder`, recursively, sorted."""
    return sorted(p for p in Path(folder).rglob("*") if _is_video(p))


def _relative(path, root):
    return Path(path).relative_to(root).as_posix()


def _video_id(relpath):
    return os.path.splitext(relpath)[0]


def _flat_entries(root, config):
    videos = _videos_under(root)
    relpaths = [_relative(v, root) for v in videos]
    splits = assign_splits(relpaths, config.fractions)
    return [VideoEntry(str(v), r, _video_id(r), splits[r]) for v, r in zip(videos, relpaths)]


def _lrw_entries(root):
    entries = []
    for video in _videos_under(root):
        relpath = _relative(video, root)
        folder = video.parent.name
        if folder in LRW_SPLITS:
            entries.append(VideoEntry(str(video), relpath, _video_id(relpath),
                                      LRW_SPLITS[folder], speaker=None))
    return entries


def _grid_speaker_folders(root):
    """dict speaker name -> (folder holding its videos, candidate align folders)."""
    if (root / "video").is_dir():
        return {root.name: (root / "video", [root / "align"])}
    speakers = {}
    for folder in sorted(p for p in root.iterdir() if p.is_dir()):
        if folder.name in ("align", "alignments"):
            continue
        videos = folder / "video" if (folder / "video").is_dir() else folder
        speakers[folder.name] = (videos, [folder / "align", root / "align" / folder.name,
                                          root / "alignments" / folder.name])
    return speakers


def _find_align(video, align_folders):
    for folder in align_folders:
        candidate = folder / (video.stem + ".align")
        if candidate.is_file():
            return str(candidate)
    return None


def _grid_entries(root, config):
    speakers = _grid_speaker_folders(root)
    found = []
    for speaker, (video_folder, align_folders) in speakers.items():
        for video in _videos_under(video_folder):
            if any(part in ("align", "alignments") for part in video.relative_to(root).parts):
                continue
            found.append((speaker, video, _find_align(video, align_folders)))
    by_speaker = len({speaker for speaker, _, _ in found}) > 1
    names = [speaker if by_speaker else _relative(video, root) for speaker, video, _ in found]
    splits = assign_splits(names, config.fractions)
    entries = []
    for (speaker, video, align), name in zip(found, names):
        relpath = _relative(video, root)
        entries.append(VideoEntry(str(video), relpath, _video_id(relpath), splits[name],
                                  speaker=speaker, align_path=align))
    return entries


def sources(input_dir, layout):
    """[(source name, folder, layout)] of a comma-separated `input_dir` and `layout` (one
    layout for all folders or one each); ValueError when the counts disagree or two folders
    share a base name."""
    folders = [folder for folder in str(input_dir).split(",") if folder]
    layouts = layout.split(",")
    if len(layouts) == 1:
        layouts = layouts * len(folders)
    if len(layouts) != len(folders):
        raise ValueError(f"{len(folders)} input folders but {len(layouts)} layouts")
    names = [Path(folder).resolve().name for folder in folders]
    if len(set(names)) != len(names):
        raise ValueError(f"input folders must have distinct names, got {names}")
    return list(zip(names, folders, layouts))


def _source_entries(name, folder, layout, config):
    root = Path(folder).resolve()
    if not root.is_dir():
        raise FileNotFoundError(f"input directory {folder} does not exist")
    if layout == "lrw":
        entries = _lrw_entries(root)
    elif layout == "grid":
        entries = _grid_entries(root, config)
    else:
        entries = _flat_entries(root, config)
    return [dataclasses.replace(entry, source=name) for entry in entries]


def _prefixed(entry):
    return dataclasses.replace(entry, relpath=f"{entry.source}/{entry.relpath}",
                               video_id=f"{entry.source}/{entry.video_id}")


def list_videos(input_dir, config=SplitConfig()):
    """Every video of `input_dir` (one folder, or several separated by commas) under
    `config.layout`, with its split and source; sorted by relpath.

    Raises FileNotFoundError when an input folder is not a directory, ValueError when the
    folders and layouts do not match (see `sources`).
    """
    found = sources(input_dir, config.layout)
    entries = [entry for name, folder, layout in found
               for entry in _source_entries(name, folder, layout, config)]
    if len(found) > 1:
        entries = [_prefixed(entry) for entry in entries]
    return sorted(entries, key=lambda entry: entry.relpath)


def _unused_reason(path, layout):
    """Why the file `path` of a folder under `layout` gives no video entry."""
    if not _is_video(path):
        return f"not a video ({path.suffix.lower() or 'no extension'})"
    if layout == "lrw":
        return "video outside a train/, val/ or test/ folder (lrw layout)"
    return f"video where the {layout} layout does not look (e.g. an alignment folder)"


def ignored_files(input_dir, config, entries, exclude_dir=None):
    """[{"path", "reason"}] of the files of the input folders that no entry uses, so a user
    sees that e.g. speech.wav beside the videos was not read: files that are not videos
    (by extension, VIDEO_EXTENSIONS) except the word alignments the entries read, and
    videos the layout leaves out.

    entries: list_videos(input_dir, config); exclude_dir: a folder not to list (the output
    directory, when it lies inside an input folder). Hidden files (.DS_Store) are not
    listed. Paths are relative posix paths as in VideoEntry.relpath, sorted.
    """
    used = {entry.path for entry in entries} | {entry.align_path for entry in entries}
    excluded = Path(exclude_dir).resolve() if exclude_dir else None
    found = sources(input_dir, config.layout)
    ignored = []
    for name, folder, layout in found:
        root = Path(folder).resolve()
        for path in root.rglob("*"):
            relpath = _relative(path, root)
            if (not path.is_file() or str(path) in used
                    or any(part.startswith(".") for part in Path(relpath).parts)
                    or (excluded is not None and excluded in path.parents)):
                continue
            prefix = f"{name}/" if len(found) > 1 else ""
            ignored.append({"path": prefix + relpath, "reason": _unused_reason(path, layout)})
    return sorted(ignored, key=lambda item: item["path"])


def assign_speaker_splits(entries, speakers, fractions):
    """Entries with their split set by speaker: `speakers` maps video_id -> speaker id, and
    the speakers are cut by hash rank weighted by their number of videos
    (assign_weighted_splits), so each speaker is in exactly one split."""
    weights = collections.Counter(speakers[entry.video_id] for entry in entries)
    by_speaker = assign_weighted_splits(weights, fractions)
    return [dataclasses.replace(entry, split=by_speaker[speakers[entry.video_id]])
            for entry in entries]


def select_shard(entries, index, count):
    """The entries machine `index` of `count` processes: every count-th of the sorted list."""
    if not 0 <= index < count:
        raise ValueError(f"shard index {index} is outside 0..{count - 1}")
    return list(entries[index::count])
