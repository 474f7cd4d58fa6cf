"""Makes the synthetic demo dataset (no download): talking-face videos of a photograph whose
mouth moves with synthesized speech, prepared by the same pipeline as real videos.

  python data_preparation/make_demo_data.py [--output_dir=DIR]

Default folder: $AVMATCH_DATA_HOME/demo-v2 or ~/.cache/avmatch/demo-v2. Nothing is redone
when the dataset (its manifest.json) already exists; an interrupted run resumes.
"""
import os

from absl import flags

from avprep.cli import UsageError, reported, run

# each clip's frames are made and prepared whole in memory: about 6 MB a second, so 3.5 GB
# per worker at this limit
MAX_SECONDS = 600.0

FLAGS = flags.FLAGS
flags.DEFINE_string("output_dir", None, "Dataset folder (default: the demo data home).")
flags.DEFINE_integer("num_videos", 24, "Number of demo videos (speakers).")
flags.DEFINE_float("seconds", 8.0, "Length of each demo video, from 1 to "
                   f"{MAX_SECONDS:g} seconds.")
flags.DEFINE_integer("num_workers", 2, "Processes preparing the videos.")


def main(argv):
    if len(argv) > 1:
        raise UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
    if FLAGS.num_videos < 1 or FLAGS.num_workers < 1:
        raise UsageError("--num_videos and --num_workers must be >= 1")
    if not 1.0 <= FLAGS.seconds <= MAX_SECONDS:  # false for nan as well
        raise UsageError(f"--seconds={FLAGS.seconds} must be a number from 1 to "
                         f"{MAX_SECONDS:g}")
    if FLAGS.output_dir and os.path.exists(FLAGS.output_dir) and not os.path.isdir(
            FLAGS.output_dir):
        raise UsageError(f"--output_dir {FLAGS.output_dir} exists and is not a directory")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    from avprep.demo_data import ensure_demo_dataset
    from avprep.mouth_tracking import MissingModelError
    with reported(ValueError, FileNotFoundError, MissingModelError):
        directory = ensure_demo_dataset(FLAGS.output_dir, num_videos=FLAGS.num_videos,
                                        seconds=FLAGS.seconds, num_workers=FLAGS.num_workers)
    print(f"demo dataset: {os.path.abspath(directory)}")
    return 0


if __name__ == "__main__":
    run(main)
