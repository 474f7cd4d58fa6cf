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

Splitting (flat and grid): the groups (speakers, or videos) are ordered by the SHA-256 of
their name (relative path for a video) and cut by the fractions, with counts rounded by
largest remainder; so no video is in two splits, the split does not depend on file system
order or on a random state, and the same input gives the same split on every machine.
Adding videos to a folder can move others (the cut is by rank), which keeps small
datasets at exactly the requested proportions.
"""
import dataclasses
import hashlib
import os
from pathlib import Path
from typing import Optional

from avmatch.records import SPLITS

LAYOUTS = ("flat", "lrw", "grid")
VIDEO_EXTENSIONS = (".mp4", ".mpg", ".mpeg", ".avi", ".mov", ".mkv", ".webm", ".m4v",
                    ".flv", ".wmv")
LRW_SPLITS = {"train": "train", "val": "validation", "test": "test"}
GRID_UNITS_PER_SECOND = 25000.0


@dataclasses.dataclass(frozen=True)
class SplitConfig:
    """layout: one of LAYOUTS; fractions of groups per split (flat and grid layouts)."""
    layout: str = "flat"
    train_fraction: float = 0.8
    validation_fraction: float = 0.1
    test_fraction: float = 0.1

    def __post_init__(self):
        if self.layout not in LAYOUTS:
            raise ValueError(f"layout must be one of {LAYOUTS}, got {self.layout!r}")
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
    extension), split, speaker (None when unknown), word alignment path (or None)."""
    path: str
    relpath: str
    video_id: str
    split: str
    speaker: Optional[str] = None
    align_path: Optional[str] = None


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


def list_videos(input_dir, config=SplitConfig()):
    """Every video of `input_dir` under `config.layout`, with its split; sorted by relpath.

    Raises FileNotFoundError when input_dir is not a directory.
    """
    root = Path(input_dir).resolve()
    if not root.is_dir():
        raise FileNotFoundError(f"input directory {input_dir} does not exist")
    if config.layout == "lrw":
        entries = _lrw_entries(root)
    elif config.layout == "grid":
        entries = _grid_entries(root, config)
    else:
        entries = _flat_entries(root, config)
    return sorted(entries, key=lambda entry: entry.relpath)


def select_shard(entries, index, count):
    """The entries machine `index` of `count` processes: every count-th of the sorted list."""
    if not 0 <= index < count:
        raise ValueError(f"shard index {index} is outside 0..{count - 1}")
    return list(entries[index::count])
