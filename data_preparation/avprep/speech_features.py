"""Speech features of a whole clip: MFEC (the paper's input) or MFCC (its baseline).

What is computed (kind "mfec", the default): python_speech_features ``logfbank`` of the
clip at 16 kHz (records.SAMPLE_RATE) with 40 triangular Mel filters spanning 0 Hz to the
Nyquist frequency, 8 kHz; 20 ms frames that do not overlap (frame length = step = 0.02 s,
rectangular window, FFT length 1024, no pre-emphasis), so that 15 frames cover 0.3 s and
feature frame k covers audio [0.02 k, 0.02 (k + 1)) s. The log energies (no DCT) are
mean/variance normalised per filter over the whole clip, then stacked with their first and
second derivatives *along time* (python_speech_features ``delta``, regression over +-2
frames, the second derivative being the delta of the first) on the last axis:
float32 (T, 40, 3). ``num_channels=1`` keeps the static features only (the paper's "-1"
variants). This is what the paper describes (log Mel energies of the speech band and their
temporal derivatives).

How this differs from the reference's code, which called SpeechPy ``lmfe`` (FFT length
1024, rectangular window, no pre-emphasis) and ``cmvn``:
  - Filter range: the reference passed ``low_frequency=0``, which SpeechPy replaces by
    300 Hz; with its bin mapping the 40 filters then cover about 156-3,984 Hz, about half
    the band used here (0-8,000 Hz).
  - Derivative axis: through an operator-precedence slip the reference's first and second
    "derivatives" are taken along the filter axis of each frame, not along time; here they
    are time derivatives.
Both are deliberate: the features follow the paper, not the slip; the shapes, frame timing
and normalisation are the reference's.

MFCC (``kind="mfcc"``), for the CNN-MFCC baseline: the SyncNet-style baseline uses 13
cepstral coefficients, so ``num_cepstra=13`` cepstra of the same 40-filter bank on the
same 20 ms frames (python_speech_features defaults otherwise: lifter 22, c0 replaced by the
log frame energy), normalised and differentiated the same way: float32 (T, 13, C). Note
that the reference speech tower's VALID frequency kernels need 40 bins; a 13-bin input
needs a tower with a smaller frequency extent (or ``num_cepstra=40``, the full DCT).
"""
import dataclasses

import numpy as np
import python_speech_features as psf

from avprep.records import NUM_FILTERS, SAMPLE_RATE, SPEECH_FRAME_SECONDS, SPEECH_FRAMES

KINDS = ("mfec", "mfcc")
DELTA_WINDOW = 2
# SpeechPy's lmfe applies no pre-emphasis; python_speech_features defaults to 0.97.
PREEMPHASIS = 0.0
# Keeps the normalisation finite on constant (e.g. digitally silent) channels.
_STD_FLOOR = 1e-5


@dataclasses.dataclass(frozen=True)
class SpeechFeatureConfig:
    """How speech features are computed.

    kind: "mfec" (log Mel energies) or "mfcc".
    num_filters: Mel filters. frame_seconds: window length and step (non-overlapping).
    num_channels: 1 (static), 2 (+ first derivative) or 3 (+ second derivative).
    sample_rate: Hz of the audio passed in. nfft: FFT length.
    num_cepstra: cepstral coefficients kept for kind "mfcc" (ignored for "mfec").
    """
    kind: str = "mfec"
    num_filters: int = NUM_FILTERS
    frame_seconds: float = SPEECH_FRAME_SECONDS
    num_channels: int = 3
    sample_rate: int = SAMPLE_RATE
    nfft: int = 1024
    num_cepstra: int = 13

    def __post_init__(self):
        if self.kind not in KINDS:
            raise ValueError(f"speech feature kind must be one of {KINDS}, got {self.kind!r}")
        if self.num_channels not in (1, 2, 3):
            raise ValueError(f"num_channels must be 1, 2 or 3, got {self.num_channels}")
        if self.num_filters < 1 or self.frame_seconds <= 0 or self.sample_rate <= 0:
            raise ValueError("num_filters, frame_seconds and sample_rate must be positive")
        if self.nfft < self.frame_samples:
            raise ValueError(f"nfft {self.nfft} is shorter than a frame "
                             f"({self.frame_samples} samples)")
        if self.kind == "mfcc" and not 1 <= self.num_cepstra <= self.num_filters:
            raise ValueError(f"num_cepstra must be in 1..{self.num_filters}")

    @property
    def frame_samples(self):
        """Audio samples per feature frame (int)."""
        return int(round(self.frame_seconds * self.sample_rate))

    @property
    def num_features(self):
        """Size F of the feature axis."""
        return self.num_filters if self.kind == "mfec" else self.num_cepstra

    @property
    def cube_shape(self):
        """(T, F, C): the shape of one window's speech cube, e.g. (15, 40, 3) for MFEC."""
        return (SPEECH_FRAMES, self.num_features, self.num_channels)

    def to_dict(self):
        """The settings as a JSON-ready dict (for the manifest)."""
        return dataclasses.asdict(self)


def num_frames(num_samples, config):
    """Feature frames T that `speech_features` returns for `num_samples` audio samples."""
    if num_samples <= 0:
        return 0
    step = config.frame_samples
    return 1 + max(0, -(-(num_samples - step) // step))


def _static_features(audio, config):
    """float64 (T, F): log Mel energies or cepstra of each frame."""
    common = dict(samplerate=config.sample_rate, winlen=config.frame_seconds,
                  winstep=config.frame_seconds, nfilt=config.num_filters, nfft=config.nfft,
                  preemph=PREEMPHASIS)
    if config.kind == "mfec":
        return psf.logfbank(audio, **common)
    return psf.mfcc(audio, numcep=config.num_cepstra, **common)


def normalize(features):
    """Mean/variance normalisation over time of float (T, F) features -> float64 (T, F)."""
    features = np.asarray(features, dtype=np.float64)
    std = np.maximum(features.std(axis=0), _STD_FLOOR)
    return (features - features.mean(axis=0)) / std


def stack_derivatives(static, num_channels):
    """float (T, F) -> float32 (T, F, num_channels): static, delta, delta-delta."""
    channels = [static]
    while len(channels) < num_channels:
        channels.append(psf.delta(channels[-1], DELTA_WINDOW))
    return np.stack(channels, axis=-1).astype(np.float32)


def speech_features(audio, config=SpeechFeatureConfig()):
    """Features of a whole clip.

    Args:
      audio: float (S,) mono samples at config.sample_rate (any scale).
      config: SpeechFeatureConfig.
    Returns:
      float32 (T, F, C) with T = num_frames(S), F = config.num_features,
      C = config.num_channels; frame k covers samples [k * step, (k + 1) * step).
    Raises:
      ValueError: for audio that is not 1-D or is shorter than one frame.
    """
    audio = np.asarray(audio, dtype=np.float64)
    if audio.ndim != 1:
        raise ValueError(f"audio must be mono (S,), got shape {audio.shape}")
    if audio.size < config.frame_samples:
        raise ValueError(f"audio of {audio.size} samples is shorter than one "
                         f"{config.frame_seconds} s frame")
    static = normalize(_static_features(audio, config))
    return stack_derivatives(static, config.num_channels)
