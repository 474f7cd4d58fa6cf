"""Copies of a video with its audio shifted by given amounts (test material for code/sync.py).

  python data_preparation/shift_audio.py --input=clip.mp4 --output_dir=/tmp/shifted \
      --offsets_ms=-200,-100,0,100,200

Writes <stem>_audio-200ms.mp4, ..., <stem>_audio+200ms.mp4 into --output_dir. Positive =
audio late (delayed: silence before it, its end cut); negative = audio early (its start cut,
silence after it); the audio keeps its length. The video stream is copied packet for packet,
not re-encoded; only the audio is encoded again (avprep.shift).
"""
import os

from absl import flags

from avprep.cli import UsageError, reported, run

FLAGS = flags.FLAGS
flags.DEFINE_string("input", None, "The video to copy (with a video and an audio stream).")
flags.DEFINE_string("output_dir", None, "Folder for the shifted copies.")
flags.DEFINE_list("offsets_ms", ["-200", "-100", "0", "100", "200"],
                  "Audio shifts in milliseconds, + = audio late.")


def main(argv):
    if len(argv) > 1:
        raise UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
    if not FLAGS.input or not FLAGS.output_dir:
        raise UsageError("--input and --output_dir are required")
    if not os.path.isfile(FLAGS.input):
        raise UsageError(f"--input={FLAGS.input} is not a file")
    if os.path.exists(FLAGS.output_dir) and not os.path.isdir(FLAGS.output_dir):
        raise UsageError(f"--output_dir={FLAGS.output_dir} exists and is not a directory")
    from avprep.shift import parse_offsets_ms, write_shifted_copies

    with reported(ValueError, prefix="--offsets_ms: "):
        offsets = parse_offsets_ms(FLAGS.offsets_ms)

    with reported(ValueError):
        paths = write_shifted_copies(FLAGS.input, FLAGS.output_dir, offsets)
    for path in paths:
        print(path)


if __name__ == "__main__":
    run(main)
