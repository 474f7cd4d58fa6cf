"""Tracks the mouth through a video and shows it (the reference's VisualizeLip.py, ported).

  python data_preparation/lip_tracking.py --input=VIDEO --output=OUT.mp4

Writes, beside OUT:
  OUT               the video (at --fps) with a green rectangle on the mouth crop and a red
                    "Mouth is not detectable." on frames without a usable mouth, with the
                    input's audio when it has some;
  mouth/frame_N.png the grey 100x60 mouth crop of each active frame N (N from 0);
  activation.json   {"activation": [1 or 0 per frame], ...}: 1 = mouth crop available;
  mouth.gif         the mouth crops as an animation (black where inactive).
Like the reference, at most --max_frames frames (150) are processed. A video in which no
frame has a usable mouth (no face found) writes nothing and exits with code 2.
"""
import io
import json
import math
import sys
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from absl import flags
from PIL import Image

from avprep.atomic import atomic_write
from avprep.cli import UsageError, run
from avprep.mouth_tracking import MissingModelError, MouthTracker
from avprep.records import FPS
from avprep.video_io import DecodeError, decode_video, write_video

_CONTAINER_CODECS = {".avi": "MJPG", ".mp4": "libx264", ".mkv": "libx264", ".mov": "libx264"}
_CODECS = ("auto", "MJPG", "libx264", "mp4v")
_GREEN, _RED = (0, 255, 0), (255, 0, 0)

flags.DEFINE_string("input", None, "Input video (any format PyAV reads).")
flags.DEFINE_string("output", None, "Output video: .avi (MJPG), .mp4, .mkv or .mov. mouth/, "
                    "activation.json and mouth.gif are written in the same folder.")
flags.DEFINE_float("fps", FPS, "Frame rate the input is brought to (by timestamp) and written at.")
flags.DEFINE_enum("codec", "auto", _CODECS, "Video codec: auto = MJPG for .avi (the "
                  "reference's default; MJPG needs an .avi output), libx264 otherwise; mp4v = "
                  "MPEG-4 part 2 (.avi, .mp4, .mkv).")
flags.DEFINE_string("predictor_path", None, "dlib 68-point model shape_predictor_68_face_"
                    "landmarks.dat (default: the copy of pip package face_recognition_models).")
flags.DEFINE_integer("max_frames", 150, "Frames to process (the reference's 150); 0 = all.")


@dataclass(frozen=True)
class LipTrackingConfig:
    input: Path
    output: Path
    fps: float
    codec: str
    predictor_path: Path
    max_frames: int


def config_from_flags(values):
    """LipTrackingConfig from parsed flags; UsageError for values that cannot work."""
    if not values.input or not values.output:
        raise UsageError("--input and --output are required")
    output = Path(values.output)
    suffix = output.suffix.lower()
    if suffix not in _CONTAINER_CODECS:
        raise UsageError(f"--output must end in one of {', '.join(_CONTAINER_CODECS)}, "
                         f"got {output.name!r}")
    codec = _CONTAINER_CODECS[suffix] if values.codec == "auto" else values.codec
    if codec == "MJPG" and suffix != ".avi":
        raise UsageError("--codec=MJPG needs an .avi output (or use --codec=libx264)")
    if codec == "libx264" and suffix == ".avi":
        raise UsageError("--codec=libx264 needs an .mp4, .mkv or .mov output")
    if not math.isfinite(values.fps) or values.fps <= 0:  # nan passes a `<= 0` test
        raise UsageError(f"--fps must be a finite number above 0, got {values.fps}")
    if values.max_frames < 0:
        raise UsageError(f"--max_frames must be 0 (all) or positive, got {values.max_frames}")
    return LipTrackingConfig(input=Path(values.input), output=output, fps=values.fps,
                             codec=codec, predictor_path=values.predictor_path,
                             max_frames=values.max_frames)


def annotated_frames(frames, track):
    """uint8 (N, H, W, 3) RGB copies of frames with the crop box or the "not detectable" text."""
    out = frames.copy()
    width = frames.shape[2]
    font_scale = max(0.4, width / 640.0)
    thickness = max(1, int(round(width / 400.0)))
    for k, frame in enumerate(out):
        if track.active[k]:
            x0, y0, x1, y1 = (int(v) for v in track.boxes[k])
            cv2.rectangle(frame, (x0, y0), (x1, y1), _GREEN, thickness + 1)
        else:
            cv2.putText(frame, "Mouth is not detectable.", (int(width * 0.04), int(width * 0.08)),
                        cv2.FONT_HERSHEY_SIMPLEX, font_scale, _RED, thickness, cv2.LINE_AA)
    return out


def track_and_write(config):
    """Tracks, writes every output; returns a dict of what was written. UsageError for an
    unreadable video, a missing landmark model, or a video without a face."""
    try:
        video = decode_video(config.input, fps=config.fps, need_audio=False,
                             max_frames=config.max_frames or None)
    except DecodeError as error:
        raise UsageError(f"cannot read {config.input}: {error}") from None
    try:
        tracker = MouthTracker(predictor_path=config.predictor_path)
    except MissingModelError as error:
        raise UsageError(str(error)) from None
    track = tracker.track(video.frames)
    if not track.active.any():
        raise UsageError(f"no face found in {config.input}: none of its {len(track.active)} "
                         "frames has a usable mouth, so nothing was written")
    folder = config.output.parent
    mouth_folder = folder / "mouth"
    mouth_folder.mkdir(parents=True, exist_ok=True)
    write_video(config.output, annotated_frames(video.frames, track), video.fps,
                audio=video.audio, sample_rate=video.sample_rate, codec=config.codec)
    for k in np.flatnonzero(track.active):
        _write_atomically(mouth_folder / f"frame_{k}.png", _png_bytes(track.crops[k]))
    activation = {"activation": track.active.astype(int).tolist(), "fps": video.fps,
                  "input": str(config.input)}
    _write_atomically(folder / "activation.json", json.dumps(activation).encode())
    _write_atomically(folder / "mouth.gif", _gif_bytes(track.crops, video.fps))
    return {"frames": len(track.active), "active": int(track.active.sum()), "folder": folder}


def _png_bytes(image):
    ok, encoded = cv2.imencode(".png", image)
    if not ok:
        raise RuntimeError("PNG encoding failed")
    return encoded.tobytes()


def _gif_bytes(crops, fps):
    images = [Image.fromarray(crop) for crop in crops]
    buffer = io.BytesIO()
    images[0].save(buffer, format="GIF", save_all=True, append_images=images[1:],
                   duration=int(round(1000.0 / fps)), loop=0)
    return buffer.getvalue()


def _write_atomically(path, data):
    atomic_write(str(path), lambda handle: handle.write(data))


def main(argv):
    if len(argv) > 1:
        raise UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
    summary = track_and_write(config_from_flags(flags.FLAGS))
    print(f"{summary['active']} of {summary['frames']} frames with a mouth; outputs in "
          f"{summary['folder']}", file=sys.stdout)


if __name__ == "__main__":
    run(main)
