"""Copies of a video with its audio shifted by given amounts (test material for code/sync.py).

  python data_preparation/shift_audio.py --input=clip.mp4 --output_dir=/tmp/shifted \
      --offsets_ms=-200,-100,0,100,200

Writes <stem>_audio-200ms.mp4, ..., <stem>_audio+200ms.mp4 into --output_dir. Positive =
audio late (delayed: silence before it, its end cut); negative = audio early (its start cut,
silence after it); the audio keeps its length. The video stream is copied packet for packet,
not re-encoded; only the audio is encoded again (avprep.shift).
"""
import dataclasses
import os

from absl import flags

from avprep.cli import UsageError, reported, run

FLAGS = flags.FLAGS
flags.DEFINE_string("input", None, "The video to copy (with a video and an audio stream).")
flags.DEFINE_string("output_dir", None, "Folder for the shifted copies.")
flags.DEFINE_list("offsets_ms", ["-200", "-100", "0", "100", "200"],
                  "Audio shifts in milliseconds, + = audio late.")


@dataclasses.dataclass(frozen=True)
class ShiftConfig:
    """What to copy, where, and the audio shifts in milliseconds (+ = audio late)."""
    input: str
    output_dir: str
    offsets_ms: tuple


def config_from_flags(values):
    """ShiftConfig from parsed flags; UsageError for values that cannot work."""
    if not values.input or not values.output_dir:
        raise UsageError("--input and --output_dir are required")
    if not os.path.isfile(values.input):
        raise UsageError(f"--input={values.input} is not a file")
    if os.path.exists(values.output_dir) and not os.path.isdir(values.output_dir):
        raise UsageError(f"--output_dir={values.output_dir} exists and is not a directory")
    from avprep.shift import parse_offsets_ms

    with reported(ValueError, prefix="--offsets_ms: "):
        offsets = parse_offsets_ms(values.offsets_ms)
    return ShiftConfig(input=values.input, output_dir=values.output_dir,
                       offsets_ms=tuple(offsets))


def main(argv):
    if len(argv) > 1:
        raise UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
    config = config_from_flags(FLAGS)
    from avprep.shift import write_shifted_copies

    with reported(ValueError):
        paths = write_shifted_copies(config.input, config.output_dir, config.offsets_ms)
    for path in paths:
        print(path)


if __name__ == "__main__":
    run(main)
