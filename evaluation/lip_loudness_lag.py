"""How far the sound lags the lips in a set of clips, without a trained network.

    python evaluation/lip_loudness_lag.py --video=../shared/data/grid_s1/video
    python code/sync.py --video=CLIPS --max_offset=7 --csv=sync.csv
    python evaluation/lip_loudness_lag.py --video=CLIPS --group_by=offset \\
        --offsets_csv=sync.csv --signals=signals.npz --json=lag.json
    python evaluation/lip_loudness_lag.py --video=CLIPS --group_by=audio_rate

For every clip, the inner-lip opening (dlib landmarks) and the speech-band loudness at 30 fps
(avprep.lip_loudness); their correlation at each lag (sound after lips = +), averaged over
the clips of a group, peaks at that group's lag. --group_by=offset groups the clips by the
offset the network found (--offsets_csv: a sync.py --csv of the same clips), which tells
whether the network's per-clip offsets are also in the picture and sound themselves;
--group_by=audio_rate by the sample rate of the file's audio (a trace of its source, and
free of the network's errors); all (the default) makes one group. Prints, per group, the
clips, the peak correlation, the peak lag in frames and its 95% bootstrap interval.
--signals keeps each clip's signals, so a rerun (or an interrupted run) computes only the
clips not there yet. A video that cannot be decoded is named on one line and counted, and
the run ends with exit code 1.
"""
import csv
import dataclasses
import json
import sys
import zipfile
from pathlib import Path

from absl import flags

from avprep.cli import UsageError, reported, run

FLAGS = flags.FLAGS
flags.DEFINE_string("video", None, "A folder of videos (or one video).")
flags.DEFINE_enum("group_by", "all", ["all", "offset", "audio_rate"], "How the clips are "
                  "grouped: one group, by the offset in --offsets_csv, or by audio sample rate.")
flags.DEFINE_string("offsets_csv", None, "sync.py --csv of these videos (--group_by=offset).")
flags.DEFINE_integer("group_limit", 3, "Offsets beyond +/- this many frames are pooled into "
                     "the outermost groups.")
flags.DEFINE_integer("max_lag", 10, "Lags searched each way, in frames at 30 fps.")
flags.DEFINE_integer("resamples", 1000, "Bootstrap draws of the clips for each interval.")
flags.DEFINE_integer("seed", 0, "Seed of the bootstrap draws.")
flags.DEFINE_string("signals", None, "An .npz file keeping each clip's signals by file name "
                    "(reused and extended).")
flags.DEFINE_string("json", None, "Write the table and every group's mean curve here.")


@dataclasses.dataclass(frozen=True)
class LagConfig:
    """The clips, how to group them, the lags searched and the outputs."""
    videos: tuple
    group_by: str
    offsets_csv: str
    group_limit: int
    max_lag: int
    resamples: int
    seed: int
    signals: str
    json: str


def config_from_flags(values):
    """LagConfig from parsed flags; UsageError for values that cannot work."""
    if not values.video:
        raise UsageError("--video is required")
    path = Path(values.video)
    if not path.exists():
        raise UsageError(f"--video={path} does not exist")
    if values.max_lag < 1 or values.resamples < 1 or values.group_limit < 0:
        raise UsageError("--max_lag and --resamples must be at least 1, --group_limit at least 0")
    if (values.group_by == "offset") != bool(values.offsets_csv):
        raise UsageError("--offsets_csv goes with --group_by=offset, and only with it")
    if values.offsets_csv and not Path(values.offsets_csv).is_file():
        raise UsageError(f"--offsets_csv={values.offsets_csv} is not a file")
    from avprep.atomic import check_folder_path
    from avprep.splits import videos_in

    for name in ("signals", "json"):  # checked now: the writes come after the long work
        value = getattr(values, name)
        if not value:
            continue
        if Path(value).is_dir():
            raise UsageError(f"--{name}={value} is a folder")
        with reported(NotADirectoryError):
            check_folder_path(Path(value).absolute().parent, f"the folder of --{name}")
    with reported(ValueError):
        videos = (path,) if path.is_file() else tuple(videos_in(path))
    return LagConfig(videos=videos, group_by=values.group_by,
                     offsets_csv=values.offsets_csv or "",
                     group_limit=values.group_limit, max_lag=values.max_lag,
                     resamples=values.resamples, seed=values.seed,
                     signals=values.signals or "", json=values.json or "")


def offsets_by_name(csv_path):
    """{file name: best offset in frames} of the rows sync.py could check."""
    with reported(OSError, KeyError, ValueError, prefix=f"--offsets_csv={csv_path}: "):
        with open(csv_path, newline="") as handle:
            return {Path(row["video"]).name: int(row["best_offset_frames"])
                    for row in csv.DictReader(handle) if row["status"] == "ok"}


def group_name(offset, limit):
    """'+2', '0', '<= -3', '>= +3': the group of a clip sync.py placed at `offset` frames."""
    if offset <= -limit and limit > 0:
        return f"<= {-limit:d}"
    if offset >= limit and limit > 0:
        return f">= +{limit:d}"
    return f"{offset:+d}" if offset else "0"


def groups_of(names, config):
    """{file name: group} of the clips `names` by config.group_by; a clip sync.py could not
    check (absent from --offsets_csv) has no group."""
    if config.group_by == "offset":
        offsets = offsets_by_name(config.offsets_csv)
        return {name: group_name(offsets[name], config.group_limit)
                for name in names if name in offsets}
    if config.group_by == "audio_rate":
        paths = {video.name: video for video in config.videos}
        rates = {name: audio_rate(paths[name]) for name in names}
        return {name: f"{rate / 1000:g}k" for name, rate in rates.items() if rate}
    return {name: "all" for name in names}


def audio_rate(path):
    """The sample rate (Hz) of the first audio stream of the video at `path`; None, with the
    file named on stderr, where it cannot be read (damaged since its signals were kept)."""
    import av

    try:
        with av.open(str(path)) as container:
            return container.streams.audio[0].rate
    except (av.error.FFmpegError, IndexError) as error:
        print(f"{path}: no audio rate ({error})", file=sys.stderr)
        return None


def load_signals(path):
    """{file name: (opening, loudness)} kept in an .npz by an earlier run, or {}."""
    import numpy as np

    if not path or not Path(path).exists():
        return {}
    with reported(OSError, ValueError, KeyError, zipfile.BadZipFile,
                  prefix=f"--signals={path} cannot be read: "):
        with np.load(path) as kept:
            return {name[:-len(".opening")]: (kept[name], kept[name[:-len("opening")] + "loud"])
                    for name in kept.files if name.endswith(".opening")}


def save_signals(path, signals):
    """Writes {file name: (opening, loudness)} to `path` atomically."""
    import numpy as np
    from avprep.atomic import atomic_write

    arrays = {}
    for name, (opening, loud) in signals.items():
        arrays[f"{name}.opening"], arrays[f"{name}.loud"] = opening, loud
    atomic_write(path, lambda handle: np.savez(handle, **arrays))


def clip_signals_of(config):
    """({file name: (opening, loudness)}, [videos that could not be read])."""
    from avprep.lip_loudness import clip_signals
    from avprep.mouth_tracking import MissingModelError, MouthTracker
    from avprep.video_io import DecodeError

    signals = load_signals(config.signals)
    tracker, failed, since_saved = None, [], 0
    for video in config.videos:
        if video.name in signals:
            continue
        if tracker is None:
            with reported(MissingModelError):
                tracker = MouthTracker()
        try:
            signals[video.name] = clip_signals(video, tracker)
        except DecodeError as error:
            print(f"{video}: {error}", file=sys.stderr)
            failed.append(video)
            continue
        since_saved += 1
        if config.signals and since_saved == 100:
            save_signals(config.signals, signals)
            since_saved = 0
    if config.signals and since_saved:
        save_signals(config.signals, signals)
    return signals, failed


def group_rows(curves, groups, lags, config):
    """[dict] one row per group: clips, peak correlation, peak lag, its interval, mean curve."""
    import numpy as np
    from avprep.lip_loudness import pooled_peak

    rows = []
    for group in sorted(set(groups.values()), key=_group_order):
        members = np.array([curves[name] for name in curves if groups.get(name) == group])
        mean = np.nanmean(members, axis=0)
        peak, low, high = pooled_peak(members, lags, config.resamples, config.seed)
        rows.append(dict(group=group, clips=len(members), peak_correlation=float(np.nanmax(mean)),
                         peak_lag_frames=peak, low=low, high=high,
                         mean_curve=[round(float(value), 5) for value in mean]))
    return rows


def _group_order(group):
    """Groups in numeric order: '<= -3' ... '0' ... '>= +3', or '44.1k' before '48k'."""
    number = group.lstrip("<>= ").rstrip("k")
    return float(number) if number not in ("", "all") else 0.0


def main(argv):
    if len(argv) > 1:
        raise UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
    config = config_from_flags(FLAGS)
    import numpy as np
    from avprep.lip_loudness import lag_correlations

    signals, failed = clip_signals_of(config)
    names = [video.name for video in config.videos if video.name in signals]
    lags = np.arange(-config.max_lag, config.max_lag + 1)
    curves = {name: lag_correlations(*signals[name], lags) for name in names}
    too_short = sorted(name for name, curve in curves.items() if np.all(np.isnan(curve)))
    curves = {name: curve for name, curve in curves.items() if name not in too_short}
    groups = groups_of(curves, config)
    if not groups:
        raise UsageError(f"no clip of {len(config.videos)} could be measured (each was too "
                         f"short, without a face, unreadable or without a group)")
    rows = group_rows(curves, groups, lags, config)
    print(f"{'group':>8} {'clips':>6} {'peak r':>7} {'lag':>6}  95% interval (frames, + = sound "
          f"after lips)")
    for row in rows:
        print(f"{row['group']:>8} {row['clips']:6d} {row['peak_correlation']:7.3f} "
              f"{row['peak_lag_frames']:+6.2f}  [{row['low']:+.2f}, {row['high']:+.2f}]")
    unplaced = len(curves) - len(groups)
    print(f"{len(groups)} clips measured; {len(too_short)} too short or without a face; "
          f"{unplaced} without a group; {len(failed)} of {len(config.videos)} "
          f"videos could not be read")
    if config.json:
        from avprep.atomic import atomic_write

        payload = dict(lags=lags.tolist(), groups=rows, too_short=too_short,
                       not_read=[str(video) for video in failed])
        atomic_write(config.json, lambda handle: handle.write(json.dumps(payload, indent=1)),
                     binary=False)
    if failed:
        sys.exit(1)


if __name__ == "__main__":
    run(main)
