"""The middle --seconds of a video, or of every video in a folder: test material for how much
video the sync check needs.

  python data_preparation/cut_excerpts.py --input=shifted/grid_test_full \
      --output_dir=excerpts/grid_test_full_1.23s --seconds=1.233
  python code/sync.py --video=excerpts/grid_test_full_1.23s --max_offset=7

Picture and sound are cut alike from the video decoded at 30 fps and 16 kHz mono and written
losslessly (FFV1 + PCM, <stem>.avi), so an excerpt of a copy made by shift_audio.py keeps its
shift and the name sync.py reads it from. A video shorter than --seconds is written whole.
Excerpts already in --output_dir are kept (an interrupted run resumes); a video that cannot
be decoded is named on one line and counted, and the run ends with exit code 1.
"""
import dataclasses
import math
import sys
from pathlib import Path

from absl import flags

from avprep.cli import UsageError, reported, run

FLAGS = flags.FLAGS
flags.DEFINE_string("input", None, "A video, or a folder of videos.")
flags.DEFINE_string("output_dir", None, "Folder for the excerpts.")
flags.DEFINE_float("seconds", None, "Length of each excerpt in seconds (one frame at least).")


def input_videos(path):
    """[Path]: `path` itself, or the videos in the folder `path` (sorted)."""
    from avprep.splits import videos_in

    path = Path(path)
    if path.is_file():
        return [path]
    if not path.is_dir():
        raise UsageError(f"--input={path} is neither a file nor a folder")
    with reported(ValueError):
        return videos_in(path)


@dataclasses.dataclass(frozen=True)
class ExcerptConfig:
    """The videos to cut, the folder for their excerpts and the excerpts' length."""
    videos: tuple
    output_dir: Path
    seconds: float


def config_from_flags(values):
    """ExcerptConfig from parsed flags; UsageError for values that cannot work."""
    if not values.input or not values.output_dir or values.seconds is None:
        raise UsageError("--input, --output_dir and --seconds are required")
    from avprep.records import FPS

    if not math.isfinite(values.seconds) or round(values.seconds * FPS) < 1:
        raise UsageError(f"--seconds={values.seconds} must be a finite length of at least one "
                         f"frame (1/{FPS:g} s)")
    output_dir = Path(values.output_dir)
    if output_dir.exists() and not output_dir.is_dir():
        raise UsageError(f"--output_dir={output_dir} exists and is not a directory")
    return ExcerptConfig(videos=tuple(input_videos(values.input)), output_dir=output_dir,
                         seconds=values.seconds)


def main(argv):
    if len(argv) > 1:
        raise UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
    config = config_from_flags(FLAGS)
    videos, output_dir = config.videos, config.output_dir
    from avprep.excerpt import excerpt_name, write_middle_excerpt
    from avprep.video_io import DecodeError

    output_dir.mkdir(parents=True, exist_ok=True)
    written = kept = 0
    failed = []
    for video in videos:
        target = output_dir / excerpt_name(video)
        if target.exists():
            kept += 1
            continue
        try:
            write_middle_excerpt(video, target, config.seconds)
        except DecodeError as error:
            print(f"{video}: {error}", file=sys.stderr)
            failed.append(video)
            continue
        written += 1
    print(f"{written} excerpts of {config.seconds:g} s written to {output_dir}, {kept} already "
          f"there, {len(failed)} of {len(videos)} videos could not be read")
    if failed:
        sys.exit(1)


if __name__ == "__main__":
    run(main)
