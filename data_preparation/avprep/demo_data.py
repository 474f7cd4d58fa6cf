"""A synthetic talking-face dataset that needs no download: a demo and a test fixture.

Each demo video shows a real face photograph (skimage.data.astronaut(), shipped with
scikit-image) whose jaw opens and closes with the envelope of synthesized voiced speech:
a glottal pulse train through three vowel formants, syllables with random onsets (about
3.5 per second), random durations and pauses, plus short noise bursts (consonants) that do
not open the mouth. Every video is another "speaker": pitch, formant scale, face
scale/position/rotation/mirror, brightness and tint, and a slow head drift. The videos are
written as real mp4 files with AAC audio and prepared by the same pipeline as real data
(avprep.build), split by video 16/4/4 for the default 24 videos.
"""
import os
from pathlib import Path

import cv2
import numpy as np
from scipy import signal

from avprep import build, pairs, splits
from avprep.records import FPS, MANIFEST_NAME, SAMPLE_RATE
from avprep.video_io import write_video

VERSION_DIR = "demo-v2"
VIDEO_DIR = "source_videos"
FRAME_SIZE = 256
# Measured with dlib's 68-point model on skimage.data.astronaut() (512 x 512):
_FACE_CENTRE = (222.0, 128.0)
_FACE_WIDTH = 90.0            # dlib face box width, px
_MOUTH_CENTRE = (223.0, 147.0)  # between the lips
_MOUTH_HALF_WIDTH = 30.0      # jaw motion fades out over this distance from the centre
_CHIN_Y = 190.0               # the lower face moves down to about here
_MAX_OPENING = 13.0           # px (source image) between the lips when fully open
_PATCH = (170, 120, 280, 215)  # x0, y0, x1, y1 of the region the motion changes
_CAVITY = np.array([45.0, 18.0, 22.0], np.float32)
# (F1, F2, F3) Hz and how wide the mouth opens for five vowels
_VOWELS = ((730, 1090, 2440, 1.0), (530, 1840, 2480, 0.75), (270, 2290, 3010, 0.5),
           (570, 840, 2410, 0.85), (300, 870, 2240, 0.55))
_BANDWIDTHS = (80.0, 100.0, 120.0)


def default_demo_dir():
    """$AVMATCH_DATA_HOME/demo-v2, or ~/.cache/avmatch/demo-v2."""
    home = os.environ.get("AVMATCH_DATA_HOME") or os.path.join(
        os.path.expanduser("~"), ".cache", "avmatch")
    return os.path.join(home, VERSION_DIR)


def speaker_parameters(index, seed=0):
    """dict of the voice and look of demo speaker `index` (deterministic)."""
    rng = np.random.default_rng([seed, index, 7])
    f0 = rng.uniform(90.0, 240.0)
    return {"f0": f0, "formant_scale": 0.9 + 0.25 * (f0 - 90.0) / 150.0,
            "face_width": rng.uniform(105.0, 150.0), "rotation": rng.uniform(-6.0, 6.0),
            "offset": rng.uniform(-18.0, 18.0, size=2), "mirror": bool(rng.random() < 0.5),
            "gain": rng.uniform(0.7, 1.2), "tint": rng.uniform(0.88, 1.12, size=3),
            "drift": rng.uniform(1.0, 4.0), "drift_hz": rng.uniform(0.1, 0.4),
            "phase": rng.uniform(0.0, 2 * np.pi)}


def syllables(duration, rng):
    """list of (onset s, length s, vowel index, amplitude): ~3.5 syllables/s, pauses."""
    result, t = [], rng.uniform(0.1, 0.4)
    while t < duration - 0.25:
        length = rng.uniform(0.1, 0.25)
        result.append((t, length, int(rng.integers(len(_VOWELS))), rng.uniform(0.5, 1.0)))
        gap = rng.uniform(0.03, 0.12)
        if rng.random() < 0.08:
            gap += rng.uniform(0.25, 0.6)
        t += length + gap
    return result


def _envelope(length, sample_rate):
    """float (length,) raised-cosine attack (25 ms) and release (50 ms)."""
    env = np.ones(length)
    attack = min(length // 2, int(0.025 * sample_rate))
    release = min(length - attack, int(0.05 * sample_rate))
    env[:attack] = 0.5 - 0.5 * np.cos(np.pi * np.arange(attack) / attack)
    env[length - release:] = 0.5 + 0.5 * np.cos(np.pi * np.arange(release) / release)
    return env


def _glottal_source(num_samples, f0, rng, sample_rate):
    """float (S,): pulse train with slow intonation, tilted -6 dB/octave."""
    t = np.arange(num_samples) / sample_rate
    pitch = f0 * (1.0 + 0.08 * np.sin(2 * np.pi * 0.7 * t + rng.uniform(0, 6.3)) - 0.03 * t / 8)
    phase = np.cumsum(pitch / sample_rate)
    pulses = np.diff(np.floor(phase), prepend=0.0)
    return signal.lfilter([1.0], [1.0, -0.9], pulses)


def _formant_filter(source, vowel, scale, sample_rate):
    """source through the vowel's three formant resonators in cascade."""
    out = source
    for frequency, bandwidth in zip(vowel[:3], _BANDWIDTHS):
        radius = np.exp(-np.pi * bandwidth / sample_rate)
        theta = 2 * np.pi * frequency * scale / sample_rate
        out = signal.lfilter([1.0 - radius], [1.0, -2 * radius * np.cos(theta), radius ** 2], out)
    return out


def synthesize_speech(duration, speaker, rng, sample_rate=SAMPLE_RATE):
    """Synthetic speech of `duration` seconds.

    Returns float32 (S,) audio (peak 0.5) and float (S,) mouth opening in [0, 1] (the
    vowel envelopes times each vowel's openness; consonant bursts do not open it).
    """
    num_samples = int(round(duration * sample_rate))
    audio = np.zeros(num_samples)
    opening = np.zeros(num_samples)
    source = _glottal_source(num_samples, speaker["f0"], rng, sample_rate)
    for onset, length, vowel_index, amplitude in syllables(duration, rng):
        begin, count = int(onset * sample_rate), int(length * sample_rate)
        count = min(count, num_samples - begin)
        vowel = _VOWELS[vowel_index]
        voiced = _formant_filter(source[begin:begin + count], vowel, speaker["formant_scale"],
                                 sample_rate)
        env = _envelope(count, sample_rate)
        audio[begin:begin + count] += amplitude * env * voiced / (np.std(voiced) + 1e-9)
        opening[begin:begin + count] = np.maximum(opening[begin:begin + count],
                                                  amplitude * vowel[3] * env)
        if rng.random() < 0.5 and begin > int(0.06 * sample_rate):
            burst = int(rng.uniform(0.03, 0.06) * sample_rate)
            noise = np.diff(rng.normal(size=burst + 1))
            audio[begin - burst:begin] += 0.25 * amplitude * noise * _envelope(burst, sample_rate)
    audio += rng.normal(scale=0.002 * np.abs(audio).max(), size=num_samples)
    audio *= 0.5 / (np.abs(audio).max() + 1e-9)
    return audio.astype(np.float32), opening


def frame_openings(opening, num_frames, fps=FPS, sample_rate=SAMPLE_RATE):
    """float (N,): the mean of `opening` (float (S,) per audio sample) over each video
    frame's duration."""
    per_frame = sample_rate / fps
    edges = np.round(np.arange(num_frames + 1) * per_frame).astype(int)
    edges = np.minimum(edges, len(opening))
    return np.array([opening[a:b].mean() if b > a else 0.0 for a, b in zip(edges, edges[1:])])


def _jaw_maps():
    """float32 maps over _PATCH: x, y, and the downward (below the lips) and upward
    (above) displacement shape in [0, 1]."""
    x0, y0, x1, y1 = _PATCH
    ys, xs = np.mgrid[y0:y1, x0:x1].astype(np.float32)
    across = np.clip(np.abs(xs - _MOUTH_CENTRE[0]) / _MOUTH_HALF_WIDTH, 0, 1)
    width_shape = np.cos(0.5 * np.pi * across) ** 2
    below = np.clip((_CHIN_Y - ys) / (_CHIN_Y - _MOUTH_CENTRE[1] - 8.0), 0, 1)
    above = np.clip((ys - (_MOUTH_CENTRE[1] - 14.0)) / 14.0, 0, 1)
    lower = np.where(ys >= _MOUTH_CENTRE[1], width_shape * below, 0.0)
    upper = np.where(ys < _MOUTH_CENTRE[1], width_shape * above, 0.0)
    return xs, ys, lower.astype(np.float32), upper.astype(np.float32)


def open_mouth(face, opening, maps):
    """float32 (512, 512, 3) copy of `face` (float32 (512, 512, 3), the source photograph)
    with the mouth opened by `opening` in [0, 1]: the jaw
    moves down, the upper lip slightly up, and the gap shows a dark mouth cavity."""
    x0, y0, x1, y1 = _PATCH
    xs, ys, lower, upper = maps
    down = _MAX_OPENING * opening * 0.8 * lower
    up = _MAX_OPENING * opening * 0.2 * upper
    source_y = ys - down + up
    patch = cv2.remap(face, xs, source_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
    line = _MOUTH_CENTRE[1]
    gap = np.where(ys >= line, line - source_y, source_y - line)
    inside = np.clip(gap, 0.0, 1.0)[..., None]
    result = face.copy()
    result[y0:y1, x0:x1] = patch * (1.0 - inside) + _CAVITY * inside
    return result


def _camera(speaker, time):
    """2x3 affine matrix from the source photograph to an output frame at `time`."""
    zoom = speaker["face_width"] / _FACE_WIDTH
    angle = speaker["rotation"] + 1.0 * np.sin(2 * np.pi * speaker["drift_hz"] * time)
    matrix = cv2.getRotationMatrix2D(_FACE_CENTRE, angle, zoom)
    wobble = speaker["drift"] * np.array([np.sin(2 * np.pi * speaker["drift_hz"] * time
                                                 + speaker["phase"]),
                                          np.cos(2 * np.pi * speaker["drift_hz"] * 0.7 * time)])
    target = np.array([FRAME_SIZE / 2.0, FRAME_SIZE * 0.42]) + speaker["offset"] + wobble
    matrix[:, 2] += target - np.array(_FACE_CENTRE)
    return matrix


def render_frames(openings, speaker, face=None):
    """uint8 (N, 256, 256, 3) RGB frames of the speaker with the given mouth openings (N,)."""
    if face is None:
        from skimage import data
        face = data.astronaut()
    face = face.astype(np.float32)
    maps = _jaw_maps()
    colour = (speaker["gain"] * speaker["tint"]).astype(np.float32)
    frames = np.empty((len(openings), FRAME_SIZE, FRAME_SIZE, 3), np.uint8)
    for k, opening in enumerate(openings):
        image = open_mouth(face, float(opening), maps)
        image = cv2.warpAffine(image, _camera(speaker, k / FPS), (FRAME_SIZE, FRAME_SIZE),
                               flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
        if speaker["mirror"]:
            image = image[:, ::-1]
        frames[k] = np.clip(image * colour, 0, 255).astype(np.uint8)
    return frames


def make_demo_video(path, index, seconds=8.0, seed=0):
    """Writes demo video `index` (mp4, 30 fps, 256 x 256, 16 kHz AAC) to `path`."""
    speaker = speaker_parameters(index, seed)
    rng = np.random.default_rng([seed, index, 11])
    audio, opening = synthesize_speech(seconds, speaker, rng)
    num_frames = int(round(seconds * FPS))
    frames = render_frames(frame_openings(opening, num_frames), speaker)
    write_video(path, frames, FPS, audio=audio, sample_rate=SAMPLE_RATE)


def write_demo_videos(video_dir, num_videos=24, seconds=8.0, seed=0, log=print):
    """Writes the demo videos that are not there yet; returns their paths (sorted)."""
    Path(video_dir).mkdir(parents=True, exist_ok=True)
    paths = []
    for index in range(num_videos):
        path = os.path.join(video_dir, f"speaker{index:02d}.mp4")
        if not os.path.exists(path):
            make_demo_video(path, index, seconds, seed)
        paths.append(path)
    log(f"{num_videos} demo videos in {video_dir}")
    return paths


def demo_build_config(directory, num_workers=2):
    """The BuildConfig that prepares the demo videos of `directory` into `directory`."""
    return build.BuildConfig(
        input_dir=os.path.join(directory, VIDEO_DIR), output_dir=directory,
        split=splits.SplitConfig("flat", 2.0 / 3.0, 1.0 / 6.0, 1.0 / 6.0),
        window=pairs.WindowConfig(drop_silent=True), num_workers=num_workers,
        num_output_shards=2)


def ensure_demo_dataset(directory=None, log=print, num_videos=24, seconds=8.0, num_workers=2):
    """The path of the demo dataset, made first if needed (resumable; complete when its
    manifest.json exists). `directory` defaults to default_demo_dir()."""
    directory = directory or default_demo_dir()
    if os.path.exists(os.path.join(directory, MANIFEST_NAME)):
        return directory
    log(f"making the demo dataset in {directory}")
    write_demo_videos(os.path.join(directory, VIDEO_DIR), num_videos, seconds, log=log)
    build.build_dataset(demo_build_config(directory, num_workers), log=log)
    return directory


def dataset_or_demo(data_dir="", trained_on="", log=print):
    """The dataset an entry script works on (the scripts' one fallback rule): `data_dir`
    when given (its reader checks it); else `trained_on`, the dataset a run was trained on,
    while it exists; else the demo dataset, made first if needed (reporting through `log`)."""
    if data_dir:
        return data_dir
    if trained_on and os.path.isdir(trained_on):
        return trained_on
    log("no dataset given: using the demo dataset (synthetic talking faces)")
    path = ensure_demo_dataset(log=log)
    log(f"demo dataset: {path}")
    return path
