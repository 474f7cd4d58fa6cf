"""Speed and agreement of the fast mouth tracker against the reference's per-frame detection."""
import time

import numpy as np

from avprep.mouth_tracking import MouthTracker, load_predictor, track_reference
from avprep.video_io import decode_video


def box_iou(boxes_a, boxes_b):
    """float64 (N,) intersection over union of int (N, 4) boxes x0, y0, x1, y1."""
    a, b = np.asarray(boxes_a, np.float64), np.asarray(boxes_b, np.float64)
    width = np.clip(np.minimum(a[:, 2], b[:, 2]) - np.maximum(a[:, 0], b[:, 0]), 0, None)
    height = np.clip(np.minimum(a[:, 3], b[:, 3]) - np.maximum(a[:, 1], b[:, 1]), 0, None)
    inter = width * height
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    union = area_a + area_b - inter
    return np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)


def compare_trackers(video_paths, max_frames=150, predictor_path=None):
    """Runs MouthTracker and track_reference on the first max_frames frames (30 fps) of each
    video. Returns a dict: frames, seconds_fast, seconds_reference, fps_fast, fps_reference,
    speedup, mean_iou (crop boxes, frames active in both), min_video_iou, active_agreement
    (fraction of frames where both agree on active), active_fast, active_reference
    (fractions), and per_video (the same figures per file). Decoding is not timed."""
    predictor = load_predictor(predictor_path)
    tracker = MouthTracker(predictor=predictor)
    per_video = []
    for path in video_paths:
        frames = decode_video(path, need_audio=False, max_frames=max_frames).frames
        start = time.perf_counter()
        fast = tracker.track(frames)
        seconds_fast = time.perf_counter() - start
        start = time.perf_counter()
        reference = track_reference(frames, predictor=predictor)
        seconds_reference = time.perf_counter() - start
        both = fast.active & reference.active
        ious = box_iou(fast.boxes[both], reference.boxes[both])
        per_video.append({
            "video": str(path), "frames": len(frames),
            "seconds_fast": seconds_fast, "seconds_reference": seconds_reference,
            "iou_sum": float(ious.sum()), "iou_count": int(both.sum()),
            "agree": int((fast.active == reference.active).sum()),
            "active_fast": int(fast.active.sum()), "active_reference": int(reference.active.sum()),
        })
    return _summary(per_video)


def _summary(per_video):
    def totals(rows):
        frames = sum(r["frames"] for r in rows)
        fast = sum(r["seconds_fast"] for r in rows)
        reference = sum(r["seconds_reference"] for r in rows)
        count = sum(r["iou_count"] for r in rows)
        return {
            "frames": frames, "seconds_fast": fast, "seconds_reference": reference,
            "fps_fast": frames / fast if fast else float("nan"),
            "fps_reference": frames / reference if reference else float("nan"),
            "speedup": reference / fast if fast else float("nan"),
            "mean_iou": sum(r["iou_sum"] for r in rows) / count if count else float("nan"),
            "active_agreement": sum(r["agree"] for r in rows) / frames if frames else float("nan"),
            "active_fast": sum(r["active_fast"] for r in rows) / frames if frames else float("nan"),
            "active_reference": (sum(r["active_reference"] for r in rows) / frames
                                 if frames else float("nan")),
        }
    summary = totals(per_video)
    videos = [dict(totals([r]), video=r["video"]) for r in per_video]
    ious = [v["mean_iou"] for v in videos if not np.isnan(v["mean_iou"])]
    summary["min_video_iou"] = min(ious) if ious else float("nan")
    summary["per_video"] = videos
    return summary
