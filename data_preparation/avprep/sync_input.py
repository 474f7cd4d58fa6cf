"""The data side of the sync check: a video's mouth windows and, for every audio offset, the
speech cube each window is compared with (the model side, avmatch.sync, measures them).

Offsets are whole video frames k in [-max_offset, +max_offset]; positive k = audio late
(the sound of a lip movement at time t is heard at t + k / fps). Window w starts at video
frame s_w (one every `window_step` frames; 1 by default, where training takes one every
0.1 s) and its speech cube at offset k must start at time (s_w + k) / fps, as in training
for k = 0. That is seldom a whole 20 ms speech frame (1/30 s = 1.67 frames), so the audio
is shifted by d = round((s_w + k) * sample_rate / fps) samples: with d = q * step + r
(step = 320 samples, 0 <= r < step), the cube is frames [q, q + 15) of the features of
audio[r:]. Those features are computed once per distinct r (three at 30 fps and 16 kHz)
and each covers the clip, so every cube starts within half a sample of its exact time and
is normalised over (almost) the same audio as in training. For a window starting at a
multiple of 3 frames and k = 0 this is exactly the training cube.

A window is used when its 9 frames all have a mouth and its speech cube lies inside the clip
at one offset at least; `observed` says at which. Near the clip's ends a window is compared at
only some offsets (its audio would leave the clip at the others), so offsets are not all
measured on the same windows: avmatch.sync.offset_curve allows for that. At least one window
must be observed at every offset (the clip lasts needed_seconds at least), so all offsets are
compared through it; without one, a clip has no usable window.
"""
import dataclasses

import numpy as np

from avprep import pairs
from avprep.mouth_tracking import MouthTracker
from avprep.records import FPS
from avprep.speech_features import SpeechFeatureConfig, speech_features
from avprep.video_io import DecodeError, decode_audio, decode_video


@dataclasses.dataclass(frozen=True)
class SyncInputs:
    """What the sync check of one video needs (W windows, K offsets).

    crops: uint8 (N, 60, 100) mouth crops at fps; starts: int64 (W,) first frame of each
    usable window; offsets: int64 (K,) audio offsets in video frames (ascending);
    features: tuple of float32 (T_i, F, C) speech features of the clip, one per distinct
    sub-frame shift. The cube of window start s at offset k is looked up by its total shift
    t = s + k frames, at index t - first_shift of feature_index (which of `features`) and
    frame_start (its first speech frame there), both int64 (L,); observed: bool (W, K),
    whether window w's speech cube at offset k lies inside the clip; fps: video frame rate;
    active_frames: frames with a mouth; duration: seconds of video.
    """
    crops: np.ndarray
    starts: np.ndarray
    offsets: np.ndarray
    observed: np.ndarray
    features: tuple
    feature_index: np.ndarray
    frame_start: np.ndarray
    first_shift: int
    fps: float
    active_frames: int
    duration: float

    @property
    def num_windows(self):
        return int(self.starts.shape[0])

    @property
    def window(self):
        """The pairs.WindowConfig of the windows (9 frames, 15 speech frames)."""
        return pairs.WindowConfig(fps=self.fps)

    def shift_index(self, window_index):
        """int64 (len, K): index of each window's total shift at each offset (a valid
        index at every offset; its cube lies inside the clip where `observed`)."""
        total = self.starts[window_index][:, None] + self.offsets[None, :]
        return total - self.first_shift

    def mouth_cubes(self, window_index):
        """uint8 (len, 9, 60, 100): the mouth cubes of windows `window_index` (int (len,))."""
        frames = self.window.window_frames
        return np.stack([self.crops[s:s + frames] for s in self.starts[window_index]])

    def shift_speech_cubes(self, shift_index):
        """float32 (len, 15, F, C): the speech cubes of total shifts `shift_index` (int (len,),
        indices as shift_index gives)."""
        length = self.window.speech_frames
        return np.stack([self.features[self.feature_index[i]][start:start + length]
                         for i, start in zip(shift_index, self.frame_start[shift_index])])


def audio_shifts(offsets, fps, sample_rate):
    """int64 (L,): samples the audio is shifted by for each shift (int (L,) video frames),
    round(k * sample_rate / fps)."""
    return np.round(np.asarray(offsets, np.float64) * sample_rate / fps).astype(np.int64)


def split_shifts(shifts, step):
    """(q int64 (L,), r int64 (L,)) with shifts = q * step + r and 0 <= r < step."""
    shifts = np.asarray(shifts, np.int64)
    return np.floor_divide(shifts, step), np.mod(shifts, step)


def shifted_features(audio, rests, config):
    """Speech features of audio[r:] for each distinct sub-frame shift r, computed once each.

    audio: float (S,) mono at config.sample_rate; rests: int (L,) shifts in samples within
    one speech frame (split_shifts). Returns (features: tuple of float32 (T_i, F, C);
    feature_index: int64 (L,), which of them each shift reads; whole_frames: int64 per
    features, its frames that hold no padding (the last frame of a clip is zero-padded)).
    """
    distinct = sorted(set(np.asarray(rests).tolist()))
    empty = np.zeros((0, config.num_features, config.num_channels), np.float32)
    features = tuple(speech_features(audio[r:], config)
                     if len(audio) - r >= config.frame_samples else empty for r in distinct)
    feature_index = np.array([distinct.index(r) for r in np.asarray(rests).tolist()], np.int64)
    whole_frames = np.array([(len(audio) - r) // config.frame_samples for r in distinct],
                            np.int64)
    return features, feature_index, whole_frames


def usable_windows(active, feature_lengths, inputs_lookup, offsets, window_step, fps=FPS):
    """(starts int64 (W,), observed bool (W, K)): the windows (one every `window_step` frames)
    whose frames all have a mouth and whose speech cube lies inside the features at one offset
    at least, and at which offsets it does. None at all (W = 0) when no window is observed at
    every offset.

    active: bool (N,) per video frame; feature_lengths: int, usable frames of each feature
    array (whole_frames of shifted_features); inputs_lookup: (feature_index, frame_start,
    first_shift) as in SyncInputs; offsets: int (K,).
    """
    feature_index, frame_start, first_shift = inputs_lookup
    config = pairs.WindowConfig(fps=fps)
    starts = np.arange(0, max(0, len(active) - config.window_frames + 1), window_step,
                       dtype=np.int64)
    starts = starts[pairs.fully_active(active, starts, config)]
    index = starts[:, None] + np.asarray(offsets, np.int64)[None, :] - first_shift
    cube_start = np.asarray(frame_start)[index]
    lengths = np.asarray(feature_lengths, np.int64)[np.asarray(feature_index)[index]]
    inside = (cube_start >= 0) & (cube_start + config.speech_frames <= lengths)
    if not inside.all(axis=1).any():
        return starts[:0], inside[:0]
    kept = inside.any(axis=1)
    return starts[kept], inside[kept]


def sync_inputs(crops, active, audio, max_offset, speech_config=SpeechFeatureConfig(),
                fps=FPS, window_step=1):
    """SyncInputs of one video from its tracked mouth and its audio.

    crops: uint8 (N, 60, 100); active: bool (N,); audio: float (S,) mono at
    speech_config.sample_rate, sample 0 at the time of frame 0; max_offset: frames searched
    each way; window_step: frames between window starts (3 = training's 0.1 s hop).
    """
    if max_offset < 0:
        raise ValueError(f"max_offset must not be negative, got {max_offset}")
    if window_step < 1:
        raise ValueError(f"window_step must be at least 1 frame, got {window_step}")
    offsets = np.arange(-max_offset, max_offset + 1, dtype=np.int64)
    window_frames = pairs.WindowConfig(fps=fps).window_frames
    first_shift = -max_offset
    total_shifts = np.arange(first_shift,
                             max(len(active) - window_frames, 0) + max_offset + 1)
    shifts = audio_shifts(total_shifts, fps, speech_config.sample_rate)
    frame_start, rests = split_shifts(shifts, speech_config.frame_samples)
    features, feature_index, whole_frames = shifted_features(audio, rests, speech_config)
    starts, observed = usable_windows(active, whole_frames,
                                      (feature_index, frame_start, first_shift), offsets,
                                      window_step, fps)
    active = np.asarray(active, bool)
    return SyncInputs(crops=np.asarray(crops, np.uint8), starts=starts, offsets=offsets,
                      observed=observed,
                      features=features, feature_index=feature_index, frame_start=frame_start,
                      first_shift=first_shift, fps=float(fps),
                      active_frames=int(active.sum()), duration=len(active) / float(fps))


def needed_seconds(max_offset, fps=FPS):
    """Shortest clip that can hold one window at every offset: the window plus the search
    range on both sides (1.3 s for +/-15 frames at 30 fps)."""
    return (pairs.WindowConfig(fps=fps).window_frames + 2 * max_offset) / fps


def prepare_video(path, max_offset, tracker=None, speech_config=SpeechFeatureConfig(),
                  fps=FPS, window_step=1, audio_path=None):
    """Decodes and tracks the video at `path` and returns its SyncInputs (windows one every
    `window_step` frames).

    audio_path: another file (video or audio) whose audio is compared with these lips
    instead of the video's own, cut to the video's length (None: the video's own).

    tracker: the MouthTracker with the crop rule the model was trained with (a new
    reference-rule tracker when None). Raises ValueError, with the reason, for a file that
    cannot be decoded, has no audio, shows no face, or gives no usable window.
    """
    try:
        decoded = decode_video(path, fps=fps, sample_rate=speech_config.sample_rate,
                               need_audio=audio_path is None)
    except DecodeError as error:
        raise ValueError(f"{path}: {error}") from None
    if audio_path is not None:
        try:
            decoded = dataclasses.replace(decoded, audio=decode_audio(
                audio_path, speech_config.sample_rate, max_seconds=decoded.duration))
        except DecodeError as error:
            raise ValueError(f"{audio_path}: {error}") from None
    if decoded.audio.size < speech_config.frame_samples:
        raise ValueError(f"{path}: the audio stream holds no sound to compare with the lips")
    track = (tracker or MouthTracker()).track(decoded.frames)
    if not track.active.any():
        raise ValueError(f"{path}: no face found in any frame")
    inputs = sync_inputs(track.crops, track.active, decoded.audio, max_offset, speech_config,
                         fps, window_step)
    if inputs.num_windows == 0:
        raise ValueError(
            f"{path}: no usable window ({decoded.duration:.2f} s, a mouth in "
            f"{inputs.active_frames} of {len(track.active)} frames; a +/-{max_offset} frame "
            f"search needs {needed_seconds(max_offset, fps):.2f} s with a mouth throughout)")
    return inputs
