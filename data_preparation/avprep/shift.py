"""Copies of a video with its audio shifted in time: test material for the sync check.

Sign convention (the sync check's): a positive offset makes the audio late, i.e. delayed:
`offset` of silence goes before the audio and as much is cut at its end; a negative offset
cuts the first |offset| of the audio and pads silence at the end. The audio keeps its
length, sample rate, channels and start time.

Only the audio is decoded, shifted and encoded again, with its original codec when this PyAV
build can encode it, else AAC (PCM in .avi). The video stream is not re-encoded: its packets
are copied with the same bytes and, in mp4/mov/mkv, the same timestamps (a format that
cannot store the re-encoded audio's negative start time, such as flv, moves every stream by
the same few ms), so the pictures are exactly the original's.
"""
import math
import re
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from avprep.atomic import atomic_path

_FALLBACK_CODECS = {".avi": "pcm_s16le"}
_SHIFTED_NAME = re.compile(r"(.+)_audio([+-]\d+)ms(\.[^.]+)")
_CHUNK = 4096  # samples per frame handed to the encoder (PyAV re-chunks to its frame size)


def shifted_name(path, offset_ms):
    """File name of the copy of `path` shifted by offset_ms: <stem>_audio+100ms<suffix>."""
    path = Path(path)
    return f"{path.stem}_audio{int(offset_ms):+d}ms{path.suffix}"


def parse_shifted_name(name):
    """(original file name, offset_ms) of a copy named by shifted_name, e.g.
    "clip_audio-100ms.mp4" -> ("clip.mp4", -100); None for any other name."""
    match = _SHIFTED_NAME.fullmatch(Path(name).name)
    if match is None:
        return None
    return match.group(1) + match.group(3), int(match.group(2))


def parse_offsets_ms(values):
    """[int ms] from strings such as "-200", "100"; ValueError for one that is not a whole
    number of milliseconds, for a repeated one, or for none at all."""
    offsets = []
    for value in values:
        try:
            number = float(value)
        except ValueError:
            raise ValueError(f"{value!r} is not a number of milliseconds") from None
        if not math.isfinite(number) or number != int(number):
            raise ValueError(f"{value!r} must be a whole number of milliseconds")
        offsets.append(int(number))
    if not offsets or len(set(offsets)) != len(offsets):
        raise ValueError("at least one offset is needed, each once")
    return offsets


def shift_samples(samples, count):
    """float32 (C, S) copy of `samples` (C, S) delayed by `count` samples (advanced when
    negative), zeros filling the gap, length kept."""
    samples = np.asarray(samples, np.float32)
    out = np.zeros_like(samples)
    length = samples.shape[1]
    if count >= 0:
        out[:, count:] = samples[:, :max(length - count, 0)]
    else:
        out[:, :max(length + count, 0)] = samples[:, -count:]
    return out


def read_audio(container, stream):
    """The audio of `stream` as float32 (C, S) planar samples (as long as the stream says,
    without the encoder's padding), with its first frame's time (s; 0.0 when unknown)."""
    resampler = av.AudioResampler(format="fltp", layout=stream.layout.name, rate=stream.rate)
    chunks, start = [], None
    for frame in container.decode(stream):
        if start is None:
            start = float(frame.time) if frame.time is not None else 0.0
        for out in resampler.resample(frame):
            chunks.append(out.to_ndarray())
    for out in resampler.resample(None):
        chunks.append(out.to_ndarray())
    if not chunks:
        raise ValueError("the audio stream holds no samples")
    samples = np.concatenate(chunks, axis=1)
    if stream.duration and stream.time_base:
        # encoders pad the last frame (AAC: up to 1023 samples); the stream duration does not
        samples = samples[:, :int(round(stream.duration * stream.time_base * stream.rate))]
    return samples, start or 0.0


def _audio_stream(container, codec, rate, layout, suffix):
    """An output audio stream of `rate` Hz and `layout` (a layout name) with `codec` when it
    can be encoded into this container, else the fallback codec."""
    for name in (codec, _FALLBACK_CODECS.get(suffix, "aac")):
        try:
            return container.add_stream(name, rate=rate, layout=layout)
        except (ValueError, av.error.FFmpegError):
            continue
    raise ValueError(f"cannot encode audio into a {suffix} file")


def _encoded_audio(stream, samples, start_seconds):
    """All packets of float32 (C, S) `samples` encoded by `stream`, first sample at
    start_seconds."""
    rate = stream.rate
    first = int(round(start_seconds * rate))
    packets = []
    for offset in range(0, samples.shape[1], _CHUNK):
        frame = av.AudioFrame.from_ndarray(
            np.ascontiguousarray(samples[:, offset:offset + _CHUNK]), format="fltp",
            layout=stream.layout.name)
        frame.sample_rate = rate
        frame.pts = first + offset
        frame.time_base = Fraction(1, rate)
        packets.extend(stream.encode(frame))
    packets.extend(stream.encode(None))
    return packets


def _time(packet):
    """Seconds of a packet's decoding time, for interleaving."""
    stamp = packet.dts if packet.dts is not None else packet.pts
    return float(stamp * packet.time_base) if stamp is not None else 0.0


def _open(path):
    try:
        return av.open(str(path))
    except av.error.FFmpegError as error:
        raise ValueError(f"{path}: cannot open: {error}") from None


def write_shifted_copy(input_path, output_path, offset_ms):
    """Writes a copy of the video at input_path to output_path (atomically) with its audio
    shifted by offset_ms (+ = late); the video packets are copied unchanged.

    ValueError for a file without a video or an audio stream, or that cannot be read.
    """
    try:
        _write_shifted_copy(input_path, output_path, offset_ms)
    except av.error.FFmpegError as error:
        raise ValueError(f"{input_path}: {error}") from None


def _write_shifted_copy(input_path, output_path, offset_ms):
    with _open(input_path) as source:
        if not source.streams.video or not source.streams.audio:
            raise ValueError(f"{input_path}: needs a video and an audio stream")
        audio_in = source.streams.audio[0]
        samples, start = read_audio(source, audio_in)
        rate, layout = audio_in.rate, audio_in.layout.name
        codec = audio_in.codec_context.codec.canonical_name  # "mp3", not its decoder "mp3float"
    samples = shift_samples(samples, int(round(offset_ms * rate / 1000.0)))
    with _open(input_path) as source, atomic_path(str(output_path)) as temp, \
            av.open(temp, mode="w") as target:
        video_in = source.streams.video[0]
        # opaque: the template's own codec (a decoder will do: nothing is encoded), so codecs
        # this build cannot encode (e.g. vp6f) are copied too
        video_out = target.add_stream_from_template(video_in, opaque=True)
        audio_out = _audio_stream(target, codec, rate, layout, Path(output_path).suffix.lower())
        pending = _encoded_audio(audio_out, samples, start)
        done = 0
        for packet in source.demux(video_in):
            if packet.dts is None:  # the demuxer's end-of-stream marker
                continue
            while done < len(pending) and _time(pending[done]) <= _time(packet):
                target.mux(pending[done])
                done += 1
            packet.stream = video_out
            target.mux(packet)
        for packet in pending[done:]:
            target.mux(packet)


def write_shifted_copies(input_path, output_dir, offsets_ms, keep_existing=False):
    """write_shifted_copy for every offset (ms) into output_dir; returns the paths written
    (with keep_existing, copies already there are kept and not counted)."""
    paths = []
    for offset in offsets_ms:
        path = Path(output_dir) / shifted_name(input_path, offset)
        if keep_existing and path.exists():
            continue
        write_shifted_copy(input_path, path, offset)
        paths.append(path)
    return paths
