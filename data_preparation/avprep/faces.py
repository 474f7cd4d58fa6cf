"""Who speaks in a video: dlib face descriptors, a face thumbnail, and grouping by identity.

A video's identity is the mean of dlib's 128-d face descriptors (its ResNet face recognition
model, shipped in face_recognition_models) over a few frames where the mouth was tracked;
dlib's model card puts two faces of one person at a descriptor distance below 0.6. Videos are
grouped by dlib's Chinese-whispers clustering of these descriptors (`group_by_face`), so
clips of one presenter land in one group even without speaker labels.
"""
from pathlib import Path

import dlib
import numpy as np

from avprep.mouth_tracking import MissingModelError, grey

DESCRIPTOR_SIZE = 128
CHIP_SIZE = 80
FACE_FRAMES = 3
# dlib's face_recognition examples cluster with 0.5: stricter than the 0.6 verification
# threshold, so two similar-looking people are less often merged into one speaker
CLUSTER_THRESHOLD = 0.5


def encoder_file():
    """Path of dlib's face recognition ResNet model (face_recognition_models's copy)."""
    try:
        import face_recognition_models
    except ImportError:
        raise MissingModelError("no face recognition model: pip install "
                                "face_recognition_models") from None
    path = Path(face_recognition_models.face_recognition_model_location())
    if not path.is_file():
        raise MissingModelError(f"face recognition model {path} not found")
    return path


class FaceDescriber:
    """Face descriptors of videos, using a MouthTracker's detector and landmarks.

    tracker: avprep.mouth_tracking.MouthTracker; num_frames: frames described per video.
    """

    def __init__(self, tracker, num_frames=FACE_FRAMES):
        self._tracker = tracker
        self._encoder = dlib.face_recognition_model_v1(str(encoder_file()))
        self.num_frames = num_frames

    def describe(self, frames, active):
        """(descriptor float32 (128,), chip uint8 (80, 80, 3)) of the face in RGB frames
        uint8 (N, H, W, 3), from up to num_frames frames evenly spread over the `active`
        (tracked) ones; (None, None) when no face is found in them."""
        candidates = np.flatnonzero(active)
        if candidates.size == 0:
            return None, None
        picks = candidates[np.linspace(0, candidates.size - 1,
                                       min(self.num_frames, candidates.size)).round().astype(int)]
        descriptors, chip = [], None
        for index in np.unique(picks):
            rgb = np.ascontiguousarray(frames[index])
            face = self._tracker.face_anywhere(grey(rgb[None])[0])
            if face is None:
                continue
            shape = self._tracker.landmarks(rgb, face)
            descriptors.append(np.asarray(self._encoder.compute_face_descriptor(rgb, shape)))
            if chip is None:
                chip = np.asarray(dlib.get_face_chip(rgb, shape, size=CHIP_SIZE), np.uint8)
        if not descriptors:
            return None, None
        return np.mean(descriptors, axis=0).astype(np.float32), chip


def group_by_face(descriptors, threshold=CLUSTER_THRESHOLD):
    """int (N,) group label of each float (N, 128) descriptor (dlib's Chinese whispers over
    the graph linking descriptors closer than `threshold`); labels are numbered by first
    appearance, so the same input always gives the same labels."""
    if len(descriptors) == 0:
        return np.zeros(0, np.int64)
    vectors = [dlib.vector(np.asarray(d, np.float64).tolist()) for d in descriptors]
    raw = dlib.chinese_whispers_clustering(vectors, threshold)
    renumbered = {}
    return np.array([renumbered.setdefault(label, len(renumbered)) for label in raw], np.int64)
