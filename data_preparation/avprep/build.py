"""Building a dataset from a folder of raw videos: the orchestration.

For every video (in worker processes when num_workers > 1): decode at 30 fps with 16 kHz
mono audio, track the mouth (dlib), compute the clip's speech features, cut the windows
and their genuine/impostor speech; workers return numpy arrays only (they never import
TensorFlow) and the main process stores each video's windows as a part file with a done
marker (avprep.dataset_writer). A re-run skips finished videos, so an interrupted or
killed build resumes where it stopped. When every video is done, the parts are gathered
into the sharded TFRecord files and manifest.json.

Several machines: give each the same input and output settings and --shard_index=i
--num_shards=n; machine i processes every n-th video (of the sorted list) into
<output_dir>/parts and does not gather. Then put all parts/ files in one output directory
(they have distinct names; on a shared file system they already are) and run once more
without the shard flags: it processes anything still missing and gathers.

A bad input (missing, empty, corrupt, no video or audio stream, no face, too short for a
window, ...) is skipped with its reason on the console and in the manifest; one bad file
never stops the run.
"""
import dataclasses
import multiprocessing
import os
import sys
import time
from typing import Dict, Optional

import numpy as np

from avprep import audio_offsets, dataset_writer, pairs, speakers, splits
from avprep.faces import FaceDescriber
from avprep.mouth_tracking import MissingModelError, MouthTracker
from avprep.speech_features import SpeechFeatureConfig, speech_features
from avprep.video_io import DecodeError, decode_video

# a border of one mouth width on each side (a crop three mouths wide) already shows the
# whole lower face; wider crops leave the frame on close-ups and show little of the mouth
MAX_BORDER_FRACTION = 1.0


@dataclasses.dataclass(frozen=True)
class BuildConfig:
    """Everything a build needs.

    input_dir, output_dir: folders. split: splits.SplitConfig. speech: SpeechFeatureConfig.
    window: pairs.WindowConfig. num_workers: processes decoding/tracking videos.
    shard_index, num_shards: this machine's share of the videos (see module doc).
    num_output_shards: TFRecord files per split. predictor_path: dlib 68-landmark model
    (None: the one of face_recognition_models). mouth_border_fraction: the mouth crop's
    border as a share of the first mouth's width, 0..MAX_BORDER_FRACTION, so crops frame the
    mouth alike at every resolution (None: the reference's fixed 30 px, which shows more chin
    and cheek on small faces than on large ones). audio_offsets: {real path of a video:
    frames its audio is late (negative: early)}; those videos are sync-corrected before
    their windows are cut (avprep.audio_offsets.realigned), the others used as they are.
    """
    input_dir: str
    output_dir: str
    split: splits.SplitConfig = splits.SplitConfig()
    speech: SpeechFeatureConfig = SpeechFeatureConfig()
    window: pairs.WindowConfig = pairs.WindowConfig()
    num_workers: int = 1
    shard_index: int = 0
    num_shards: int = 1
    num_output_shards: int = 4
    predictor_path: Optional[str] = None
    mouth_border_fraction: Optional[float] = 0.4
    audio_offsets: Dict[str, int] = dataclasses.field(default_factory=dict)

    def __post_init__(self):
        if self.num_workers < 1 or self.num_output_shards < 1 or self.num_shards < 1:
            raise ValueError("num_workers, num_output_shards and num_shards must be >= 1")
        if not 0 <= self.shard_index < self.num_shards:
            raise ValueError(f"shard_index must be in 0..{self.num_shards - 1}")
        if abs(self.speech.frame_seconds - self.window.frame_seconds) > 1e-9:
            raise ValueError("speech and window configs disagree on the frame step")
        fraction = self.mouth_border_fraction
        # not (0 <= nan): a nan border would make every crop fail, so every video skipped
        if fraction is not None and not 0 <= fraction <= MAX_BORDER_FRACTION:
            raise ValueError(f"mouth_border_fraction must be within [0, {MAX_BORDER_FRACTION:g}]"
                             f", got {fraction}")

    def part_settings(self):
        """The settings the part files depend on (a JSON-ready dict)."""
        return {"speech": self.speech.to_dict(), "window": self.window.to_dict(),
                "crop": {"border_fraction": self.mouth_border_fraction}}

    def audio_offset(self, entry):
        """Frames the audio of `entry` (a splits.VideoEntry) is moved earlier; 0 for most."""
        return self.audio_offsets.get(os.path.realpath(entry.path), 0)

    def tracker(self):
        """A MouthTracker with this build's landmark model and crop border."""
        return MouthTracker(self.predictor_path, border_fraction=self.mouth_border_fraction)


def speech_shape(config):
    """(T, F, C) of one speech cube."""
    return (config.window.speech_frames, config.speech.num_features, config.speech.num_channels)


def _silent_frames(decoded, entry, num_speech_frames, config, audio_start=0.0):
    """bool (T,) silent speech frames, or None when silent windows are kept.

    audio_start: seconds of the file's audio before decoded.audio's first sample (cut by
    audio_offsets.realigned), so the word timings of an .align file still fit."""
    if not config.window.drop_silent:
        return None
    mask = None
    if entry.align_path:
        spans = [(start - audio_start, end - audio_start, word)
                 for start, end, word in splits.read_align(entry.align_path)]
        mask = pairs.speech_mask_from_spans(spans, num_speech_frames, config.window.frame_seconds)
    silent = pairs.silent_speech_frames(decoded.audio, config.window, decoded.sample_rate, mask)
    return silent[:num_speech_frames]


class SkipVideo(Exception):
    """A video that gives no windows, with the reason as message."""


def _no_window_reason(num_frames, track, windows):
    if not track.active.any():
        return "no face found in any frame"
    dropped = ", ".join(f"{k} {v}" for k, v in windows.dropped.items() if v)
    return (f"no usable window (mouth found in {int(track.active.sum())} of {num_frames} "
            f"frames; dropped: {dropped or 'none'})")


def _analyse(entry, config, tracker, describer, offset):
    """(number of frames, speech features (T, F, C), silent frames or None, MouthTrack,
    (face descriptor, face chip) or (None, None)) of the video sync-corrected by `offset`
    frames (config.audio_offset).

    Only this function holds the decoded frames, so they are freed when it returns.
    """
    # one sample rate for decoding and for the features: the feature config's
    decoded = decode_video(entry.path, fps=config.window.fps,
                           sample_rate=config.speech.sample_rate, need_audio=True)
    aligned = audio_offsets.realigned(decoded, offset)
    audio_seconds = aligned.audio.size / aligned.sample_rate
    needed = config.window.window_seconds + config.window.impostor_shift
    if min(aligned.duration, audio_seconds) < needed - 1e-6:
        raise SkipVideo(f"too short: {aligned.duration:.2f} s of video, {audio_seconds:.2f} s "
                        f"of audio; a window and its impostor shift need {needed:.2f} s")
    features = speech_features(aligned.audio, config.speech)
    cut = audio_offsets.audio_cut_samples(offset, decoded.fps, decoded.sample_rate)
    silent = _silent_frames(aligned, entry, len(features), config, cut / decoded.sample_rate)
    track = tracker.track(decoded.frames)
    face = describer.describe(decoded.frames, track.active) if describer else (None, None)
    track = audio_offsets.trimmed_track(track, audio_offsets.video_cut_frames(offset))
    return len(aligned.frames), features, silent, track, face


def process_video(entry, config, tracker, describer=None):
    """Windows of one video and its status.

    Args:
      entry: splits.VideoEntry; config: BuildConfig; tracker: a MouthTracker;
      describer: a faces.FaceDescriber, or None for no face descriptor.
    Returns:
      (pairs.Windows or None, status dict: video_id, status "ok"|"skipped", reason,
      windows, frames, active_frames, dropped, seconds, and when a face was described
      face_descriptor (128 floats) and face_chip (uint8 (80, 80, 3), not JSON: taken out
      by dataset_writer.write_part)).
    """
    began = time.monotonic()
    offset = config.audio_offset(entry)
    status = _skipped_status(entry, offset, reason="")
    try:
        num_frames, features, silent, track, face = _analyse(entry, config, tracker, describer,
                                                             offset)
    except (DecodeError, SkipVideo) as error:
        return None, _finish(status, began, reason=str(error))
    if face[0] is not None:
        status.update(face_descriptor=[round(float(v), 6) for v in face[0]],
                      face_chip=face[1])
    windows = pairs.make_windows(track.crops, track.active, features, config.window,
                                 entry.video_id, silent)
    if offset < 0:
        # the video's first frames were cut (audio_offsets.realigned): count from the file's
        windows = dataclasses.replace(windows, start_frame=windows.start_frame - offset)
    status.update(frames=num_frames, active_frames=int(np.count_nonzero(track.active)),
                  dropped=windows.dropped)
    if len(windows) == 0:
        return None, _finish(status, began, reason=_no_window_reason(num_frames, track, windows))
    return windows, _finish(status, began, status="ok", windows=len(windows))


def process_video_safely(entry, config, tracker, describer=None):
    """process_video, with any failure but a missing landmark model turned into a skip:
    one bad file must never stop a build of thousands, whatever library fails on it."""
    try:
        return process_video(entry, config, tracker, describer)
    except MissingModelError:
        raise
    except Exception as error:  # noqa: BLE001 - reported per file, see docstring
        # retry: a later run tries the video again (the failure may not be the file's)
        return None, _skipped_status(entry, config.audio_offset(entry), retry=True,
                                     reason=f"failed: {type(error).__name__}: {error}")


def _skipped_status(entry, offset, **fields):
    """The status of a video that gave no windows (yet), with its audio offset (frames) if
    it has one."""
    status = {"video_id": entry.video_id, "status": "skipped", "windows": 0, **fields}
    if offset:
        status["audio_offset_frames"] = offset
    return status


def _finish(record, began, **updates):
    record.update(updates)
    record["seconds"] = round(time.monotonic() - began, 3)
    return record


class Progress:
    """A one-line progress display on stderr: videos done/total, windows, skipped files."""

    def __init__(self, total, stream=None):
        self.total, self.done, self.windows, self.skipped = total, 0, 0, 0
        self.stream = stream if stream is not None else sys.stderr
        # a log file gets one line per video instead of carriage returns
        self.redraw = "\r" if self.stream.isatty() else ""
        self.end = "\033[K" if self.stream.isatty() else "\n"
        self.began = time.monotonic()

    def line(self):
        """The current progress text."""
        return (f"videos {self.done}/{self.total}  windows {self.windows}  "
                f"skipped {self.skipped}  {time.monotonic() - self.began:.0f} s")

    def update(self, status):
        """Counts one finished video (its status dict) and redraws the line."""
        self.done += 1
        self.windows += status.get("windows", 0)
        if status["status"] != "ok":
            self.skipped += 1
            self.stream.write(f"{self.redraw}skipped {status['video_id']}: "
                              f"{status['reason']}{self.end if self.redraw else ''}\n")
        self.stream.write(self.redraw + self.line() + self.end)
        self.stream.flush()

    def close(self):
        """Ends the progress line."""
        self.stream.write("\n" if self.redraw else "")
        self.stream.flush()


_worker_state = {}


def _init_worker(config):
    _worker_state["config"] = config
    _worker_state["tracker"] = config.tracker()
    _worker_state["describer"] = FaceDescriber(_worker_state["tracker"])


def _work(entry):
    windows, status = process_video_safely(entry, _worker_state["config"],
                                           _worker_state["tracker"],
                                           _worker_state["describer"])
    return entry, windows, status


def _results(todo, config):
    """(entry, windows, status) for every entry of `todo`, in completion order."""
    if config.num_workers == 1 or len(todo) <= 1:
        _init_worker(config)
        for entry in todo:
            yield _work(entry)
        return
    # spawn: workers start clean (no inherited TensorFlow or dlib state from the parent)
    context = multiprocessing.get_context("spawn")
    with context.Pool(min(config.num_workers, len(todo)), initializer=_init_worker,
                      initargs=(config,)) as pool:
        yield from pool.imap_unordered(_work, todo, chunksize=1)


def _settings(config):
    """The build settings stored in the manifest."""
    return {"features": config.part_settings(),
            "build": {"input_dir": config.input_dir, "split": config.split.to_dict(),
                      "num_output_shards": config.num_output_shards,
                      "predictor_path": config.predictor_path,
                      "audio_offset_videos": len(config.audio_offsets)}}


def describe_ignored(ignored, limit=5):
    """One console line about the input files the build does not use (splits.ignored_files),
    or "" when there are none."""
    if not ignored:
        return ""
    shown = ", ".join(f"{item['path']} ({item['reason']})" for item in ignored[:limit])
    more = f" and {len(ignored) - limit} more" if len(ignored) > limit else ""
    return f"ignored {len(ignored)} input files: {shown}{more} (listed in the manifest)"


def _no_video_message(config, ignored):
    others = f"; {len(ignored)} other files ignored" if ignored else ""
    return (f"no video in {config.input_dir} (looked for {' '.join(splits.VIDEO_EXTENSIONS)} "
            f"under the {config.split.layout} layout){others}")


def _done_status(config, entry):
    """The status of a finished part of `entry` made with its current audio offset, or None
    (not done, or done with another offset: then it is made again)."""
    status = dataset_writer.read_status(config.output_dir, entry.video_id)
    if status is None or status.get("audio_offset_frames", 0) != config.audio_offset(entry):
        return None
    return status


def _check_audio_offsets(config, entries):
    unknown = audio_offsets.unknown_videos(config.audio_offsets, [e.path for e in entries])
    if unknown:
        raise ValueError(f"{len(unknown)} videos with an audio offset are not among the input "
                         f"videos, e.g. {unknown[0]}")


def build_dataset(config, log=print, progress_stream=None):
    """Processes the videos of config.input_dir and, unless this is one machine's share
    (num_shards > 1) or no video gave a window, gathers the dataset (so a directory with a
    manifest.json always holds records).

    Returns a summary dict: videos, processed (this run), reused (done before), ok,
    skipped, windows (of this machine's videos), gathered (bool), manifest (or None),
    ignored (splits.ignored_files: input files that are not used).
    Raises FileNotFoundError for a missing input_dir, ValueError for an input without any
    video (before anything is written) or an output_dir built with other settings,
    MissingModelError when the landmark model is absent; ValueError for an audio offset of a
    video that is not an input.
    """
    entries = splits.list_videos(config.input_dir, config.split)
    ignored = splits.ignored_files(config.input_dir, config.split, entries, config.output_dir)
    if not entries:
        raise ValueError(_no_video_message(config, ignored))
    _check_audio_offsets(config, entries)
    if ignored:
        log(describe_ignored(ignored))
    mine = splits.select_shard(entries, config.shard_index, config.num_shards)
    dataset_writer.check_settings(config.output_dir, config.part_settings())
    statuses = {e.video_id: _done_status(config, e) for e in entries}
    todo = [e for e in mine if statuses[e.video_id] is None]
    log(f"{len(entries)} videos in {config.input_dir}; this run: {len(mine)}, "
        f"{len(mine) - len(todo)} already done")
    if todo:
        FaceDescriber(config.tracker())  # a missing model fails here, not per video
    progress = Progress(len(mine), progress_stream)
    for entry in mine:
        if statuses[entry.video_id] is not None:
            progress.update(statuses[entry.video_id])
    for entry, windows, status in _results(todo, config):
        status = dataset_writer.write_part(config.output_dir, entry.video_id, windows, status)
        statuses[entry.video_id] = status
        progress.update(status)
    progress.close()
    mine_status = [statuses[e.video_id] for e in mine]
    summary = {"videos": len(entries), "processed": len(todo),
               "reused": len(mine) - len(todo),
               "ok": sum(s["status"] == "ok" for s in mine_status),
               "skipped": sum(s["status"] != "ok" for s in mine_status),
               "windows": sum(s.get("windows", 0) for s in mine_status),
               "gathered": False, "manifest": None, "ignored": ignored}
    if config.num_shards > 1:
        log(f"shard {config.shard_index} of {config.num_shards} done; run once more without "
            f"--shard_index/--num_shards to gather")
        return summary
    if not any(statuses[e.video_id].get("windows", 0) for e in entries):
        return summary  # nothing to gather: no manifest, so no empty dataset looks finished
    descriptors = {v: np.asarray(s["face_descriptor"], np.float32)
                   for v, s in statuses.items() if s.get("face_descriptor")}
    speaker_of = speakers.speaker_ids(entries, descriptors)
    if config.split.split_by == "speaker":
        entries = splits.assign_speaker_splits(entries, speaker_of, config.split.fractions)
    summary["manifest"] = dataset_writer.gather(
        config.output_dir, entries, statuses, speech_shape(config), _settings(config),
        config.num_output_shards, config.window, speaker_of, ignored)
    summary["gathered"] = True
    return summary
