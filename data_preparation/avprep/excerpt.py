"""The middle part of a video, picture and sound cut alike: test material that tells how much
video the sync check needs (code/sync.py on excerpts of known-sync clips).

The excerpt is taken from the video decoded at the project's 30 fps and 16 kHz mono (so its
frames are the ones the sync check sees) and written losslessly, FFV1 video and PCM audio
in an .avi: lossy re-encoding would cost the check accuracy of its own (a JPEG-compressed
excerpt placed 72% of GRID shifts where the lossless one placed 80%) and AAC would add its
encoder delay to the audio.
"""
from pathlib import Path

from avprep.records import FPS
from avprep.video_io import decode_video, write_video

EXCERPT_SUFFIX = ".avi"


def middle_span(num_frames, frames):
    """(first, end) frame indices of the middle `frames` of `num_frames` (all of them when
    the video is shorter); the extra frame of an odd remainder goes after the span."""
    frames = min(int(frames), int(num_frames))
    first = (int(num_frames) - frames) // 2
    return first, first + frames


def excerpt_name(path):
    """File name of the excerpt of `path`: its stem with EXCERPT_SUFFIX, so a copy named by
    shift_audio.py keeps the name that sync.py reads the shift from."""
    return Path(path).stem + EXCERPT_SUFFIX


def write_middle_excerpt(input_path, output_path, seconds):
    """Writes the middle `seconds` of input_path (all of it when shorter) to output_path,
    atomically.

    ValueError for seconds shorter than one frame; avprep.video_io.DecodeError for a file
    that cannot be decoded or has no audio.
    """
    frames = round(seconds * FPS)
    if not frames >= 1:
        raise ValueError(f"an excerpt of {seconds} s is shorter than one frame (1/{FPS:g} s)")
    video = decode_video(input_path, fps=FPS)
    first, end = middle_span(len(video.frames), frames)
    per_frame = video.sample_rate / video.fps
    audio = video.audio[round(first * per_frame):round(end * per_frame)]
    write_video(output_path, video.frames[first:end], video.fps, audio, video.sample_rate,
                codec="ffv1")
