"""0.3 s windows of a video and their genuine/impostor speech (pure numpy functions).

A window is `window_frames` = 9 video frames at 30 fps (0.3 s) and the 15 speech feature
frames of 20 ms that cover the same 0.3 s. Its *genuine* speech is that aligned audio; its
*impostor* speech is the audio of the same video shifted by `impostor_shift` seconds
(0.5 s by default: the shift the reference's notes found best; smaller is harder), earlier
or later at random (a generator seeded with the seed and the video id, so a video gives the
same windows whatever order or process handles it). With `impostor_shift_max` above
`impostor_shift`, each window's shift is drawn instead, uniformly from the multiples of
0.02 s in [impostor_shift, impostor_shift_max]: impostors at every distance the sync check
compares, not at one. Each window carries both, so genuine:impostor is exactly 1:1.

Time grid: window starts are multiples of `hop_seconds`. A window starting at video frame
s starts at speech frame s / fps / frame_seconds; for that to be a whole frame of both
streams the hop must be a multiple of 1/30 s and of 0.02 s, i.e. of 0.1 s: any other hop is
rejected with ValueError (no rounding, so the genuine audio is never off by a fraction of a
frame). The impostor shift must be a positive multiple of 0.02 s.

Kept windows: all 9 frames have a tracked mouth; the genuine window lies inside the audio;
the shifted impostor window lies inside the clip in at least one direction (if the random
direction does not fit the other is used; if neither fits the window is dropped: that only
happens to windows less than `impostor_shift` from both ends of the clip, i.e. in clips
shorter than window + 2 * shift (1.3 s by default); a clip shorter than window + shift
(0.8 s) gives no window at all; with a drawn shift, the shift drawn for that window). Optional
filters: `drop_silent` drops windows whose audio is mostly silence (more than half of the
15 frames quieter than `silence_db` below the clip's loud level, or outside the word spans
of an alignment such as GRID's .align when one is given) and then also never picks a silent
impostor window; `drop_static` drops windows whose mouth crops hardly change (mean absolute
frame-to-frame difference below `static_threshold` grey levels).

Impostors from *another* video of the same split (`impostor_other_video_fraction`) need
other videos' audio and are therefore assigned when the dataset is gathered
(`other_video_impostors`, used by avprep.dataset_writer); such records carry
impostor_shift 0.0.
"""
import dataclasses
import hashlib
import math

import numpy as np

from avprep.records import FPS, SPEECH_FRAME_SECONDS, WINDOW_FRAMES

_TOLERANCE = 1e-6
_SILENCE_PERCENTILE = 95.0
_SILENT_FRACTION = 0.5
MAX_GREY = 255  # the largest mean frame difference uint8 crops can have


@dataclasses.dataclass(frozen=True)
class WindowConfig:
    """How windows and pairs are cut.

    window_frames: video frames per window (9 = 0.3 s at 30 fps).
    fps: video frame rate. frame_seconds: speech feature frame step (0.02 s).
    hop_seconds: distance between window starts (multiple of 0.1 s).
    impostor_shift: seconds between a window and its impostor audio (multiple of 0.02 s).
    impostor_shift_max: 0 for every impostor exactly impostor_shift away; else the largest
      of the shifts drawn per window (multiple of 0.02 s, above impostor_shift).
    impostor_other_video_fraction: share of windows whose impostor audio comes from another
      video of the same split (assigned at gathering time), 0..1.
    drop_silent, silence_db: drop mostly silent windows (see module doc).
    drop_static, static_threshold: drop windows without lip motion (grey levels).
    seed: seeds the impostor directions and the other-video choices.
    """
    window_frames: int = WINDOW_FRAMES
    fps: float = FPS
    frame_seconds: float = SPEECH_FRAME_SECONDS
    hop_seconds: float = 0.1
    impostor_shift: float = 0.5
    impostor_shift_max: float = 0.0
    impostor_other_video_fraction: float = 0.0
    drop_silent: bool = False
    silence_db: float = 30.0
    drop_static: bool = False
    static_threshold: float = 1.0
    seed: int = 0

    def __post_init__(self):
        for name, value in dataclasses.asdict(self).items():
            if not math.isfinite(value):  # nan passes every `<` test below, inf breaks rounding
                raise ValueError(f"{name} must be a finite number, got {value}")
        if self.window_frames < 2:
            raise ValueError("window_frames must be at least 2")
        if self.hop_seconds <= 0:
            raise ValueError(f"window hop must be positive, got {self.hop_seconds}")
        whole_multiple(self.window_seconds, self.frame_seconds, "window length")
        whole_multiple(self.hop_seconds, 1.0 / self.fps, "window hop")
        whole_multiple(self.hop_seconds, self.frame_seconds, "window hop")
        if self.impostor_shift <= 0:
            raise ValueError(f"impostor shift must be positive, got {self.impostor_shift}")
        whole_multiple(self.impostor_shift, self.frame_seconds, "impostor shift")
        if self.impostor_shift_max:
            if self.impostor_shift_max <= self.impostor_shift:
                raise ValueError(f"impostor_shift_max ({self.impostor_shift_max}) must be 0 or "
                                 f"above impostor_shift ({self.impostor_shift})")
            whole_multiple(self.impostor_shift_max, self.frame_seconds, "impostor shift max")
        if not 0.0 <= self.impostor_other_video_fraction <= 1.0:
            raise ValueError("impostor_other_video_fraction must be within [0, 1]")
        if self.silence_db <= 0:
            raise ValueError(f"silence_db must be positive, got {self.silence_db}")
        if not 0 <= self.static_threshold <= MAX_GREY:  # above it every window is static
            raise ValueError(f"static_threshold must be within [0, {MAX_GREY}] grey levels, "
                             f"got {self.static_threshold}")

    @property
    def window_seconds(self):
        """Duration of a window (0.3 s)."""
        return self.window_frames / self.fps

    @property
    def speech_frames(self):
        """Speech feature frames per window (15)."""
        return whole_multiple(self.window_seconds, self.frame_seconds, "window length")

    @property
    def hop_frames(self):
        """Video frames between window starts."""
        return whole_multiple(self.hop_seconds, 1.0 / self.fps, "window hop")

    @property
    def shift_speech_frames(self):
        """Speech frames between a window and its impostor audio (the smallest, with a max)."""
        return whole_multiple(self.impostor_shift, self.frame_seconds, "impostor shift")

    @property
    def max_shift_speech_frames(self):
        """Largest speech-frame shift of an impostor (shift_speech_frames without a max)."""
        if not self.impostor_shift_max:
            return self.shift_speech_frames
        return whole_multiple(self.impostor_shift_max, self.frame_seconds, "impostor shift max")

    def to_dict(self):
        """The settings as a JSON-ready dict (for the manifest); without impostor_shift_max
        when it is 0, so a fixed-shift build keeps the settings of builds made before it
        existed (and can resume them)."""
        settings = dataclasses.asdict(self)
        if not self.impostor_shift_max:
            del settings["impostor_shift_max"]
        return settings


@dataclasses.dataclass(frozen=True)
class Windows:
    """The windows of one video (W windows).

    mouth: uint8 (W, 9, 60, 100). speech_genuine, speech_impostor: float32 (W, T, F, C).
    start_frame: int64 (W,) first 30 fps frame. impostor_shift: float32 (W,) signed seconds
    (negative = impostor audio from earlier in the clip).
    dropped: dict reason -> number of candidate windows dropped for it.
    """
    mouth: np.ndarray
    speech_genuine: np.ndarray
    speech_impostor: np.ndarray
    start_frame: np.ndarray
    impostor_shift: np.ndarray
    dropped: dict

    def __len__(self):
        return int(self.start_frame.shape[0])


def whole_multiple(value, unit, name):
    """value / unit as an int; ValueError when it is not a positive whole number."""
    ratio = value / unit
    count = int(round(ratio))
    if count < 1 or abs(ratio - count) > _TOLERANCE * max(1.0, ratio):
        raise ValueError(f"{name} {value:g} s is not a whole multiple of {unit:g} s")
    return count


def speech_start(start_frame, config):
    """Speech frame index (int or int array) where a window starting at `start_frame` starts."""
    offset = config.speech_frames * np.asarray(start_frame) // config.window_frames
    return offset if np.ndim(offset) else int(offset)


def window_starts(num_video_frames, num_speech_frames, config):
    """int64 (K,) start frames of every window that fits in both the video and the audio."""
    starts = np.arange(0, max(0, num_video_frames - config.window_frames + 1),
                       config.hop_frames, dtype=np.int64)
    fits = speech_start(starts, config) + config.speech_frames <= num_speech_frames
    return starts[fits]


def fully_active(active, starts, config):
    """bool (K,): every frame of the window starting at each of `starts` (int (K,)) has a
    mouth in `active` (bool (N,) per video frame)."""
    active = np.asarray(active, dtype=bool)
    return np.array([active[s:s + config.window_frames].all() for s in starts], dtype=bool)


def silent_speech_frames(audio, config, sample_rate, speech_mask=None):
    """bool (T,) per speech frame: quieter than `silence_db` below the clip's loud level
    (its 95th percentile frame energy), or outside the spoken spans of `speech_mask`.

    audio: float (S,) mono; speech_mask: optional bool (T',) True where words are spoken.
    """
    step = int(round(config.frame_seconds * sample_rate))
    count = -(-len(audio) // step)
    padded = np.zeros(count * step, dtype=np.float64)
    padded[:len(audio)] = audio
    power = np.mean(padded.reshape(count, step) ** 2, axis=1)
    level_db = 10.0 * np.log10(power + 1e-12)
    silent = level_db < np.percentile(level_db, _SILENCE_PERCENTILE) - config.silence_db
    if speech_mask is not None:
        spoken = np.zeros(count, dtype=bool)
        n = min(count, len(speech_mask))
        spoken[:n] = np.asarray(speech_mask[:n], dtype=bool)
        silent |= ~spoken
    return silent


def speech_mask_from_spans(spans, num_speech_frames, frame_seconds, silence_words=("sil", "sp")):
    """bool (T,) True for speech frames whose centre lies in a spoken word.

    spans: iterable of (start_seconds, end_seconds, word), e.g. a GRID .align file.
    """
    centres = (np.arange(num_speech_frames) + 0.5) * frame_seconds
    mask = np.zeros(num_speech_frames, dtype=bool)
    for start, end, word in spans:
        if word not in silence_words:
            mask |= (centres >= start) & (centres < end)
    return mask


def mostly_silent(silent_frames, speech_starts, config):
    """bool (K,): more than half of the window's speech frames starting at each start are
    silent (`silent_frames` bool (T,) from silent_speech_frames)."""
    silent = np.asarray(silent_frames, dtype=bool)
    return np.array([silent[a:a + config.speech_frames].mean() > _SILENT_FRACTION
                     for a in speech_starts], dtype=bool)


def lip_motion(crops):
    """float: mean absolute grey-level change between consecutive frames of uint8
    (frames, H, W) crops."""
    crops = np.asarray(crops, dtype=np.float32)
    return float(np.abs(np.diff(crops, axis=0)).mean())


def video_rng(seed, video_id):
    """A numpy Generator that depends only on `seed` and `video_id` (not on run order)."""
    digest = hashlib.sha256(video_id.encode("utf-8")).digest()
    return np.random.default_rng([int(seed), int.from_bytes(digest[:8], "little")])


def impostor_starts(speech_starts, num_speech_frames, config, rng, silent_frames=None):
    """Where each window's impostor audio starts.

    Picks -shift or +shift at random (the shift drawn per window when config has an
    impostor_shift_max); when that window does not fit in the clip (or is mostly silent
    while `silent_frames` is given) the other direction is used.
    Returns int64 (K,) speech frame starts (-1 where neither direction fits) and
    float32 (K,) signed shifts in seconds (0.0 where none fits).
    """
    last = num_speech_frames - config.speech_frames
    starts = np.full(len(speech_starts), -1, dtype=np.int64)
    shifts = np.zeros(len(speech_starts), dtype=np.float32)
    signs = np.where(rng.random(len(speech_starts)) < 0.5, -1, 1)
    # drawn after the signs (one value when there is no max), so fixed-shift datasets keep
    # the impostors they had before shifts could be drawn
    sizes = rng.integers(config.shift_speech_frames, config.max_shift_speech_frames + 1,
                         len(speech_starts))
    for i, (genuine, sign, size) in enumerate(zip(speech_starts, signs, sizes)):
        for direction in (sign, -sign):
            candidate = int(genuine) + direction * int(size)
            if not 0 <= candidate <= last:
                continue
            if silent_frames is not None and mostly_silent(silent_frames, [candidate], config)[0]:
                continue
            starts[i] = candidate
            shifts[i] = direction * size * config.frame_seconds
            break
    return starts, shifts


def _cubes(features, starts, length):
    """float32 (K, length, F, C) slices of (T, F, C) features at each start."""
    if len(starts) == 0:
        return np.zeros((0, length) + features.shape[1:], dtype=np.float32)
    return np.stack([features[a:a + length] for a in starts]).astype(np.float32)


def make_windows(crops, active, features, config, video_id, silent_frames=None):
    """The windows of one video.

    Args:
      crops: uint8 (N, 60, 100) mouth crops at config.fps; active: bool (N,) mouth found.
      features: float32 (T, F, C) speech features of the whole clip (frame step
        config.frame_seconds, frame 0 at the time of video frame 0).
      config: WindowConfig; video_id: str (seeds the impostor directions).
      silent_frames: bool (T,) from silent_speech_frames; required when config.drop_silent.
    Returns:
      Windows, in start order.
    """
    if config.drop_silent and silent_frames is None:
        raise ValueError("drop_silent needs silent_frames")
    crops = np.asarray(crops)
    starts = window_starts(len(crops), len(features), config)
    dropped = {"inactive": 0, "silent": 0, "static": 0, "no_impostor": 0}
    keep = fully_active(active, starts, config)
    dropped["inactive"] = int((~keep).sum())
    starts = starts[keep]
    genuine_starts = speech_start(starts, config)
    if config.drop_silent:
        silent = mostly_silent(silent_frames, genuine_starts, config)
        dropped["silent"] = int(silent.sum())
        starts, genuine_starts = starts[~silent], genuine_starts[~silent]
    if config.drop_static:
        motion = np.array([lip_motion(crops[s:s + config.window_frames]) for s in starts])
        static = motion < config.static_threshold
        dropped["static"] = int(static.sum())
        starts, genuine_starts = starts[~static], genuine_starts[~static]
    rng = video_rng(config.seed, video_id)
    impostor, shifts = impostor_starts(genuine_starts, len(features), config, rng,
                                       silent_frames if config.drop_silent else None)
    fits = impostor >= 0
    dropped["no_impostor"] = int((~fits).sum())
    starts, genuine_starts = starts[fits], genuine_starts[fits]
    impostor, shifts = impostor[fits], shifts[fits]
    mouth = (np.stack([crops[s:s + config.window_frames] for s in starts]).astype(np.uint8)
             if len(starts) else np.zeros((0, config.window_frames) + crops.shape[1:], np.uint8))
    return Windows(mouth=mouth,
                   speech_genuine=_cubes(features, genuine_starts, config.speech_frames),
                   speech_impostor=_cubes(features, impostor, config.speech_frames),
                   start_frame=starts.astype(np.int64), impostor_shift=shifts,
                   dropped=dropped)


def other_video_impostors(num_windows, donor_windows, fraction, rng):
    """Which windows of a video take their impostor audio from a donor video, and which.

    num_windows: windows of the video; donor_windows: windows of the donor video (>= 1);
    fraction: share to replace; rng: numpy Generator.
    Returns int64 (K,) indices of the replaced windows and int64 (K,) donor window indices.
    """
    if donor_windows < 1 or fraction <= 0 or num_windows == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    replaced = np.flatnonzero(rng.random(num_windows) < fraction).astype(np.int64)
    return replaced, rng.integers(0, donor_windows, size=len(replaced)).astype(np.int64)
