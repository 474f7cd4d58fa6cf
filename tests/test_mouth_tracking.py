"""The reference's crop rule, the model-file error, and the fast tracker against the reference's."""
import numpy as np
import pytest

from avprep.mouth_tracking import (MissingModelError, MouthTracker, crop_boxes, load_predictor,
                                   track_reference)
from avprep.tracking_benchmark import box_iou, compare_trackers
from avprep.video_io import decode_video


@pytest.fixture(scope="module")
def predictor():
    return load_predictor()


def test_crop_is_first_mouth_box_plus_border_and_centred():
    extents = np.array([[100, 200, 140, 220], [110, 200, 150, 220]])
    boxes, active = crop_boxes(extents, np.array([True, True]), 480, 640, border=30)
    assert active.tolist() == [True, True]
    assert boxes.dtype == np.int32
    assert boxes[0].tolist() == [70, 170, 170, 250]  # 40 + 60 wide, 20 + 60 high
    assert boxes[1].tolist() == [80, 170, 180, 250]  # same size, follows the mouth centre


def test_crop_only_grows_when_the_mouth_outgrows_it():
    extents = np.array([[100, 100, 110, 110], [100, 100, 102, 102], [0 + 50, 100, 150, 110]])
    boxes, _ = crop_boxes(extents, np.ones(3, bool), 1000, 1000, border=5)
    widths = boxes[:, 2] - boxes[:, 0]
    # 20 -> 20 (a smaller mouth never shrinks it) -> 20 + 1.5 * (100 - 20) = 140
    assert widths.tolist() == [20, 20, 140]


def test_missing_and_leaving_frames_are_inactive():
    extents = np.array([[0, 0, 0, 0], [5, 50, 45, 70], [300, 200, 340, 220]])
    boxes, active = crop_boxes(extents, np.array([False, True, True]), 480, 640, border=30)
    assert active.tolist() == [False, False, True]  # no face; crop starts at x = -25
    assert boxes[:2].tolist() == [[0, 0, 0, 0], [0, 0, 0, 0]]


def test_missing_model_says_how_to_get_it(tmp_path):
    with pytest.raises(MissingModelError, match="pip install face_recognition_models"):
        load_predictor(tmp_path / "shape_predictor_68_face_landmarks.dat")
    with pytest.raises(MissingModelError, match="--predictor_path"):
        MouthTracker(predictor_path=tmp_path / "absent.dat")


def test_box_iou_of_identical_shifted_and_disjoint_boxes():
    a = np.array([[0, 0, 10, 10], [0, 0, 10, 10], [0, 0, 10, 10]])
    b = np.array([[0, 0, 10, 10], [5, 0, 15, 10], [20, 20, 30, 30]])
    assert box_iou(a, b) == pytest.approx([1.0, 1.0 / 3.0, 0.0])


def _assert_tracks_like_reference(frames, predictor, min_active):
    fast = MouthTracker(predictor=predictor).track(frames)
    assert fast.crops.shape == (len(frames), 60, 100) and fast.crops.dtype == np.uint8
    assert fast.active.dtype == bool and fast.boxes.shape == (len(frames), 4)
    assert fast.boxes.dtype == np.int32
    assert fast.active.mean() >= min_active
    assert fast.crops[fast.active].std() > 10  # real image content, not blank crops
    reference = track_reference(frames, predictor=predictor)
    both = fast.active & reference.active
    assert both.sum() >= min_active * len(frames) - 1
    assert box_iou(fast.boxes[both], reference.boxes[both]).mean() >= 0.9


def test_fast_tracker_matches_reference_on_a_small_frame_video(shared_videos, predictor):
    frames = decode_video(shared_videos / "pcavs_Audio_Source_00086.mp4", need_audio=False,
                          max_frames=40).frames
    _assert_tracks_like_reference(frames, predictor, min_active=0.9)


def test_fast_tracker_matches_reference_on_a_large_frame_video(shared_videos, predictor):
    frames = decode_video(shared_videos / "retalking_face2.mp4", need_audio=False,
                          max_frames=8).frames
    assert frames.shape[1:3] == (844, 844)
    _assert_tracks_like_reference(frames, predictor, min_active=0.9)


def test_fast_tracker_finds_grid_faces_near_the_detector_limit(shared_grid, predictor):
    clip = sorted((shared_grid / "video").glob("*.mp4"))[0]
    frames = decode_video(clip, need_audio=False, max_frames=30).frames
    _assert_tracks_like_reference(frames, predictor, min_active=0.9)


def test_compare_trackers_reports_speed_and_agreement(shared_videos):
    result = compare_trackers([shared_videos / "pcavs_Input_00010.mp4"], max_frames=15)
    assert result["frames"] == 15
    assert result["fps_fast"] > 0 and result["fps_reference"] > 0
    assert result["speedup"] == pytest.approx(result["fps_fast"] / result["fps_reference"])
    assert 0.9 <= result["mean_iou"] <= 1.0
    assert 0.0 <= result["active_agreement"] <= 1.0
    assert len(result["per_video"]) == 1
