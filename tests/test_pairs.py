"""Windows and genuine/impostor pairs."""
import numpy as np
import pytest

from avprep import pairs

CONFIG = pairs.WindowConfig()


def _video(seconds, fps=30):
    """Crops whose every pixel is the frame index, features whose value is the frame index."""
    frames = int(round(seconds * fps))
    crops = np.broadcast_to(np.arange(frames, dtype=np.uint8)[:, None, None],
                            (frames, 60, 100)).copy()
    speech = int(round(seconds / 0.02))
    features = np.broadcast_to(np.arange(speech, dtype=np.float32)[:, None, None],
                               (speech, 40, 3)).copy()
    return crops, np.ones(frames, bool), features


def test_window_geometry():
    assert (CONFIG.speech_frames, CONFIG.hop_frames, CONFIG.shift_speech_frames) == (15, 3, 25)
    assert pairs.speech_start(9, CONFIG) == 15
    assert pairs.WindowConfig(hop_seconds=0.2).hop_frames == 6


@pytest.mark.parametrize("kwargs", [{"hop_seconds": 0.05}, {"hop_seconds": 1 / 30},
                                    {"impostor_shift": 0.51}, {"impostor_shift": 0.0},
                                    {"impostor_other_video_fraction": 1.5},
                                    {"impostor_shift_max": 0.5},
                                    {"impostor_shift": 0.1, "impostor_shift_max": 0.31}])
def test_hops_and_shifts_off_the_grid_are_refused(kwargs):
    with pytest.raises(ValueError):
        pairs.WindowConfig(**kwargs)


def test_genuine_is_aligned_and_impostor_is_shifted_inside_the_clip():
    crops, active, features = _video(4.0)
    windows = pairs.make_windows(crops, active, features, CONFIG, "clip")
    assert len(windows) == len(pairs.window_starts(120, 200, CONFIG)) == 38
    assert windows.mouth.shape == (38, 9, 60, 100) and windows.mouth.dtype == np.uint8
    assert windows.speech_genuine.shape == windows.speech_impostor.shape == (38, 15, 40, 3)
    for i, start in enumerate(windows.start_frame):
        np.testing.assert_array_equal(windows.mouth[i, :, 0, 0], np.arange(start, start + 9))
        genuine = start * 5 // 3
        np.testing.assert_array_equal(windows.speech_genuine[i, :, 0, 0],
                                      np.arange(genuine, genuine + 15))
        shift = windows.impostor_shift[i]
        assert abs(shift) == pytest.approx(0.5)
        impostor = genuine + int(round(shift / 0.02))
        assert 0 <= impostor and impostor + 15 <= len(features)
        np.testing.assert_array_equal(windows.speech_impostor[i, :, 0, 0],
                                      np.arange(impostor, impostor + 15))
    assert (windows.impostor_shift < 0).any() and (windows.impostor_shift > 0).any()


def test_drawn_shifts_cover_the_range_on_the_grid():
    crops, active, features = _video(6.0)
    ranged = pairs.WindowConfig(impostor_shift=0.06, impostor_shift_max=0.5)
    windows = pairs.make_windows(crops, active, features, ranged, "clip")
    steps = np.round(np.abs(windows.impostor_shift) / 0.02).astype(int)
    np.testing.assert_allclose(np.abs(windows.impostor_shift), steps * 0.02, atol=1e-6)
    assert steps.min() >= 3 and steps.max() <= 25 and len(set(steps.tolist())) >= 10
    genuine = windows.start_frame * 5 // 3
    np.testing.assert_array_equal(windows.speech_impostor[:, 0, 0, 0],
                                  genuine + np.sign(windows.impostor_shift) * steps)
    fixed = pairs.make_windows(crops, active, features, CONFIG, "clip")
    assert np.all(np.abs(fixed.impostor_shift) == np.float32(0.5))
    assert "impostor_shift_max" not in CONFIG.to_dict()  # the settings of older builds
    assert ranged.to_dict()["impostor_shift_max"] == 0.5


def test_directions_are_seeded_by_seed_and_video_not_by_order():
    crops, active, features = _video(6.0)
    first = pairs.make_windows(crops, active, features, CONFIG, "a").impostor_shift
    again = pairs.make_windows(crops, active, features, CONFIG, "a").impostor_shift
    other_video = pairs.make_windows(crops, active, features, CONFIG, "b").impostor_shift
    other_seed = pairs.make_windows(crops, active, features, pairs.WindowConfig(seed=5),
                                    "a").impostor_shift
    np.testing.assert_array_equal(first, again)
    assert not np.array_equal(first, other_video)
    assert not np.array_equal(first, other_seed)


def test_only_fully_tracked_windows_are_kept():
    crops, active, features = _video(3.0)
    active[40] = False
    windows = pairs.make_windows(crops, active, features, CONFIG, "clip")
    starts = set(windows.start_frame.tolist())
    assert starts.isdisjoint({33, 36, 39}) and {30, 42}.issubset(starts)
    assert windows.dropped["inactive"] == 3


def test_windows_without_room_for_a_shift_are_dropped():
    # 1.0 s: windows at 0.3 and 0.4 s are less than 0.5 s from both ends
    windows = pairs.make_windows(*_video(1.0), CONFIG, "clip")
    assert windows.dropped["no_impostor"] == 2
    assert sorted(windows.start_frame.tolist()) == [0, 3, 6, 15, 18, 21]
    # shorter than window + shift (0.8 s): nothing fits
    windows = pairs.make_windows(*_video(0.7), CONFIG, "clip")
    assert len(windows) == 0 and windows.dropped["no_impostor"] == 5
    assert windows.mouth.shape == (0, 9, 60, 100)


def test_silent_windows_and_silent_impostors_are_dropped():
    crops, active, features = _video(4.0)
    config = pairs.WindowConfig(drop_silent=True)
    rate = 16000
    audio = np.random.default_rng(0).normal(size=4 * rate)
    audio[:rate] *= 1e-3  # the first second is silent
    silent = pairs.silent_speech_frames(audio, config, rate)
    assert silent[:50].all() and not silent[50:].any()
    windows = pairs.make_windows(crops, active, features, config, "clip", silent)
    genuine = windows.start_frame * 5 // 3
    impostor = genuine + np.round(windows.impostor_shift / 0.02).astype(int)
    assert (genuine + 15 - 50 > 7).all()   # at most 7 of 15 frames silent
    assert (impostor + 15 - 50 > 7).all()
    assert windows.dropped["silent"] > 0


def test_alignment_spans_mark_silence():
    mask = pairs.speech_mask_from_spans([(0.0, 0.5, "sil"), (0.5, 1.0, "bin"),
                                         (1.0, 2.0, "sil")], 100, 0.02)
    assert not mask[:25].any() and mask[25:50].all() and not mask[50:].any()


def test_static_mouths_are_dropped():
    crops, active, features = _video(3.0)
    still = np.full_like(crops, 128)
    config = pairs.WindowConfig(drop_static=True)
    assert len(pairs.make_windows(still, active, features, config, "clip")) == 0
    assert len(pairs.make_windows(crops, active, features, config, "clip")) > 0
    assert pairs.lip_motion(crops[:9]) == pytest.approx(1.0)


def test_other_video_impostor_choice():
    rng = np.random.default_rng(0)
    replaced, donors = pairs.other_video_impostors(1000, 7, 0.3, rng)
    assert 250 < len(replaced) < 350 and len(set(replaced.tolist())) == len(replaced)
    assert donors.min() >= 0 and donors.max() < 7
    assert len(pairs.other_video_impostors(10, 7, 0.0, rng)[0]) == 0
