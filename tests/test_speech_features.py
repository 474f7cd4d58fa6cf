"""Speech features against python_speech_features called directly."""

import numpy as np
import pytest
import python_speech_features as psf

from avprep.speech_features import SpeechFeatureConfig, normalize, num_frames, speech_features

RATE = 16000


def _noise(seconds, seed=0):
    return (
        np.random.default_rng(seed).normal(scale=0.1, size=int(seconds * RATE)).astype(np.float32)
    )


def test_mfec_matches_logfbank_normalised_with_deltas():
    audio = _noise(1.23)
    features = speech_features(audio, SpeechFeatureConfig())
    static = psf.logfbank(
        audio, samplerate=RATE, winlen=0.02, winstep=0.02, nfilt=40, nfft=1024, preemph=0.0
    )
    static = (static - static.mean(0)) / static.std(0)
    first = psf.delta(static, 2)
    second = psf.delta(first, 2)
    assert features.dtype == np.float32
    assert features.shape == (num_frames(audio.size, SpeechFeatureConfig()), 40, 3)
    np.testing.assert_allclose(features[..., 0], static, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(features[..., 1], first, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(features[..., 2], second, rtol=1e-4, atol=1e-4)


def test_frames_do_not_overlap_and_are_20ms():
    # a whole number of frames: 1.5 s -> exactly 75 frames of 320 samples
    assert num_frames(24000, SpeechFeatureConfig()) == 75
    assert num_frames(24001, SpeechFeatureConfig()) == 76
    assert speech_features(_noise(1.5)).shape[0] == 75


def test_frame_k_covers_samples_of_its_20ms():
    # silence, then a tone from exactly 1.0 s: frame 50 is the first loud frame
    audio = np.zeros(2 * RATE, np.float32)
    audio += np.random.default_rng(1).normal(scale=1e-4, size=audio.size).astype(np.float32)
    t = np.arange(RATE) / RATE
    audio[RATE:] += 0.5 * np.sin(2 * np.pi * 440 * t).astype(np.float32)
    energy = speech_features(audio, SpeechFeatureConfig(num_channels=1))[..., 0].mean(axis=1)
    assert energy[:50].max() < 0 < energy[50:].min()


def test_static_only_variant_is_channel_zero():
    audio = _noise(0.8, seed=3)
    full = speech_features(audio, SpeechFeatureConfig(num_channels=3))
    static = speech_features(audio, SpeechFeatureConfig(num_channels=1))
    assert static.shape == full.shape[:2] + (1,)
    np.testing.assert_array_equal(static[..., 0], full[..., 0])
    np.testing.assert_allclose(static[..., 0].mean(0), 0.0, atol=1e-5)
    np.testing.assert_allclose(static[..., 0].std(0), 1.0, atol=1e-4)


def test_mfcc_baseline_matches_python_speech_features():
    audio = _noise(1.0, seed=4)
    config = SpeechFeatureConfig(kind="mfcc")
    features = speech_features(audio, config)
    cepstra = psf.mfcc(
        audio,
        samplerate=RATE,
        winlen=0.02,
        winstep=0.02,
        numcep=13,
        nfilt=40,
        nfft=1024,
        preemph=0.0,
    )
    assert features.shape == (50, 13, 3)
    np.testing.assert_allclose(features[..., 0], normalize(cepstra), rtol=1e-4, atol=1e-4)
    assert config.to_dict()["kind"] == "mfcc"


@pytest.mark.parametrize("kwargs", [{"kind": "plp"}, {"num_channels": 4}, {"nfft": 256}])
def test_bad_configs_are_refused(kwargs):
    with pytest.raises(ValueError):
        SpeechFeatureConfig(**kwargs)


def test_too_short_or_stereo_audio_is_refused():
    with pytest.raises(ValueError):
        speech_features(np.zeros(100, np.float32))
    with pytest.raises(ValueError):
        speech_features(np.zeros((2, 16000), np.float32))
