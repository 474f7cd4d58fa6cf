"""Reading and writing talking-face videos with PyAV (no system ffmpeg needed).

Decoding brings every video to one frame rate by presentation timestamp (the paper's nets
see 30 fps: 9 frames = 0.3 s) and its audio to mono float32 at one sample rate, both on
the time origin of the first video frame so the two stay in sync.
"""
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Optional

import av
import numpy as np

from avprep.atomic import atomic_path
from avprep.records import FPS, SAMPLE_RATE

_AUDIO_CHUNK = 1024  # samples per encoded audio frame: AAC's fixed frame size
_CODEC_ALIASES = {  # OpenCV-style fourcc names (the reference's --codec) -> PyAV encoders
    "mjpg": "mjpeg", "mjpeg": "mjpeg",
    "h264": "libx264", "x264": "libx264", "avc1": "libx264", "libx264": "libx264",
    "mp4v": "mpeg4", "xvid": "mpeg4", "divx": "mpeg4", "mpeg4": "mpeg4",
}
_FULL_RANGE_PIX_FMT = {"mjpeg": "yuvj420p"}


class DecodeError(Exception):
    """A video file that cannot be used: empty, unreadable, corrupt or missing a stream."""


@dataclass(frozen=True)
class DecodedVideo:
    """A decoded video brought to a fixed frame rate, with its mono audio.

    frames: uint8 (N, H, W, 3) RGB, frame k shows time k / fps.
    audio: float32 (S,) mono in [-1, 1] at sample_rate, sample 0 at the time of frame 0;
        None only when decoded with need_audio=False from a file without audio.
    fps: output frame rate; sample_rate: output audio rate (Hz);
    source_fps: the file's average video frame rate;
    duration: seconds of video after conversion (N / fps).
    """
    frames: np.ndarray
    audio: Optional[np.ndarray]
    fps: float
    sample_rate: int
    source_fps: float
    duration: float


def nearest_frame_indices(source_times, fps, count):
    """Index of the source frame nearest in time to each output time k / fps.

    source_times: float (M,) presentation times in seconds, ascending, relative to the
    output's time 0 (variable spacing allowed). Returns int64 (count,), non-decreasing;
    a time exactly between two source frames takes the earlier one.
    """
    times = np.asarray(source_times, dtype=np.float64)
    if times.ndim != 1 or times.size == 0:
        raise ValueError("source_times must be a non-empty 1-D sequence")
    targets = np.arange(count, dtype=np.float64) / float(fps)
    right = np.clip(np.searchsorted(times, targets, side="left"), 0, times.size - 1)
    left = np.clip(right - 1, 0, times.size - 1)
    # the tolerance turns floating-point near-ties (25 -> 30 fps) into exact ties
    take_right = (times[right] - targets) < (targets - times[left]) - 1e-9
    return np.where(take_right, right, left).astype(np.int64)


def decode_video(path, fps=FPS, sample_rate=SAMPLE_RATE, need_audio=True, max_frames=None):
    """Decodes `path` into a DecodedVideo at `fps` and mono `sample_rate` audio.

    Output frame k is the source frame whose timestamp is nearest to k / fps (25 fps
    sources repeat every fifth frame; variable-rate files are handled by their
    timestamps). max_frames, when given, keeps only the first max_frames output frames
    (and the audio of that span), decoding no further than needed.
    Raises DecodeError for a missing, empty, unreadable or corrupt file, a file without
    video, or without audio when need_audio is True.
    """
    path = Path(path)
    with _opened(path) as container:
        if not container.streams.video:
            raise DecodeError("no video stream")
        has_audio = bool(container.streams.audio)
        if need_audio and not has_audio:
            raise DecodeError("no audio stream")
        video_stream = container.streams.video[0]
        source_fps = _average_rate(video_stream)
        limit = None if max_frames is None else max_frames / fps
        images, times = _decode_video_stream(container, video_stream, source_fps, limit)
        origin = times[0]
        relative = np.asarray(times) - origin
        count = _output_count(relative, source_fps, fps)
        if max_frames is not None:
            count = min(count, int(max_frames))
        frames = _assemble_frames(images, nearest_frame_indices(relative, fps, count))
        audio = None
        if has_audio:
            audio = _decode_audio(path, sample_rate, origin,
                                  None if max_frames is None else count / fps)
    return DecodedVideo(frames=frames, audio=audio, fps=float(fps), sample_rate=int(sample_rate),
                        source_fps=source_fps, duration=count / float(fps))


def decode_audio(path, sample_rate=SAMPLE_RATE, max_seconds=None):
    """Mono float32 (S,) audio of `path`, a video or an audio-only file, at `sample_rate`.

    Sample 0 is at the start of the file's video stream when it has one (as decode_video puts
    it), else at the start of its audio. max_seconds, when given, keeps only that much.
    Raises DecodeError for a missing, empty, unreadable or corrupt file, or one without audio.
    """
    path = Path(path)
    with _opened(path) as container:
        if not container.streams.audio:
            raise DecodeError("no audio stream")
        timed = container.streams.video or container.streams.audio
        stream = timed[0]
        origin = float(stream.start_time * stream.time_base) if stream.start_time else 0.0
    return _decode_audio(path, sample_rate, origin, max_seconds)


def write_video(path, frames, fps, audio=None, sample_rate=SAMPLE_RATE, codec="libx264"):
    """Writes uint8 (N, H, W, 3) RGB frames (and optional float32 (S,) mono audio) to `path`.

    The container follows the extension (.mp4, .avi, .mkv, .mov). codec takes PyAV encoder
    names or OpenCV fourccs ("MJPG" -> mjpeg, best in .avi; "mp4v"/"XVID" -> mpeg4).
    Odd frame sizes are padded by one edge pixel (4:2:0 chroma needs even sizes). Audio
    is AAC (PCM in .avi). The file appears atomically (temp file, then os.replace).
    """
    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
        raise ValueError(f"frames must be uint8 (N, H, W, 3), got {frames.dtype} {frames.shape}")
    if frames.shape[0] == 0:
        raise ValueError("no frames to write")
    if audio is not None and np.ndim(audio) != 1:
        raise ValueError(f"audio must be float32 (S,) mono, got shape {np.shape(audio)}")
    path = Path(path)
    encoder = _CODEC_ALIASES.get(codec.lower(), codec)
    frames = _even_sized(frames)
    with atomic_path(str(path)) as temp_name, av.open(temp_name, mode="w") as container:
        # every stream must exist before the first packet is muxed
        video_stream = _add_video_stream(container, frames, fps, encoder)
        audio_stream = None
        if audio is not None:
            audio_codec = "pcm_s16le" if path.suffix.lower() == ".avi" else "aac"
            audio_stream = container.add_stream(audio_codec, rate=sample_rate, layout="mono")
        _encode_video(container, video_stream, frames)
        if audio_stream is not None:
            _encode_audio(container, audio_stream, audio)


def _opened(path):
    """The PyAV container of `path` (Path); DecodeError for a missing, empty or unreadable file."""
    _check_file(path)
    try:
        return av.open(str(path))
    except av.error.FFmpegError as error:
        raise DecodeError(f"cannot open: {_message(error)}") from None


def _check_file(path):
    if not path.exists():
        raise DecodeError(f"no such file: {path}")
    if not path.is_file():
        raise DecodeError(f"not a file: {path}")
    if path.stat().st_size == 0:
        raise DecodeError("empty file (0 bytes)")


def _message(error):
    return getattr(error, "strerror", None) or str(error)


def _average_rate(stream):
    rate = stream.average_rate or stream.guessed_rate or stream.base_rate
    return float(rate) if rate else 0.0


def _decode_video_stream(container, stream, source_fps, limit):
    """Returns RGB uint8 (H, W, 3) images and their times (s), sorted by time."""
    images, times = [], []
    step = 1.0 / source_fps if source_fps > 0 else 1.0 / 30.0
    try:
        for frame in container.decode(stream):
            time = frame.time if frame.time is not None else len(times) * step
            if images:
                # a mid-stream size change is scaled back to the first frame's size
                height, width = images[0].shape[:2]
                images.append(frame.to_ndarray(format="rgb24", width=width, height=height))
            else:
                images.append(frame.to_ndarray(format="rgb24"))
            times.append(float(time))
            # one frame past the limit so the last output frame still has a right neighbour
            if limit is not None and time - times[0] > limit + step:
                break
    except av.error.FFmpegError as error:
        if not images:
            raise DecodeError(f"cannot decode video: {_message(error)}") from None
    if not images:
        raise DecodeError("no frames decoded")
    order = np.argsort(times, kind="stable")
    return [images[i] for i in order], [times[i] for i in order]


def _output_count(relative_times, source_fps, fps):
    """Output frames covering the source: its last frame lasts one source frame period."""
    if len(relative_times) > 1:
        period = float(np.median(np.diff(relative_times)))
    else:
        period = 1.0 / source_fps if source_fps > 0 else 1.0 / fps
    end = relative_times[-1] + period
    return max(1, int(round(end * fps)))


def _assemble_frames(images, indices):
    """Stacks images[indices] as uint8 (count, H, W, 3), dropping each source image after its
    last use so peak memory stays near one copy of the video."""
    height, width = images[0].shape[:2]
    out = np.empty((len(indices), height, width, 3), dtype=np.uint8)
    last_use = {int(i): k for k, i in enumerate(indices)}
    for k, i in enumerate(indices):
        out[k] = images[i]
        if last_use[int(i)] == k:
            images[i] = None
    return out


def _decode_audio(path, sample_rate, origin, length_seconds):
    """Mono float32 (S,) audio at sample_rate, sample 0 at video time `origin`."""
    chunks, start, stream_seconds = [], None, None
    resampler = av.AudioResampler(format="flt", layout="mono", rate=sample_rate)
    try:
        with av.open(str(path)) as container:
            stream = container.streams.audio[0]
            if stream.duration and stream.time_base:
                stream_seconds = float(stream.duration * stream.time_base)
            for frame in container.decode(stream):
                if start is None and frame.time is not None:
                    start = float(frame.time)
                for out in resampler.resample(frame):
                    chunks.append(out.to_ndarray().reshape(-1))
                if (length_seconds is not None and start is not None
                        and sum(c.size for c in chunks) > (length_seconds + 1.0) * sample_rate):
                    break
            for out in resampler.resample(None):
                chunks.append(out.to_ndarray().reshape(-1))
    except av.error.FFmpegError as error:
        if not chunks:
            raise DecodeError(f"cannot decode audio: {_message(error)}") from None
    audio = np.concatenate(chunks).astype(np.float32) if chunks else np.zeros(0, np.float32)
    if stream_seconds:
        # encoders pad the last frame (AAC: up to 1023 samples); the stream duration does not
        audio = audio[:int(round(stream_seconds * sample_rate))]
    audio = _align_audio(audio, (start or 0.0) - origin, sample_rate)
    if length_seconds is not None:
        audio = audio[:int(round(length_seconds * sample_rate))]
    return np.clip(audio, -1.0, 1.0)


def _align_audio(audio, offset_seconds, sample_rate):
    """Shifts audio that starts offset_seconds after the first video frame onto its origin."""
    shift = int(round(offset_seconds * sample_rate))
    if shift > 0:
        return np.concatenate([np.zeros(shift, np.float32), audio])
    return audio[-shift:]


def _even_sized(frames):
    pad_h, pad_w = frames.shape[1] % 2, frames.shape[2] % 2
    if pad_h or pad_w:
        frames = np.pad(frames, ((0, 0), (0, pad_h), (0, pad_w), (0, 0)), mode="edge")
    return frames


def _add_video_stream(container, frames, fps, encoder):
    stream = container.add_stream(encoder, rate=Fraction(fps).limit_denominator(1001))
    stream.width, stream.height = frames.shape[2], frames.shape[1]
    stream.pix_fmt = _FULL_RANGE_PIX_FMT.get(encoder, "yuv420p")
    return stream


def _encode_video(container, stream, frames):
    for image in frames:
        frame = av.VideoFrame.from_ndarray(image, format="rgb24")
        for packet in stream.encode(frame):
            container.mux(packet)
    for packet in stream.encode(None):
        container.mux(packet)


def _encode_audio(container, stream, audio):
    audio = np.clip(np.asarray(audio, np.float32), -1.0, 1.0)
    sample_rate = stream.rate
    if stream.codec_context.name == "pcm_s16le":
        samples, sample_format = (audio * 32767.0).astype(np.int16), "s16"
    else:
        samples, sample_format = audio, "fltp"
    for start in range(0, samples.size, _AUDIO_CHUNK):
        chunk = samples[start:start + _AUDIO_CHUNK]
        frame = av.AudioFrame.from_ndarray(chunk.reshape(1, -1), format=sample_format,
                                           layout="mono")
        frame.sample_rate = sample_rate
        frame.pts = start
        frame.time_base = Fraction(1, sample_rate)
        for packet in stream.encode(frame):
            container.mux(packet)
    for packet in stream.encode(None):
        container.mux(packet)
