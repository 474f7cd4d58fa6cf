"""The sync check: how far a video's audio is shifted against its lips, and how sure that is.

The data side (avprep.sync_input.SyncInputs) gives W windows of 0.3 s (one every
`window_step` frames, 1 by default, whose 9 frames all show a mouth) and, for each audio
offset k in [-max_offset, +max_offset] video frames, the speech cube each window is compared
with: the audio at time (s + k) / fps for a window starting at frame s. Sign convention:
positive offset = audio late (the sound of a lip movement at time t is heard at t + offset).
Here every window is scored at every offset with a trained coupled network (distance = L2
between the towers' embeddings), then, as SyncNet's SyncNetInstance.evaluate does for its
network:

  mean distance d_k   the distance at offset k averaged over the windows (offset_curve: a
                      window near the clip's ends is compared only at the offsets where its
                      audio stays inside the clip, so d_k is the least-squares fit of
                      window + offset effects over the pairs measured, which is the plain
                      mean when every window is measured at every offset);
  best offset         the k of the smallest d_k, in frames and in ms (k * 1000 / fps);
  minimum distance    min_k d_k;
  confidence          median_k d_k - min_k d_k: how far the best offset stands out of the
                      others. A flat curve (no face/voice relation, silence, a dubbed voice)
                      gives a confidence near 0 whatever the best offset is.

Beyond SyncNet (peak_evidence): the confidence says how far the best offset stands out, not
how consistently the windows agree on it, and a few windows can make a high one by chance.
  evidence            how many standard errors the windows' advantage at the best offset
                      lies above zero: a_w = (median over window w's measured offsets of
                      its distance) - (its distance at the best offset), evidence =
                      mean(a) / (sd(a) / sqrt(n)), with n the number of non-overlapping
                      windows the used ones amount to (W * window_step / 9: windows one
                      frame apart share 8 of their 9 frames, so they are not n independent
                      measurements). Measured on 180 checks of GRID s1 validation clips
                      against another clip's audio and their 300 own-audio copies, it told
                      the right audio from another's better than the confidence (AUC 0.845
                      against 0.720; evaluation/SYNC_EXPERIMENTS.md, sixteenth round).

Verdict (VerdictThresholds): "cannot tell" when the usable windows' starts cover less than
`min_seconds` of video (W * window_step / fps), the confidence is below `min_confidence` or
the evidence below `min_evidence`; else "in sync" when the best offset is within
`in_sync_frames` (one frame, the method's resolution; 33 ms also lies within EBU R37's
tolerance of 40 ms audio early / 60 ms audio late, two frames would not); else "out of sync
by N ms" (signed: + = audio late). The defaults were measured with a model trained like the
shipped one, windows every 0.1 s (README, "Reading the confidence and the evidence";
evaluation/SYNC_EXPERIMENTS.md): with the audio of *another* video, 14 of 14 checks of
held-out speakers gave a confidence below 8 or fewer than 20 windows (2 s), and so do the
checks that failed at the edge of the search range (confidence 1.4 to 5.0), while the
correct audio of held-out speakers gave a median confidence of 12.5. They belong to one
model's distance scale: a model folder may carry its own, measured for it (read_thresholds).

Lip-sync metrics of talking-face generation papers, over a set of videos (lse_metrics):
  LSE-D  mean over videos of the minimum distance (lower = lips and audio match better);
  LSE-C  mean over videos of the confidence (higher = a clearer sync peak).
These follow SyncNet's definitions but use *this project's* network: its embeddings, and so
its distances, are on another scale (trained with a contrastive margin of 100 on other data),
so the figures compare videos checked with the same model only, never with SyncNet's LSE-D
(about 6-8 on real video) or LSE-C (about 6-8).
"""
import dataclasses
import os

import numpy as np
import tensorflow as tf
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from avmatch.config import read_json_object
from avmatch.instance import l2_distances
from avprep.atomic import atomic_write
from avprep.records import MOUTH_SHAPE, WINDOW_FRAMES

IN_SYNC, CANNOT_TELL = "in sync", "cannot tell"


@dataclasses.dataclass(frozen=True)
class VerdictThresholds:
    """When the sync check commits to a verdict (see the module doc).

    min_confidence: smallest confidence (distance units of the model) for a verdict;
    min_evidence: smallest evidence (standard errors, peak_evidence) for a verdict (0 = not
    asked; the defaults rest on the confidence alone, as they were measured);
    in_sync_frames: largest |best offset| in frames still called in sync;
    min_seconds: least video the usable windows' starts must cover for a verdict
    (W * window_step / fps; 2.0 = the 20 windows at training's 0.1 s hop it was measured at).
    """
    min_confidence: float = 8.0
    min_evidence: float = 0.0
    in_sync_frames: int = 1
    min_seconds: float = 2.0


THRESHOLDS_NAME = "sync_thresholds.json"  # a model folder's own VerdictThresholds


def read_thresholds(model_dir):
    """The VerdictThresholds measured for the model in `model_dir` (its THRESHOLDS_NAME: a
    JSON object of VerdictThresholds' fields, plus an optional "note" string saying how they
    were measured); the defaults when the folder has none. ValueError when the file is not
    such an object."""
    path = os.path.join(model_dir, THRESHOLDS_NAME)
    payload = read_json_object(path, "verdict thresholds")
    if payload is None:
        return VerdictThresholds()
    fields = [field.name for field in dataclasses.fields(VerdictThresholds)]
    if set(payload) - set(fields) - {"note"}:
        raise ValueError(f"{path} must be a JSON object of {', '.join(fields)} (and a note)")
    values = {key: payload[key] for key in fields if key in payload}
    if not all(isinstance(value, (int, float)) and not isinstance(value, bool)
               and value >= 0 for value in values.values()):
        raise ValueError(f"{path}: every threshold must be a number >= 0, got {values}")
    return dataclasses.replace(VerdictThresholds(), **values)


@dataclasses.dataclass(frozen=True)
class SyncResult:
    """The sync check of one video or one segment of it (K offsets).

    offsets: int (K,) video frames; mean_distances: float (K,) per offset, averaged over the
    windows (offset_curve); best_offset_frames: int; best_offset_ms: float; min_distance,
    confidence, evidence: float (peak_evidence); num_windows: int, windows used;
    complete_windows: int, of them those measured at every offset; verdict: str; fps: frame
    rate of the offsets.
    """
    offsets: np.ndarray
    mean_distances: np.ndarray
    best_offset_frames: int
    best_offset_ms: float
    min_distance: float
    confidence: float
    evidence: float
    num_windows: int
    complete_windows: int
    verdict: str
    fps: float

    def to_dict(self):
        """JSON-ready dict of the result."""
        return {"best_offset_frames": self.best_offset_frames,
                "best_offset_ms": round(self.best_offset_ms, 1),
                "min_distance": round(self.min_distance, 5),
                "confidence": round(self.confidence, 5), "evidence": round(self.evidence, 5),
                "num_windows": self.num_windows,
                "complete_windows": self.complete_windows,
                "verdict": self.verdict, "fps": self.fps,
                "offsets_frames": [int(k) for k in self.offsets],
                "mean_distances": [round(float(d), 5) for d in self.mean_distances]}


def embedding_functions(instance, speech_shape):
    """Compiled towers in inference mode: (mouth uint8 (B, 9, 60, 100) -> float32 (B, D),
    speech float32 (B, T, F, C) -> float32 (B, D)); speech_shape: (T, F, C). Make them once
    per model: each new pair is traced again."""
    mouth = tf.function(lambda cubes: instance.embed_mouth(cubes, training=False),
                        input_signature=[tf.TensorSpec([None, *MOUTH_SHAPE], tf.uint8)])
    speech = tf.function(lambda cubes: instance.embed_speech(cubes, training=False),
                         input_signature=[tf.TensorSpec([None, *speech_shape], tf.float32)])
    return mouth, speech


def _embedded(embed, cubes_of, indices, batch):
    """float32 (len, D): embed(cubes_of(indices)) `batch` indices at a time."""
    return np.concatenate([embed(tf.constant(cubes_of(indices[first:first + batch]))).numpy()
                           for first in range(0, len(indices), batch)])


def offset_distances(embedders, inputs, batch=256):
    """float32 (W, K): the distance of every window of `inputs` (a SyncInputs) at every
    offset, by `embedders` (embedding_functions'); NaN where the window's audio at that offset
    would leave the clip (not inputs.observed). Each mouth window and each distinct speech
    cube is embedded once: the cube of window start s at offset k is the one of total shift
    s + k, which W * K pairs share among about W + K cubes."""
    if inputs.num_windows == 0:
        return np.zeros((0, len(inputs.offsets)), np.float32)
    embed_mouth, embed_speech = embedders
    shifts = inputs.shift_index(np.arange(inputs.num_windows))
    needed = np.unique(shifts[inputs.observed])
    position = np.searchsorted(needed, np.where(inputs.observed, shifts, needed[0]))
    mouth = _embedded(embed_mouth, inputs.mouth_cubes, np.arange(inputs.num_windows), batch)
    speech = _embedded(embed_speech, inputs.shift_speech_cubes, needed, batch)
    distances = l2_distances(speech[position], mouth[:, None, :]).numpy()
    return np.where(inputs.observed, distances, np.nan).astype(np.float32)


def offset_curve(distances):
    """float64 (K,): the mean distance at each offset, allowing for windows not measured at
    every offset.

    distances: float (W, K), NaN for a pair not measured. Windows differ in how far they lie
    from any audio, so a plain mean per offset over the measured pairs would compare other
    windows at each offset. Fitted instead: d[w, k] = a_w + b_k by least squares over the
    measured pairs; returned mean_w(a_w) + b_k, the plain mean over windows when every pair is
    measured. ValueError when a window or an offset has no measured pair.
    """
    distances = np.asarray(distances, np.float64)
    measured = ~np.isnan(distances)
    if distances.ndim != 2 or not (measured.any(axis=0).all() and measured.any(axis=1).all()):
        raise ValueError("need distances (W >= 1, K) with a measured pair in every row and "
                         f"column, got shape {distances.shape}")
    values = np.where(measured, distances, 0.0)
    per_window = measured.sum(axis=1, keepdims=True)
    share = measured / per_window
    row_means = values.sum(axis=1) / per_window[:, 0]
    # a_w = row_means_w - (share @ b)_w eliminated: a K x K system for b (b's mean is free)
    system = np.diag(measured.sum(axis=0)) - measured.T @ share
    right = (measured * (values - row_means[:, None])).sum(axis=0)
    offsets = np.linalg.lstsq(system, right, rcond=None)[0]
    windows = row_means - share @ offsets
    return windows.mean() + offsets


def peak_evidence(distances, best, window_step=1, window_frames=WINDOW_FRAMES):
    """How many standard errors the windows' advantage at offset index `best` lies above
    zero (the module doc's evidence).

    distances: float (W, K), NaN for a pair not measured; window_step: frames between the
    windows' starts; window_frames: frames of a window. Uses the windows measured at `best`;
    0.0 when fewer than two are.
    """
    distances = np.asarray(distances, np.float64)
    measured = distances[~np.isnan(distances[:, best])]
    if len(measured) < 2:
        return 0.0
    advantage = np.nanmedian(measured, axis=1) - measured[:, best]
    independent = max(1.0, len(measured) * window_step / window_frames)
    spread = max(float(advantage.std(ddof=1)), 1e-12)
    return float(advantage.mean() / spread * np.sqrt(independent))


def verdict(best_offset_frames, confidence, window_seconds, fps, thresholds=VerdictThresholds(),
            evidence=float("inf")):
    """The verdict string for a best offset (frames), confidence, the seconds of video the
    windows' starts cover (num_windows * window_step / fps) and the evidence (by default
    not asked)."""
    if (window_seconds < thresholds.min_seconds or confidence < thresholds.min_confidence
            or evidence < thresholds.min_evidence):
        return CANNOT_TELL
    if abs(best_offset_frames) <= thresholds.in_sync_frames:
        return IN_SYNC
    direction = "audio late" if best_offset_frames > 0 else "audio early"
    return f"out of sync by {best_offset_frames * 1000.0 / fps:+.0f} ms ({direction})"


def summarize(distances, offsets, fps, thresholds=VerdictThresholds(), window_step=1):
    """SyncResult of float (W, K) window distances at int (K,) offsets (W >= 1; NaN for a
    pair not measured, as offset_distances gives) of windows one every `window_step` frames."""
    distances = np.asarray(distances, np.float64)
    mean = offset_curve(distances)
    best = int(np.argmin(mean))
    best_frames = int(offsets[best])
    confidence = float(np.median(mean) - mean[best])
    evidence = peak_evidence(distances, best, window_step)
    return SyncResult(offsets=np.asarray(offsets), mean_distances=mean,
                      best_offset_frames=best_frames, best_offset_ms=best_frames * 1000.0 / fps,
                      min_distance=float(mean[best]), confidence=confidence, evidence=evidence,
                      num_windows=int(distances.shape[0]),
                      complete_windows=int((~np.isnan(distances)).all(axis=1).sum()),
                      verdict=verdict(best_frames, confidence,
                                      distances.shape[0] * window_step / fps, fps, thresholds,
                                      evidence),
                      fps=float(fps))


def segment_results(distances, starts, offsets, fps, segment_seconds,
                    thresholds=VerdictThresholds(), window_step=1):
    """Per-segment SyncResults, so drift over a long video shows.

    distances: float (W, K), NaN for a pair not measured; starts: int (W,) first frame of
    each window; segment i holds the windows starting in [i, i + 1) * segment_seconds that
    are measured at every offset, so each segment compares the same windows at every offset
    (the windows near the clip's ends that are not count in the whole video's result only).
    Returns a list of (start seconds, end seconds, SyncResult) for the segments with at
    least one window, in time order.
    """
    if segment_seconds <= 0:
        raise ValueError(f"segment_seconds must be positive, got {segment_seconds}")
    distances = np.asarray(distances)
    complete = ~np.isnan(distances).any(axis=1)
    distances = distances[complete]
    segment = np.floor(np.asarray(starts)[complete] / fps / segment_seconds).astype(np.int64)
    return [(float(i * segment_seconds), float((i + 1) * segment_seconds),
             summarize(distances[segment == i], offsets, fps, thresholds, window_step))
            for i in np.unique(segment)]


def lse_metrics(results):
    """LSE-D and LSE-C (see the module doc) of a list of whole-video SyncResults:
    {"lse_d": float, "lse_c": float, "videos": int}; ValueError for none."""
    if not results:
        raise ValueError("LSE-D and LSE-C need at least one checked video")
    return {"lse_d": float(np.mean([r.min_distance for r in results])),
            "lse_c": float(np.mean([r.confidence for r in results])),
            "videos": len(results)}


@dataclasses.dataclass(frozen=True)
class ShiftRecovery:
    """How many copies of known audio shift a check placed: copies, and of them `absolute`
    with the best offset within `tolerance` frames of the shift; `relative` of the
    `relative_copies` whose video also has an unshifted copy, with best offset minus that
    copy's within tolerance of the shift (right even when the source itself is off sync);
    `originals_in_sync` of the `originals` (unshifted copies) within tolerance of 0."""
    copies: int
    absolute: int
    relative_copies: int
    relative: int
    originals: int
    originals_in_sync: int
    tolerance: int


def shift_recovery(found, fps, tolerance=1):
    """ShiftRecovery of found: {(video, shift_ms): best offset in frames}, the shift in ms
    (+ = audio late) counted as round(shift_ms * fps / 1000) frames."""
    def expected(shift_ms):
        return round(shift_ms * fps / 1000.0)

    unshifted = {video: best for (video, shift_ms), best in found.items() if shift_ms == 0}
    absolute = relative = relative_copies = 0
    for (video, shift_ms), best in found.items():
        absolute += abs(best - expected(shift_ms)) <= tolerance
        if video in unshifted:
            relative_copies += 1
            relative += abs(best - unshifted[video] - expected(shift_ms)) <= tolerance
    return ShiftRecovery(copies=len(found), absolute=absolute, relative_copies=relative_copies,
                         relative=relative, originals=len(unshifted),
                         originals_in_sync=sum(abs(b) <= tolerance for b in unshifted.values()),
                         tolerance=tolerance)


def save_offset_plot(path, curves):
    """PNG of the mean distance against the audio offset, one line per video.

    curves: list of (label, SyncResult); the best offset of each is marked. Drawn on a
    matplotlib Agg canvas (no global backend) and written atomically.
    """
    figure = Figure(figsize=(7.0, 4.5), dpi=100)
    FigureCanvasAgg(figure)
    axes = figure.add_subplot(1, 1, 1)
    for label, result in curves:
        milliseconds = np.asarray(result.offsets) * 1000.0 / result.fps
        line, = axes.plot(milliseconds, result.mean_distances, marker=".", label=label)
        axes.plot([result.best_offset_ms], [result.min_distance], "o", color=line.get_color())
    axes.axvline(0.0, color="grey", linestyle=":")
    axes.set_xlabel("audio offset (ms; + = audio late)")
    axes.set_ylabel("mean distance over windows")
    if len(curves) == 1:
        result = curves[0][1]
        axes.set_title(f"{curves[0][0]}\nbest {result.best_offset_ms:+.0f} ms, "
                       f"confidence {result.confidence:.2f}: {result.verdict}", fontsize=9)
    if 1 < len(curves) <= 12:
        axes.legend(fontsize=7)
    atomic_write(path, lambda handle: figure.savefig(handle, format="png"))
