"""Throughput of the project against a straightforward Conv3D baseline, in one run.

    python evaluation/benchmark.py                       # full run, a few minutes
    python evaluation/benchmark.py --repeats=2 --skip_prep --json=bench.json

Measures, on this machine and the same seeded random inputs:
  training  pairs/s of one step on --batch_size pairs with online pair selection: the
            project's TrainStep (fast towers; train.py's default without XLA, and with XLA)
            and the baseline (Conv3D towers, one mouth cube per pair, hard pairs gathered);
  scoring   pairs/s of the project's scorer on window batches and of the Conv3D towers
            on --score_batch_size independent pairs;
            Both in float32 and bfloat16 (train.py --precision). train.py's and test.py's
            default, --precision=auto, is bfloat16 where the hardware computes it natively
            (a CPU with avx512_bf16 or amx_bf16, or a GPU of compute capability 8.0 or
            newer) and float32 elsewhere: the CPU flags and auto's choice are printed, and
            the ratios at that choice on a line of their own;
  data preparation  frames/s of the fast mouth tracker and of the reference's per-frame
            detection on the shared videos, and video seconds per second of the whole
            preparation of a video (decode, speech features, tracking, windows) and of the
            sync check (code/sync.py with the shipped model) on the first --pipeline_videos
            of them (skipped with a note when they are absent).
Each figure is the median of --repeats timed calls after --warmup untimed ones (tracing
and compilation). Prints a table with the ratios; --json writes the same figures.
"""
import os
import platform
from pathlib import Path

from absl import flags

from avprep.cli import UsageError, reported, run

REPO = Path(__file__).resolve().parents[1]
DEFAULT_VIDEOS = REPO.parent / "shared" / "data" / "videos"

FLAGS = flags.FLAGS
flags.DEFINE_integer("repeats", 5, "Timed repetitions of each measurement (the median is kept).")
flags.DEFINE_integer("warmup", 2, "Untimed calls before the timed ones (tracing, compilation).")
flags.DEFINE_integer("batch_size", 32, "Training pairs per step (two per window, so even).")
flags.DEFINE_integer("score_batch_size", 128, "Scoring pairs per call (even).")
flags.DEFINE_string("json", None, "Write the figures to this JSON file.")
flags.DEFINE_boolean("skip_prep", False, "Skip the data-preparation (mouth tracking) figures.")
flags.DEFINE_string("videos_dir", str(DEFAULT_VIDEOS), "Videos for the data-preparation figures.")
flags.DEFINE_integer("prep_max_frames", 60, "Frames tracked per video (30 fps) for the "
                     "data-preparation figures.")
flags.DEFINE_integer("pipeline_videos", 3, "Videos timed end to end (preparation, sync "
                     "check).")
flags.DEFINE_integer("threads", 0, "TensorFlow intra- and inter-op threads; 0 = TensorFlow's "
                     "default.")
flags.DEFINE_integer("seed", 0, "Seed of the random inputs and initial weights.")


def validated_flags():
    """The flag values, checked; UsageError names the first one that cannot work."""
    for name in ("batch_size", "score_batch_size"):
        value = getattr(FLAGS, name)
        if value < 2 or value % 2:
            raise UsageError(f"--{name}={value} must be a positive even number "
                             "(each window gives a genuine and an impostor pair)")
    if FLAGS.repeats < 1:
        raise UsageError(f"--repeats={FLAGS.repeats} must be at least 1")
    if FLAGS.warmup < 0 or FLAGS.threads < 0:
        raise UsageError("--warmup and --threads must not be negative")
    if FLAGS.prep_max_frames < 1:
        raise UsageError(f"--prep_max_frames={FLAGS.prep_max_frames} must be at least 1")
    if FLAGS.pipeline_videos < 1:  # a slice [:0] or [:-1] would time fewer videos silently
        raise UsageError(f"--pipeline_videos={FLAGS.pipeline_videos} must be at least 1 "
                         "(--skip_prep leaves the data-preparation figures out)")
    return FLAGS


def set_threads(threads):
    """Sets TensorFlow's thread pools; must run before any TensorFlow op."""
    import tensorflow as tf
    if threads:
        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(threads)


def machine_description(threads):
    import tensorflow as tf

    from avmatch import precision
    flags_found = sorted(precision.cpu_flags() & {"avx512f", *precision.BF16_CPU_FLAGS})
    return {"nproc": os.cpu_count(), "cpus_usable": len(os.sched_getaffinity(0)),
            "cpu_flags": flags_found, "auto_precision": precision.resolve("auto"),
            "tensorflow": tf.__version__, "python": platform.python_version(),
            "threads": threads or "default", "load_average_start": list(os.getloadavg())}


def measure_prep(videos_dir, max_frames):
    """The tracking_benchmark figures over every video in videos_dir, or a dict with a note."""
    videos = shared_videos(videos_dir)
    if not videos:
        return {"skipped": f"no videos in {videos_dir}"}
    from avprep.mouth_tracking import MissingModelError
    from avprep.tracking_benchmark import compare_trackers
    from avprep.video_io import DecodeError
    try:
        summary = compare_trackers(videos, max_frames=max_frames)
    except (MissingModelError, DecodeError) as error:
        raise UsageError(f"data preparation: {error} (--skip_prep leaves it out)") from None
    keys = ("frames", "fps_fast", "fps_reference", "speedup", "mean_iou", "active_agreement")
    return dict({key: summary[key] for key in keys}, videos=len(videos), max_frames=max_frames)


def shared_videos(videos_dir):
    """The videos of videos_dir, sorted (an empty list when there is none)."""
    from avprep.splits import VIDEO_EXTENSIONS

    folder = Path(videos_dir)
    return sorted(p for p in folder.glob("*") if p.suffix.lower() in VIDEO_EXTENSIONS) \
        if folder.is_dir() else []


def measure_preparation(videos):
    """Video seconds per second of build_dataset's whole per-video work on `videos`."""
    from avprep import build, splits
    from avprep.mouth_tracking import MouthTracker

    tracker = MouthTracker(border_fraction=build.BuildConfig.mouth_border_fraction)
    config = build.BuildConfig(input_dir=str(videos[0].parent), output_dir="")
    seconds = duration = 0.0
    for path in videos:
        entry = splits.VideoEntry(str(path), path.name, path.stem, "test")
        windows, status = build.process_video(entry, config, tracker)
        if windows is None:
            raise UsageError(f"data preparation: {path}: {status['reason']}")
        seconds += status["seconds"]
        duration += status["frames"] / config.window.fps
    return {"videos": len(videos), "video_seconds": duration, "seconds": seconds,
            "video_seconds_per_second": duration / seconds}


def last_line(done):
    """What a failed child process said: its last "error: " line on stderr (TensorFlow may
    log after it), else its last stderr line, else its exit status (killed, say, by a
    signal, it writes nothing: returncode -N)."""
    lines = done.stderr.strip().splitlines()
    errors = [line for line in lines if line.startswith("error: ")]
    if errors or lines:
        return (errors or lines)[-1]
    return f"exited with status {done.returncode} and wrote no message"


def measure_sync(videos):
    """Video seconds per second of code/sync.py (the shipped model) on `videos`, from the
    per-video times of its --json (model loading and start-up excluded)."""
    import json
    import subprocess
    import sys
    import tempfile

    with tempfile.TemporaryDirectory() as folder:
        for path in videos:
            os.symlink(path.resolve(), os.path.join(folder, path.name))
        report = os.path.join(folder, "sync.json")
        done = subprocess.run([sys.executable, str(REPO / "code" / "sync.py"),
                               f"--video={folder}", f"--json={report}"],
                              capture_output=True, text=True)
        if done.returncode != 0:
            raise UsageError(f"sync check: {last_line(done)}")
        with open(report) as handle:
            checked = [v for v in json.load(handle)["videos"] if v["status"] == "ok"]
    duration = sum(video["duration"] for video in checked)
    seconds = sum(video["seconds"] for video in checked)
    return {"videos": len(checked), "video_seconds": duration, "seconds": seconds,
            "video_seconds_per_second": duration / seconds if seconds else 0.0}


def default_precision_line(results):
    """The ratios at the precision train.py and test.py use by default here (auto), against
    the targets of 4x (training) and 3x (scoring)."""
    precision = results["machine"]["auto_precision"]
    key = "ratio" if precision == "float32" else f"ratio_{precision}"
    return (f"default precision (auto: {precision}): training "
            f"{results['training'][key]:.2f}x (target 4x), scoring "
            f"{results['scoring'][key]:.2f}x (target 3x) the baseline")


def report_lines(results):
    """The printed table, as a list of lines."""
    machine = results["machine"]
    cpu_flags = " ".join(machine["cpu_flags"]) or "none of avx512f/avx512_bf16/amx_bf16"
    lines = [f"machine: {machine['nproc']} cores ({machine['cpus_usable']} usable), "
             f"CPU flags {cpu_flags} (--precision=auto: {machine['auto_precision']}), "
             f"TensorFlow {machine['tensorflow']}, threads {machine['threads']}, load average "
             f"{' '.join(f'{x:.2f}' for x in machine['load_average_start'])} at start, "
             f"{' '.join(f'{x:.2f}' for x in machine['load_average_end'])} at end",
             "settings: {batch_size} training pairs per step, {score_batch_size} scoring pairs "
             "per call, median of {repeats} repetitions after {warmup} warm-up calls, seed "
             "{seed}".format(**results["settings"])]
    for name in ("training", "scoring"):
        figures = results[name]
        lines.append(f"{name:<9} project {figures['project']['pairs_per_second']:8.1f} pairs/s   "
                     f"baseline {figures['baseline']['pairs_per_second']:8.1f} pairs/s   "
                     f"ratio {figures['ratio']:.2f}x  (float32)")
        for key in sorted(k for k in figures if k.startswith("project_") and k != "project_xla"):
            precision = key[len("project_"):]
            lines.append(f"{name:<9} project {figures[key]['pairs_per_second']:8.1f} pairs/s   "
                         f"baseline {figures['baseline']['pairs_per_second']:8.1f} pairs/s   "
                         f"ratio {figures['ratio_' + precision]:.2f}x  ({precision})")
    training, batch = results["training"], results["settings"]["batch_size"]
    lines.append(default_precision_line(results))
    lines.append(f"training  project with XLA "
                 f"{training['project_xla']['pairs_per_second']:.1f} pairs/s "
                 f"(ratio {training['ratio_xla']:.2f}x); hard pairs kept per step: project "
                 f"{training['project']['kept_pairs_mean']:.1f}, baseline "
                 f"{training['baseline']['kept_pairs_mean']:.1f} of {batch}")
    lines.append(f"scoring   largest distance difference project vs baseline "
                 f"{results['scoring']['max_abs_difference']:.2e}")
    prep = results["data_preparation"]
    if "skipped" in prep:
        lines.append(f"data preparation skipped: {prep['skipped']}")
    else:
        lines.append(f"data prep fast {prep['fps_fast']:8.1f} frames/s   reference "
                     f"{prep['fps_reference']:8.1f} frames/s   ratio {prep['speedup']:.2f}x   "
                     f"mean IoU {prep['mean_iou']:.3f} ({prep['frames']} frames, "
                     f"{prep['videos']} videos)")
    for name, label in (("preparation", "data prep end to end"), ("sync", "sync check")):
        figures = results.get(name) or {}
        if "video_seconds_per_second" in figures:
            lines.append(f"{label:<20} {figures['video_seconds_per_second']:6.2f} video seconds"
                         f"/s ({figures['video_seconds']:.1f} s of video, {figures['videos']} "
                         "videos)")
        elif figures:
            lines.append(f"{label} skipped: {figures['skipped']}")
    return lines


def main(argv):
    if len(argv) > 1:
        raise UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
    values = validated_flags()
    set_threads(values.threads)
    from avmatch import benchmarking
    from avprep.records import write_json_atomic

    config = benchmarking.BenchConfig(batch_size=values.batch_size,
                                      score_batch_size=values.score_batch_size,
                                      repeats=values.repeats, warmup=values.warmup,
                                      seed=values.seed)
    results = {"machine": machine_description(values.threads),
               "settings": {"batch_size": config.batch_size,
                            "score_batch_size": config.score_batch_size,
                            "repeats": config.repeats, "warmup": config.warmup,
                            "seed": config.seed}}
    results["training"] = benchmarking.measure_training(config)
    results["scoring"] = benchmarking.measure_scoring(config)
    results["data_preparation"] = ({"skipped": "--skip_prep"} if values.skip_prep
                                   else measure_prep(values.videos_dir, values.prep_max_frames))
    videos = shared_videos(values.videos_dir)[:values.pipeline_videos]
    if values.skip_prep or not videos:
        reason = "--skip_prep" if values.skip_prep else f"no videos in {values.videos_dir}"
        results["preparation"] = results["sync"] = {"skipped": reason}
    else:
        results["preparation"] = measure_preparation(videos)
        results["sync"] = measure_sync(videos)
    results["machine"]["load_average_end"] = list(os.getloadavg())
    print("\n".join(report_lines(results)))
    if values.json:
        with reported(OSError, prefix=f"--json={values.json}: "):
            write_json_atomic(values.json, results)
    return 0


if __name__ == "__main__":
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    run(main)
