"""Finds the offset between a video's audio and its lips with a trained model (a sync check).

    python code/sync.py --video=clip.mp4                      # the shipped model
    python code/sync.py --video=clip.mp4 --plot=offsets.png --json=sync.json --segment_seconds=10
    python code/sync.py --video=FOLDER --csv=sync.csv --json=sync.json

Prepares the video as the model's training data was prepared (30 fps, 16 kHz, the dlib mouth
crop with the model's crop rule, its speech features), scores every 0.3 s window (one
starting at every frame; --window_step=3 for training's 0.1 s hop) against the audio shifted
by every offset within +/- --max_offset frames (near the clip's ends, the offsets whose audio
stays inside the clip; avmatch.sync.offset_curve allows for that), and prints
the best offset (+ = audio late) in frames and ms, the confidence (median minus minimum of
the window-averaged distance over the offsets, as SyncNet), the evidence (how many standard
errors the windows' advantage at the best offset lies above zero), the windows used and a
verdict (avmatch.sync explains each). A folder checks every video in it, prints one table and
LSE-D / LSE-C over its videos; a video that cannot be checked there is listed with the
reason. For copies named by data_preparation/shift_audio.py (<stem>_audio+100ms.mp4) it also
counts the known shifts recovered within one frame (avmatch.sync.ShiftRecovery). --json
writes everything, --csv the table, --plot the distance against the offset; --checkpoint
picks another epoch of a training run than its best; --audio compares the lips with another
file's audio.
"""
import csv
import dataclasses
import io
import math
import os
import sys
import time
from pathlib import Path

from absl import flags

from avprep.cli import UsageError, reported, run

REPO = Path(__file__).resolve().parents[1]
DEFAULT_MODEL = REPO / "code" / "models" / "multispeaker-v6"
MAX_OFFSET_LIMIT = 90  # 3 s each way: beyond that a clip is rarely long enough to search
WINDOW_STEP_LIMIT = 9  # one window length: a longer step skips video

FLAGS = flags.FLAGS
flags.DEFINE_string("video", None, "A video file, or a folder whose videos are all checked.")
flags.DEFINE_string("checkpoint_dir", str(DEFAULT_MODEL), "Trained model: a shipped model "
                    "folder or train.py's --train_dir (its best epoch when it kept one).")
flags.DEFINE_string("checkpoint", None, "A checkpoint of --checkpoint_dir to use instead of "
                    "its best (a path prefix such as runs/multi/ckpt-1052), to compare epochs.")
flags.DEFINE_string("audio", None, "Compare the lips of --video (one file) with the audio of "
                    "this file (a video or audio file, cut to the video's length) instead of "
                    "the video's own: a dubbed track, or audio that should not match.")
flags.DEFINE_integer("max_offset", 15, "Offsets searched each way, in video frames at 30 fps "
                     "(15 = 0.5 s).")
flags.DEFINE_integer("window_step", 1, "Frames between the starts of the windows scored (3 = "
                     "training's 0.1 s hop: a third of the work, but fewer windows to average "
                     "on short clips).")
flags.DEFINE_float("segment_seconds", 0.0, "Also report the offset of each segment of this "
                   "many seconds, so drift in a long video shows (0 = the whole video only).")
flags.DEFINE_string("json", None, "Write every result (curves, segments, LSE-D/LSE-C) here.")
flags.DEFINE_string("csv", None, "Write the table (one row per video) here.")
flags.DEFINE_string("plot", None, "PNG of the mean distance against the offset (one line per "
                    "video).")

CSV_FIELDS = ("video", "status", "best_offset_frames", "best_offset_ms", "min_distance",
              "confidence", "evidence", "num_windows", "verdict", "seconds", "reason")


@dataclasses.dataclass(frozen=True)
class SyncCheckConfig:
    """Everything this script reads from its flags."""
    video: str
    audio: str
    checkpoint_dir: str
    checkpoint: str
    max_offset: int
    window_step: int
    segment_seconds: float
    json: str
    csv: str
    plot: str


def config_from_flags():
    """SyncCheckConfig from the parsed flags; UsageError for values that cannot work."""
    if not FLAGS.video:
        raise UsageError("--video is required (a video file or a folder of videos)")
    if not os.path.exists(FLAGS.video):
        raise UsageError(f"--video={FLAGS.video} does not exist")
    if FLAGS.audio and not os.path.isfile(FLAGS.audio):
        raise UsageError(f"--audio={FLAGS.audio} is not a file")
    if FLAGS.audio and os.path.isdir(FLAGS.video):
        raise UsageError("--audio takes one --video file, not a folder")
    if not 1 <= FLAGS.max_offset <= MAX_OFFSET_LIMIT:
        raise UsageError(f"--max_offset={FLAGS.max_offset} must be in 1..{MAX_OFFSET_LIMIT}")
    if not 1 <= FLAGS.window_step <= WINDOW_STEP_LIMIT:
        raise UsageError(f"--window_step={FLAGS.window_step} must be in 1..{WINDOW_STEP_LIMIT}")
    if not math.isfinite(FLAGS.segment_seconds) or FLAGS.segment_seconds < 0:
        raise UsageError(f"--segment_seconds={FLAGS.segment_seconds} must be a number >= 0")
    for name in ("json", "csv", "plot"):
        if getattr(FLAGS, name):
            check_output_file(name, getattr(FLAGS, name))
    return SyncCheckConfig(video=FLAGS.video, audio=FLAGS.audio or "",
                           checkpoint_dir=FLAGS.checkpoint_dir,
                           checkpoint=FLAGS.checkpoint or "",
                           max_offset=FLAGS.max_offset, window_step=FLAGS.window_step,
                           segment_seconds=FLAGS.segment_seconds,
                           json=FLAGS.json or "", csv=FLAGS.csv or "", plot=FLAGS.plot or "")


def check_output_file(flag, path):
    """UsageError when --flag=path cannot be written as a file: it names a directory, or an
    existing file stands where a folder on its way must go. Checked with the flags, as the
    writes come only after every video is checked."""
    if os.path.isdir(path) or path.endswith(os.sep):
        raise UsageError(f"--{flag}={path} is a directory; name a file")
    from avprep.atomic import nearest_existing

    parent = nearest_existing(os.path.dirname(os.path.abspath(path)))  # the rest is made
    if not os.path.isdir(parent):
        raise UsageError(f"--{flag}={path} cannot be written: {parent} is not a directory")


def video_paths(path):
    """[path] for a file; the sorted videos of a folder (UsageError when it has none)."""
    from avprep.splits import videos_in

    path = Path(path)
    if not path.is_dir():
        return [path]
    with reported(ValueError):
        return videos_in(path)


@dataclasses.dataclass(frozen=True)
class Model:
    """A restored model (its compiled towers: avmatch.sync.embedding_functions) and the
    preparation it was trained with."""
    embedders: object
    checkpoint: str
    tracker: object
    speech: object
    thresholds: object


def load_model(checkpoint_dir, checkpoint=""):
    """The towers of `checkpoint` (a path prefix; by default checkpoint_dir's to score), the
    mouth tracker with its crop rule, its speech feature settings (config.json "features")
    and its verdict thresholds (avmatch.sync.read_thresholds); UsageError when any is missing
    or unusable."""
    from avmatch import checkpoints
    from avmatch.config import read_saved_run
    from avmatch.instance import MatchingInstance
    from avmatch.sync import embedding_functions, read_thresholds
    from avprep.mouth_tracking import MissingModelError, MouthTracker
    from avprep.speech_features import SpeechFeatureConfig

    try:
        path = checkpoint or checkpoints.checkpoint_to_score(checkpoint_dir)
    except FileNotFoundError as error:
        raise UsageError(f"{error} (--checkpoint_dir: a shipped model folder or a train.py "
                         "--train_dir)") from None
    with reported(ValueError, TypeError, prefix=f"{checkpoint_dir}: "):
        saved = read_saved_run(checkpoint_dir)
        features = saved.features or {}
        speech = SpeechFeatureConfig(**(features.get("speech") or {}))
        thresholds = read_thresholds(checkpoint_dir)
    border_fraction = (features.get("crop") or {}).get("border_fraction")
    speech_shape = speech.cube_shape
    instance = MatchingInstance.create(saved.train.model_speech_name,
                                       saved.train.model_mouth_name, speech_shape)
    with reported(checkpoints.CheckpointError, MissingModelError):
        checkpoints.restore_towers(path, instance)
        tracker = MouthTracker(border_fraction=border_fraction)
    return Model(embedding_functions(instance, speech_shape), path, tracker, speech,
                 thresholds)


def check_video(path, model, config):
    """The sync check of one video: a dict with its SyncResult ("result"), its segments
    (a list of (start s, end s, SyncResult)), its duration and the seconds it took.
    ValueError when the video cannot be checked (no audio, no face, too short, ...)."""
    from avmatch import sync
    from avprep.sync_input import prepare_video

    began = time.monotonic()
    inputs = prepare_video(path, config.max_offset, model.tracker, model.speech,
                           window_step=config.window_step, audio_path=config.audio or None)
    distances = sync.offset_distances(model.embedders, inputs)
    result = sync.summarize(distances, inputs.offsets, inputs.fps, model.thresholds,
                            config.window_step)
    segments = []
    if config.segment_seconds:
        segments = sync.segment_results(distances, inputs.starts, inputs.offsets, inputs.fps,
                                        config.segment_seconds, model.thresholds,
                                        config.window_step)
    return {"result": result, "segments": segments, "duration": inputs.duration,
            "seconds": time.monotonic() - began}


def describe(result):
    """One line: best offset, confidence, evidence, minimum distance, windows, verdict."""
    return (f"best offset {result.best_offset_frames:+d} frames ({result.best_offset_ms:+.0f} ms;"
            f" + = audio late), confidence {result.confidence:.2f}, evidence "
            f"{result.evidence:.2f}, minimum distance "
            f"{result.min_distance:.2f}, {result.num_windows} windows ({result.complete_windows} "
            f"at every offset): {result.verdict}")


def table_lines(rows):
    """The folder table: one line per video (checked or not)."""
    lines = [f"{'video':<40} {'frames':>6} {'ms':>6} {'min dist':>9} {'conf':>7} {'evid':>6} "
             f"{'windows':>7}  verdict"]
    for row in rows:
        name = Path(row["video"]).name[:40]
        if "result" not in row:
            lines.append(f"{name:<40} not checked: {row['reason']}")
            continue
        result = row["result"]
        lines.append(f"{name:<40} {result.best_offset_frames:>+6d} {result.best_offset_ms:>+6.0f} "
                     f"{result.min_distance:>9.2f} {result.confidence:>7.2f} "
                     f"{result.evidence:>6.2f} {result.num_windows:>7d}  {result.verdict}")
    return lines


def csv_text(rows):
    """The table as CSV text (CSV_FIELDS)."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, CSV_FIELDS, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        record = {"video": row["video"], "status": "ok" if "result" in row else "skipped",
                  "reason": row.get("reason", "")}
        if "result" in row:
            summary = row["result"].to_dict()
            record.update({key: summary[key] for key in CSV_FIELDS if key in summary},
                          seconds=round(row["seconds"], 2))
        writer.writerow(record)
    return buffer.getvalue()


def shift_recovery_of(rows):
    """(avmatch.sync.ShiftRecovery of the checked rows that are shifted copies, named by
    data_preparation/shift_audio.py, or None when there is none; how many shifted copies
    could not be checked)."""
    from avmatch.sync import shift_recovery
    from avprep.shift import parse_shifted_name

    found, not_checked = {}, 0
    for row in rows:
        parsed = parse_shifted_name(row["video"])
        if parsed is None:
            continue
        if "result" not in row:
            not_checked += 1
            continue
        found[parsed] = row["result"].best_offset_frames
        fps = row["result"].fps
    return (shift_recovery(found, fps) if found else None), not_checked


def recovery_line(recovery, not_checked):
    """One line: how many known shifts the check placed within the tolerance."""
    line = (f"shifted copies: {recovery.absolute}/{recovery.copies} within +/-"
            f"{recovery.tolerance} frame of the shift, {recovery.relative}/"
            f"{recovery.relative_copies} relative to the unshifted copy, "
            f"{recovery.originals_in_sync}/{recovery.originals} unshifted within +/-"
            f"{recovery.tolerance} frame")
    return line + (f" ({not_checked} more not checked, listed above)" if not_checked else "")


def json_payload(rows, model, config, lse, recovery=(None, 0)):
    """Everything as a JSON-ready dict."""
    videos = []
    for row in rows:
        entry = {"video": row["video"], "status": "ok" if "result" in row else "skipped"}
        if "result" in row:
            entry.update(row["result"].to_dict(), duration=round(row["duration"], 3),
                         seconds=round(row["seconds"], 3),
                         segments=[dict(result.to_dict(), start_seconds=start, end_seconds=end)
                                   for start, end, result in row["segments"]])
        else:
            entry["reason"] = row["reason"]
        videos.append(entry)
    return {"checkpoint": model.checkpoint, "audio": config.audio or None,
            "max_offset_frames": config.max_offset,
            "window_step_frames": config.window_step,
            "thresholds": dataclasses.asdict(model.thresholds),
            "sign": "positive offset = audio late", "segment_seconds": config.segment_seconds,
            "videos": videos, "lse": lse,
            "shift_recovery": dataclasses.asdict(recovery[0]) if recovery[0] else None,
            "shift_copies_not_checked": recovery[1]}


def write_outputs(rows, model, config, lse, recovery=(None, 0)):
    """--json, --csv and --plot, each written atomically; UsageError when one cannot be
    (the flags were checked, but the disk may be full or a folder replaced meanwhile)."""
    from avmatch.sync import save_offset_plot
    from avprep.atomic import atomic_write
    from avprep.records import write_json_atomic

    checked = [(Path(row["video"]).name, row["result"]) for row in rows if "result" in row]
    with reported(OSError, prefix="cannot write the outputs: "):
        if config.json:
            write_json_atomic(config.json, json_payload(rows, model, config, lse, recovery))
        if config.csv:
            text = csv_text(rows)
            atomic_write(config.csv, lambda handle: handle.write(text), binary=False)
        if config.plot and checked:
            save_offset_plot(config.plot, checked)


def main(argv):
    if len(argv) > 1:
        raise UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
    config = config_from_flags()  # before TensorFlow loads: a bad flag fails at once
    paths = video_paths(config.video)
    folder = os.path.isdir(config.video)
    model = load_model(config.checkpoint_dir, config.checkpoint)
    from avmatch.sync import lse_metrics

    rows = []
    for path in paths:
        try:
            rows.append(dict(check_video(path, model, config), video=str(path)))
        except ValueError as error:
            if not folder:
                raise UsageError(str(error)) from None
            rows.append({"video": str(path), "reason": str(error).removeprefix(f"{path}: ")})
    checked = [row for row in rows if "result" in row]
    if not checked:
        for row in rows:  # named, so no video of the folder is dropped in silence
            print(f"{row['video']}: {row['reason']}", file=sys.stderr)
        raise UsageError(f"none of the {len(rows)} videos in {config.video} could be checked")
    lse = lse_metrics([row["result"] for row in checked])
    recovery = shift_recovery_of(rows) if folder else (None, 0)
    if folder:
        print("\n".join(table_lines(rows)))
        print(f"LSE-D={lse['lse_d']:.3f} LSE-C={lse['lse_c']:.3f} over {lse['videos']} videos "
              "(this project's network: not on SyncNet's scale)")
        if recovery[0]:
            print(recovery_line(*recovery))
    else:
        print(f"{paths[0]}: {describe(checked[0]['result'])}")
        for start, end, result in checked[0]["segments"]:
            print(f"  {start:7.1f}-{end:7.1f} s: {describe(result)}")
    duration = sum(row["duration"] for row in checked)
    seconds = sum(row["seconds"] for row in checked)
    print(f"checked {duration:.1f} s of video in {seconds:.1f} s "
          f"({duration / max(seconds, 1e-9):.2f} video seconds per second)")
    write_outputs(rows, model, config, lse, recovery)


if __name__ == "__main__":
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    run(main)
