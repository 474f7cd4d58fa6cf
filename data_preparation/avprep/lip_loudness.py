"""A model-free sync estimate for sets of clips: how far the loudness lags the lip opening.

For each clip two signals at the video's 30 fps: the inner-lip gap over the mouth width
(dlib's 68 landmarks) and the log loudness of the speech band around each frame's time. Their
correlation at each lag, averaged over many clips, peaks at the lag where sound follows the
lips in that set. One 1.2 s clip is far too short to place alone (its curve is mostly noise),
which is why the estimate is for sets: comparing the peaks of two sets of the same material
tells whether their audio sits differently against the picture, with no trained network
involved. Sign: a lag L > 0 pairs opening[t] with loudness[t + L], so audio d frames late
moves a set's peak by +d.
"""
import numpy as np
from scipy.signal import butter, sosfiltfilt

from avprep.video_io import decode_video

SPEECH_BAND_HZ = (100.0, 4000.0)
INNER_LIP_PAIRS = ((61, 67), (62, 66), (63, 65))  # upper / lower inner-lip landmarks
MOUTH_CORNERS = (48, 54)


def clip_signals(path, tracker):
    """(opening, loudness), float64 (N,) each, of the video at `path` decoded at 30 fps and
    16 kHz; tracker: a MouthTracker. opening is NaN in frames without a face. Raises
    avprep.video_io.DecodeError for a file that cannot be used."""
    video = decode_video(path)
    points = tracker.landmark_points(video.frames)
    opening = np.array([np.nan if np.isnan(frame).any() else opening_ratio(frame)
                        for frame in points])
    return opening, loudness(video.audio, len(video.frames), video.fps, video.sample_rate)


def opening_ratio(points):
    """Inner-lip gap over mouth width, float, of float (68, 2) landmark coordinates."""
    points = np.asarray(points, dtype=np.float64)
    gap = np.mean([np.linalg.norm(points[a] - points[b]) for a, b in INNER_LIP_PAIRS])
    width = np.linalg.norm(points[MOUTH_CORNERS[0]] - points[MOUTH_CORNERS[1]])
    return gap / max(width, 1.0)


def loudness(audio, count, fps, sample_rate):
    """float64 (count,) log RMS of float (S,) audio over one frame each side of k / fps.

    The speech band is kept with a zero-phase filter, so no delay is added; frames whose
    window lies mostly outside the audio are NaN.
    """
    sos = butter(4, SPEECH_BAND_HZ, btype="band", fs=sample_rate, output="sos")
    audio = np.asarray(audio, dtype=np.float64)
    padding = 3 * (2 * len(sos) + 1)  # the edge padding filtfilt needs, set here, not guessed
    if audio.size <= padding:
        return np.full(count, np.nan)
    band = sosfiltfilt(sos, audio, padlen=padding)
    half = int(round(sample_rate / fps))
    out = np.full(count, np.nan)
    for k in range(count):
        centre = int(round(k * sample_rate / fps))
        window = band[max(centre - half, 0):centre + half]
        if window.size >= half:
            out[k] = np.log(np.sqrt(np.mean(window ** 2)) + 1e-5)
    return out


def lag_correlations(opening, sound, lags, min_pairs=12):
    """float64 (len(lags),) Pearson correlation of opening[t] with sound[t + lag].

    opening, sound: float (N,) per-frame signals, NaN where unknown. A lag with fewer than
    min_pairs frames known in both is NaN.
    """
    a_all, b_all = _standardised(opening), _standardised(sound)
    n = min(a_all.size, b_all.size)
    out = np.full(len(lags), np.nan)
    for i, lag in enumerate(lags):
        if abs(lag) >= n:
            continue
        a = a_all[max(0, -lag):n - max(0, lag)]
        b = b_all[max(0, lag):n - max(0, -lag)]
        known = ~(np.isnan(a) | np.isnan(b))
        if known.sum() >= min_pairs and np.std(a[known]) > 0 and np.std(b[known]) > 0:
            out[i] = np.corrcoef(a[known], b[known])[0, 1]
    return out


def peak_lag(curve, lags):
    """The lag (float, in frames) of the curve's maximum, refined by a parabola through it
    and its neighbours; NaN for an all-NaN curve."""
    curve = np.asarray(curve, dtype=np.float64)
    if np.all(np.isnan(curve)):
        return float("nan")
    i = int(np.nanargmax(curve))
    if 0 < i < curve.size - 1 and not np.isnan(curve[i - 1:i + 2]).any():
        left, top, right = curve[i - 1:i + 2]
        bend = left - 2.0 * top + right
        if bend < 0:
            return float(lags[i] + 0.5 * (left - right) / bend)
    return float(lags[i])


def pooled_peak(curves, lags, resamples=1000, seed=0):
    """(peak, low, high): the peak lag of the mean of float (C, L) curves, and the 2.5th and
    97.5th percentiles of that peak over `resamples` bootstrap draws of the clips."""
    curves = np.asarray(curves, dtype=np.float64)
    peak = peak_lag(np.nanmean(curves, axis=0), lags)
    rng = np.random.default_rng(seed)
    draws = [peak_lag(np.nanmean(curves[rng.integers(0, len(curves), len(curves))], axis=0),
                      lags) for _ in range(resamples)]
    low, high = np.nanpercentile(draws, [2.5, 97.5])
    return peak, float(low), float(high)


def _standardised(signal):
    signal = np.asarray(signal, dtype=np.float64)
    if np.isnan(signal).all():  # no face in any frame: nothing to standardise
        return signal
    spread = np.nanstd(signal)
    return (signal - np.nanmean(signal)) / spread if spread > 0 else signal * np.nan
