"""Mouth crops for the mouth network: dlib face detection + 68 landmarks, the reference's crop rule.

The crop rule is the reference's (code/lip_tracking/VisualizeLip.py): the mouth is landmarks
48..67; the crop is centred on the mouth centre; its size is fixed at the first found mouth
box plus a 30 px border on each side and only ever grows (w_max += 1.5 * max(w_mouth - w_max,
0), w_mouth the unbordered mouth width, same for the height); a crop leaving the frame is
inactive; crops are grey and resized to 100 wide x 60 high.

The border is absolute pixels, as in the reference. On the shared videos (224 to 844 px)
it works (99% of frames active, the rest have no detectable face), but it frames differently
by resolution: the border is about 0.6 mouth widths at 224 px and 0.25 at 844 px, so small
frames show more chin and cheek. `border` is a parameter for callers who want another value.

Two trackers produce the same MouthTrack:
- track_reference: the reference's way, the full-frame detector with upsampling 1 on every
  frame, then landmarks (slow: a few frames per second on 844x844 frames);
- MouthTracker.track: once a face is known, each frame is detected only inside a region
  around the last face box, rescaled so the face is about 100 px (the detector's 80 px window
  fits with a margin); full-frame detection runs only when that fails, shrinking large frames
  and upsampling (never shrinking) small ones when nothing is found.
"""

import math
from dataclasses import dataclass
from pathlib import Path

import cv2
import dlib
import numpy as np

from avprep.records import MOUTH_HEIGHT, MOUTH_WIDTH

CROP_HEIGHT, CROP_WIDTH = MOUTH_HEIGHT, MOUTH_WIDTH
MOUTH_POINTS = slice(48, 68)
REFERENCE_BORDER = 30
_PREDICTOR_FILE = "shape_predictor_68_face_landmarks.dat"


class MissingModelError(Exception):
    """The 68-point dlib landmark model file cannot be found."""


@dataclass
class MouthTrack:
    """Per-frame mouth crops of a video.

    crops: uint8 (N, 60, 100) grey mouth crops (zeros where inactive);
    active: bool (N,), False where no face/mouth was found or the crop leaves the frame;
    boxes: int32 (N, 4) crop boxes x0, y0, x1, y1 in frame pixels (zeros where inactive).
    """

    crops: np.ndarray
    active: np.ndarray
    boxes: np.ndarray


def predictor_file(predictor_path=None):
    """Path of the 68-point landmark model: predictor_path, else face_recognition_models's."""
    how = (
        f"pip install face_recognition_models, or pass --predictor_path to the 68-point "
        f"model {_PREDICTOR_FILE} (http://dlib.net/files/{_PREDICTOR_FILE}.bz2)"
    )
    if predictor_path is None:
        try:
            import face_recognition_models
        except ImportError:
            raise MissingModelError(f"no landmark model: {how}") from None
        predictor_path = face_recognition_models.pose_predictor_model_location()
    path = Path(predictor_path)
    if not path.is_file():
        raise MissingModelError(f"landmark model {path} not found: {how}")
    return path


def load_predictor(predictor_path=None):
    """dlib.shape_predictor of the 68-point model (see predictor_file)."""
    path = predictor_file(predictor_path)
    try:
        return dlib.shape_predictor(str(path))
    except RuntimeError as error:
        raise MissingModelError(f"cannot load landmark model {path}: {error}") from None


def crop_boxes(mouth_extents, found, frame_height, frame_width, border=REFERENCE_BORDER,
               border_fraction=None):
    """The reference's crop boxes from per-frame mouth extents.

    mouth_extents: int (N, 4) x_left, y_left, x_right, y_right of landmarks 48..67;
    found: bool (N,), frames where a mouth was found; border: pixels added on each side of
    the first mouth box; border_fraction: when given, the border is this share of the first
    found mouth's width instead, so the crop frames the mouth alike at any resolution.
    Returns (boxes int32 (N, 4), active bool (N,)); frames not found or whose crop leaves
    the frame are inactive.
    """
    count = len(found)
    boxes = np.zeros((count, 4), np.int32)
    active = np.zeros(count, bool)
    width_max = height_max = 0.0
    for k in np.flatnonzero(found):
        x_left, y_left, x_right, y_right = (int(v) for v in mouth_extents[k])
        width, height = x_right - x_left, y_right - y_left
        if width_max == 0 and height_max == 0:
            if border_fraction is not None:
                border = border_fraction * width
            width_max, height_max = width + 2.0 * border, height + 2.0 * border
        else:
            width_max += 1.5 * max(width - width_max, 0)
            height_max += 1.5 * max(height - height_max, 0)
        x_centre, y_centre = (x_left + x_right) / 2.0, (y_left + y_right) / 2.0
        box = (
            math.floor(x_centre - width_max / 2.0),
            math.floor(y_centre - height_max / 2.0),
            math.floor(x_centre + width_max / 2.0),
            math.floor(y_centre + height_max / 2.0),
        )
        if box[0] >= 0 and box[1] >= 0 and box[2] < frame_width and box[3] < frame_height:
            boxes[k], active[k] = box, True
    return boxes, active


def mouth_crops(grey_frames, boxes, active):
    """uint8 (N, 60, 100) crops of grey_frames (N, H, W) at boxes; zeros where inactive."""
    crops = np.zeros((len(active), CROP_HEIGHT, CROP_WIDTH), np.uint8)
    for k in np.flatnonzero(active):
        x0, y0, x1, y1 = boxes[k]
        crops[k] = cv2.resize(
            grey_frames[k][y0:y1, x0:x1], (CROP_WIDTH, CROP_HEIGHT), interpolation=cv2.INTER_AREA
        )
    return crops


def grey(frames):
    """uint8 (N, H, W) grey versions of uint8 (N, H, W, 3) RGB frames."""
    return np.stack([cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY) for frame in frames])


def track_reference(frames, predictor_path=None, border=REFERENCE_BORDER, predictor=None):
    """The reference's tracking of uint8 (N, H, W, 3) RGB frames: full-frame detection with
    upsampling 1 on every frame, landmarks on the RGB frame. Returns a MouthTrack."""
    detector = dlib.get_frontal_face_detector()
    predictor = predictor or load_predictor(predictor_path)
    extents = np.zeros((len(frames), 4), np.int64)
    found = np.zeros(len(frames), bool)
    for k, frame in enumerate(frames):
        detections = list(detector(frame, 1))
        if detections:
            # the reference keeps the last face of several; the largest is the speaker
            box = max(detections, key=lambda d: d.width() * d.height())
            extents[k], found[k] = _mouth_extent(predictor(frame, box)), True
    return _track_from_extents(_grey_or_empty(np.asarray(frames)), extents, found, border)


class MouthTracker:
    """Fast mouth tracking: detection near the last face, full-frame search only when lost.

    predictor_path: the 68-point model (default: face_recognition_models's copy);
    predictor: an already loaded dlib.shape_predictor (load_predictor) to use instead of
      loading predictor_path (several trackers can then share one loaded model);
    border: crop border in pixels (the reference's 30);
    border_fraction: if not None, the crop border as a share of the mouth width (replaces
      `border`; see crop_boxes);
    face_size: face box width (px) the detector is run at near a known face;
    search_size: longest side (px) large frames are shrunk to for a full-frame search;
    region_scale: search region around the last face box, in face box widths.
    """

    def __init__(
        self,
        predictor_path=None,
        border=REFERENCE_BORDER,
        face_size=100,
        search_size=360,
        region_scale=1.6,
        predictor=None,
        border_fraction=None,
    ):
        self._detector = dlib.get_frontal_face_detector()
        self._predictor = predictor or load_predictor(predictor_path)
        self.border = border
        self.border_fraction = border_fraction
        self.face_size = face_size
        self.search_size = search_size
        self.region_scale = region_scale

    def track(self, frames):
        """MouthTrack of uint8 (N, H, W, 3) RGB frames."""
        grey_frames = _grey_or_empty(frames)
        extents = np.zeros((len(frames), 4), np.int64)
        found = np.zeros(len(frames), bool)
        for k, image, face in self._followed_faces(grey_frames):
            extents[k], found[k] = _mouth_extent(self.landmarks(image, face)), True
        return _track_from_extents(grey_frames, extents, found, self.border,
                                   self.border_fraction)

    def landmark_points(self, frames):
        """float64 (N, 68, 2) landmark x, y of uint8 (N, H, W, 3) RGB frames, found as
        track() finds them; NaN in frames without a face."""
        points = np.full((len(frames), 68, 2), np.nan)
        for k, image, face in self._followed_faces(_grey_or_empty(frames)):
            shape = self.landmarks(image, face)
            points[k] = [(shape.part(i).x, shape.part(i).y) for i in range(68)]
        return points

    def _followed_faces(self, grey_frames):
        """(k, image, dlib.rectangle) for each frame of uint8 (N, H, W) grey_frames with a
        face: searched near the last one, over the whole frame when that fails."""
        face = None
        for k, image in enumerate(grey_frames):
            face = self._face_near(image, face) if face is not None else None
            if face is None:
                face = self.face_anywhere(image)
            if face is not None:
                yield k, image, face

    def landmarks(self, image, face):
        """dlib full_object_detection (68 points) of the dlib.rectangle `face` in `image`,
        a grey uint8 (H, W) frame."""
        return self._predictor(image, face)

    def _face_near(self, image, face):
        """The face box (dlib.rectangle) in grey uint8 (H, W) `image` nearest the previous
        one, `face`, searched in a region around it, or None."""
        height, width = image.shape
        size = max(face.width(), face.height())
        half = self.region_scale * size / 2.0
        cx, cy = (face.left() + face.right()) / 2.0, (face.top() + face.bottom()) / 2.0
        x0, y0 = max(int(cx - half), 0), max(int(cy - half), 0)
        x1, y1 = min(int(cx + half), width), min(int(cy + half), height)
        if x1 - x0 < 16 or y1 - y0 < 16:
            return None
        scale = min(self.face_size / size, 2.0)
        detections = _detect(self._detector, image[y0:y1, x0:x1], scale, 0)
        if not detections:
            return None
        nearest = min(
            detections,
            key=lambda d: (d[0] + d[2] - 2 * (cx - x0)) ** 2 + (d[1] + d[3] - 2 * (cy - y0)) ** 2,
        )
        return _rectangle(nearest, x0, y0)

    def face_anywhere(self, image):
        """The largest face box (dlib.rectangle) in grey uint8 (H, W) `image`, or None:
        shrunk search on large frames first, then full resolution, then upsampled (faces
        near the detector's 80 px limit)."""
        longest = max(image.shape)
        attempts = []
        if longest > self.search_size:
            attempts.append((self.search_size / longest, 0))
        attempts += [(1.0, 0), (1.0, 1)]
        for scale, upsample in attempts:
            detections = _detect(self._detector, image, scale, upsample)
            if detections:
                largest = max(detections, key=lambda d: (d[2] - d[0]) * (d[3] - d[1]))
                return _rectangle(largest, 0, 0)
        return None


def _detect(detector, image, scale, upsample):
    """Face boxes (x0, y0, x1, y1) in `image` pixels, detecting on image resized by scale."""
    if scale != 1.0:
        size = (
            max(int(round(image.shape[1] * scale)), 1),
            max(int(round(image.shape[0] * scale)), 1),
        )
        interpolation = cv2.INTER_AREA if scale < 1.0 else cv2.INTER_LINEAR
        image = cv2.resize(image, size, interpolation=interpolation)
    return [
        (d.left() / scale, d.top() / scale, d.right() / scale, d.bottom() / scale)
        for d in detector(np.ascontiguousarray(image), upsample)
    ]


def _rectangle(box, x_offset, y_offset):
    x0, y0, x1, y1 = box
    return dlib.rectangle(
        int(round(x0 + x_offset)),
        int(round(y0 + y_offset)),
        int(round(x1 + x_offset)),
        int(round(y1 + y_offset)),
    )


def _mouth_extent(shape):
    """int (4,) x_left, y_left, x_right, y_right of landmarks 48..67 of a dlib shape."""
    points = np.array(
        [(shape.part(i).x, shape.part(i).y) for i in range(MOUTH_POINTS.start, MOUTH_POINTS.stop)]
    )
    return np.concatenate([points.min(axis=0), points.max(axis=0)])


def _grey_or_empty(frames):
    """grey(frames), or uint8 (0, 1, 1) for no frames."""
    return grey(frames) if len(frames) else np.zeros((0, 1, 1), np.uint8)


def _track_from_extents(grey_frames, extents, found, border, border_fraction=None):
    """MouthTrack from uint8 (N, H, W) grey frames and their mouth extents (N, 4)."""
    boxes, active = crop_boxes(extents, found, *grey_frames.shape[1:3], border=border,
                               border_fraction=border_fraction)
    return MouthTrack(crops=mouth_crops(grey_frames, boxes, active), active=active, boxes=boxes)
