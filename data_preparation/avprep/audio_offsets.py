"""Sync-corrected clips: a clip's audio moved by the offset a sync check found in it.

Broadcast clips are not always in sync in their files (evaluation/SYNC_EXPERIMENTS.md,
thirteenth and fourteenth rounds). A clip whose audio is late by k frames teaches the network
a genuine pair that is k frames off; moving its audio back by k frames before the windows are
cut makes its genuine pairs what they should be. The offsets come from `code/sync.py --csv`
(column best_offset_frames, positive = audio late).
"""
import csv
import dataclasses
import os


def offsets_from_sync_csv(path, min_frames=1):
    """{real path of a video: its offset in frames (positive = audio late)} of the rows of a
    `sync.py --csv` file that were checked (status ok) with |offset| >= min_frames.

    A row's video path is read as sync.py wrote it: relative paths from the folder sync.py
    ran in, taken here from the current folder. Raises ValueError for a file that is not
    such a table (missing columns, a non-integer offset) and OSError when it cannot be read.
    """
    if min_frames < 1:
        raise ValueError(f"min_frames must be >= 1, got {min_frames}")
    try:
        return _offsets_of_rows(path, min_frames)
    except (UnicodeDecodeError, csv.Error) as error:
        raise ValueError(f"{path} is not a sync.py --csv table ({error})") from None


def _offsets_of_rows(path, min_frames):
    offsets = {}
    with open(path, newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        missing = {"video", "status", "best_offset_frames"} - set(reader.fieldnames or ())
        if missing:
            raise ValueError(f"{path} is not a sync.py --csv table: no column "
                             f"{', '.join(sorted(missing))}")
        for line, row in enumerate(reader, start=2):
            if row["status"] != "ok":
                continue
            try:
                frames = int(row["best_offset_frames"])
            except (TypeError, ValueError):  # TypeError: a short row has no such field
                raise ValueError(f"{path} line {line}: best_offset_frames "
                                 f"{row['best_offset_frames']!r} is not a whole number") from None
            if abs(frames) >= min_frames:
                offsets[os.path.realpath(row["video"])] = frames
    return offsets


def unknown_videos(offsets, paths):
    """The videos of `offsets` (real paths) that are not among `paths` (any paths), sorted."""
    known = {os.path.realpath(path) for path in paths}
    return sorted(set(offsets) - known)


def audio_cut_samples(offset_frames, fps, sample_rate):
    """Samples cut from the start of the audio to undo `offset_frames` (0 unless it is late)."""
    return int(round(offset_frames * sample_rate / fps)) if offset_frames > 0 else 0


def video_cut_frames(offset_frames):
    """Frames cut from the start of the video to undo `offset_frames` (0 unless audio early)."""
    return max(0, -offset_frames)


def realigned(decoded, offset_frames):
    """A video_io.DecodedVideo with its audio moved earlier by `offset_frames` frames
    (positive = the audio was late), so that a lip movement and its sound share a time.

    Nothing is padded: the start of the later stream is cut (audio late: its first
    audio_cut_samples; audio early: the video's first video_cut_frames), so the result is
    shorter by the offset and frame 0 and sample 0 still share a time.
    """
    if offset_frames == 0:
        return decoded
    cut = audio_cut_samples(offset_frames, decoded.fps, decoded.sample_rate)
    frames = decoded.frames[video_cut_frames(offset_frames):]
    return dataclasses.replace(decoded, frames=frames, audio=decoded.audio[cut:],
                               duration=len(frames) / decoded.fps)


def trimmed_track(track, frames):
    """A mouth_tracking.MouthTrack without its first `frames` frames: the track of the
    video realigned() returns, tracked on the whole video (so the face, and with it the
    speaker grouping, does not depend on the offset)."""
    if frames == 0:
        return track
    return dataclasses.replace(track, crops=track.crops[frames:], active=track.active[frames:],
                               boxes=track.boxes[frames:])
