"""Training-time augmentation of window batches, so the towers see more than the training
speakers' faces, framings and recordings.

Mouth cubes (uint8 (W, 9, 60, 100)): per window, one transform for all 9 frames (motion
across frames is the signal and must stay intact): a random zoom of up to `mouth_zoom` and a
shift that keeps the crop inside the original (no invented border), a random contrast
(x - mean) * c + mean with c in [1 - mouth_contrast, 1 + mouth_contrast] and brightness
+ b * 255 with |b| <= mouth_brightness, and a horizontal flip with probability
`mouth_flip`; the result is rounded and clipped back to uint8 [0, 255].

Speech cubes (float32 (W, T, F, C)): additive Gaussian noise of standard deviation
`speech_noise` (features are normalised per clip to unit variance, so 0.1 is a tenth of
their spread). A gain change would be undone by that normalisation, so there is none.
"""
import dataclasses

import tensorflow as tf


@dataclasses.dataclass(frozen=True)
class AugmentConfig:
    """Strengths of the augmentations (0 switches one off); see the module doc."""
    mouth_zoom: float = 0.1
    mouth_brightness: float = 0.1
    mouth_contrast: float = 0.2
    mouth_flip: float = 0.5
    speech_noise: float = 0.1

    def __post_init__(self):
        for name, value in dataclasses.asdict(self).items():
            if not 0.0 <= value < 1.0 and not (name == "mouth_flip" and value == 1.0):
                raise ValueError(f"augmentation {name} must be in [0, 1), got {value}")


def _crop_boxes(num_windows, zoom):
    """float32 (W, 4) boxes y0, x0, y1, x1 (normalised) of side s in [1 - zoom, 1], shifted
    at random but inside the unit square."""
    side = 1.0 - tf.random.uniform([num_windows, 1], 0.0, zoom)
    corner = tf.random.uniform([num_windows, 2]) * (1.0 - side)
    return tf.concat([corner, corner + side], axis=1)


def augment_mouth(mouth, config):
    """uint8 (W, 9, H, Wd) -> uint8 (W, 9, H, Wd), one random transform per window."""
    shape = tf.shape(mouth)
    num_windows, frames, height, width = shape[0], shape[1], shape[2], shape[3]
    images = tf.cast(tf.reshape(mouth, [-1, height, width, 1]), tf.float32)
    boxes = tf.repeat(_crop_boxes(num_windows, config.mouth_zoom), frames, axis=0)
    images = tf.image.crop_and_resize(images, boxes, tf.range(num_windows * frames),
                                      [height, width])
    x = tf.reshape(images, [num_windows, frames, height, width])
    mean = tf.reduce_mean(x, axis=[1, 2, 3], keepdims=True)
    contrast = tf.random.uniform([num_windows, 1, 1, 1], 1.0 - config.mouth_contrast,
                                 1.0 + config.mouth_contrast)
    brightness = tf.random.uniform([num_windows, 1, 1, 1], -config.mouth_brightness,
                                   config.mouth_brightness) * 255.0
    x = (x - mean) * contrast + mean + brightness
    flip = tf.random.uniform([num_windows, 1, 1, 1]) < config.mouth_flip
    x = tf.where(flip, tf.reverse(x, axis=[3]), x)
    return tf.cast(tf.clip_by_value(tf.round(x), 0.0, 255.0), tf.uint8)


def augment_speech(speech, config):
    """float32 (W, T, F, C) + N(0, speech_noise^2) noise."""
    if config.speech_noise == 0:
        return speech
    return speech + tf.random.normal(tf.shape(speech), stddev=config.speech_noise)


def augment_batch(batch, config):
    """A window batch dict (mouth, speech_genuine, speech_impostor) with every cube augmented;
    other keys pass through."""
    out = dict(batch)
    out["mouth"] = augment_mouth(batch["mouth"], config)
    out["speech_genuine"] = augment_speech(batch["speech_genuine"], config)
    out["speech_impostor"] = augment_speech(batch["speech_impostor"], config)
    return out
