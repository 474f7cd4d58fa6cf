"""Training-time augmentation of window batches, so the towers see more than the training
speakers' faces, framings and recordings.

Mouth cubes (uint8 (W, 9, 60, 100)): per window, one transform for all 9 frames (motion
across frames is the signal and must stay intact): a random zoom of up to `mouth_zoom` and a
shift that keeps the crop inside the original (no invented border), a random contrast
(x - mean) * c + mean with c in [1 - mouth_contrast, 1 + mouth_contrast] and brightness
+ b * 255 with |b| <= mouth_brightness, and a horizontal flip with probability
`mouth_flip`; the result is rounded and clipped back to uint8 [0, 255]. Two more, off by
default, imitate other cameras and recordings: a rotation about the crop's centre of up to
`mouth_rotation` radians (edge pixels repeated, so no black corners), and a loss of
resolution, down to a random scale in [1 - `mouth_resolution`, 1] and back up (area
down-sampling, bilinear up-sampling).

MOUTH_AUGMENTATIONS names the mouth settings train.py offers, as changes to AugmentConfig's
defaults: "standard" (the defaults: the first four) and "strong" (a larger zoom, plus
rotation and resolution loss).

Speech cubes (float32 (W, T, F, C)): additive Gaussian noise of standard deviation
`speech_noise` (features are normalised per clip to unit variance, so 0.1 is a tenth of
their spread). A gain change would be undone by that normalisation, so there is none. Off by
default, a speaker change: a stretch of the Mel-filter axis by a random factor in
[1 - `speech_warp`, 1 + `speech_warp`] per cube (vocal tract length perturbation, Jaitly and
Hinton 2013): filter f takes the value at position a * f of the original filters (linear
interpolation) up to 80% of the axis, and a straight line from there to the last filter maps
the top of the band onto itself, so nothing is read from outside it. The time axis and the
channels (static, deltas) are warped alike: deltas are linear in time, so they commute with a
warp of frequency.
"""
import dataclasses

import tensorflow as tf

from avmatch.config import MAX_SPEECH_WARP

# The warp's knee, as a fraction of the filter axis. Factors below 1 / 0.8 = 1.25 keep it
# inside the axis, which MAX_SPEECH_WARP (0.2) ensures.
_WARP_KNEE = 0.8


@dataclasses.dataclass(frozen=True)
class AugmentConfig:
    """Strengths of the augmentations (0 switches one off); see the module doc."""
    mouth_zoom: float = 0.1
    mouth_brightness: float = 0.1
    mouth_contrast: float = 0.2
    mouth_flip: float = 0.5
    speech_noise: float = 0.1
    mouth_rotation: float = 0.0
    mouth_resolution: float = 0.0
    speech_warp: float = 0.0

    def __post_init__(self):
        for name, value in dataclasses.asdict(self).items():
            if not 0.0 <= value < 1.0 and not (name == "mouth_flip" and value == 1.0):
                raise ValueError(f"augmentation {name} must be in [0, 1), got {value}")
        if self.speech_warp > MAX_SPEECH_WARP:
            raise ValueError(f"augmentation speech_warp must be at most {MAX_SPEECH_WARP}, "
                             f"got {self.speech_warp}")


MOUTH_AUGMENTATIONS = {
    "standard": {},
    # 8 degrees of head roll, crops up to a quarter tighter, half the resolution: the spread
    # between studio (GRID) and broadcast (LRW) mouth crops.
    "strong": {"mouth_zoom": 0.25, "mouth_rotation": 0.14, "mouth_resolution": 0.5},
}


def _crop_boxes(num_windows, zoom):
    """float32 (W, 4) boxes y0, x0, y1, x1 (normalised) of side s in [1 - zoom, 1], shifted
    at random but inside the unit square."""
    side = 1.0 - tf.random.uniform([num_windows, 1], 0.0, zoom)
    corner = tf.random.uniform([num_windows, 2]) * (1.0 - side)
    return tf.concat([corner, corner + side], axis=1)


def _rotated(images, angles):
    """float32 (N, H, Wd, 1) images, each turned about its centre by angles (N,) radians."""
    height = tf.cast(tf.shape(images)[1], tf.float32)
    width = tf.cast(tf.shape(images)[2], tf.float32)
    cy, cx = (height - 1.0) / 2.0, (width - 1.0) / 2.0
    cos, sin, zeros = tf.cos(angles), tf.sin(angles), tf.zeros_like(angles)
    # Each row maps an output pixel (x, y) to the input point it samples.
    transforms = tf.stack([cos, -sin, cx - cos * cx + sin * cy,
                           sin, cos, cy - sin * cx - cos * cy, zeros, zeros], axis=1)
    return tf.raw_ops.ImageProjectiveTransformV3(
        images=images, transforms=transforms, output_shape=tf.shape(images)[1:3],
        fill_value=0.0, interpolation="BILINEAR", fill_mode="NEAREST")


def _lower_resolution(x, loss):
    """float32 (W, 9, H, Wd) -> the same shape: each window down-sampled to a random scale in
    [1 - loss, 1] (all its frames alike) and up-sampled back."""
    size = tf.shape(x)[2:4]

    def one_window(frames):
        scale = tf.random.uniform([], 1.0 - loss, 1.0)
        small = tf.maximum(tf.cast(tf.round(scale * tf.cast(size, tf.float32)), tf.int32), 1)
        shrunk = tf.image.resize(frames[..., None], small, method="area")
        return tf.image.resize(shrunk, size, method="bilinear")[..., 0]

    return tf.map_fn(one_window, x)


def augment_mouth(mouth, config):
    """uint8 (W, 9, H, Wd) -> uint8 (W, 9, H, Wd), one random transform per window."""
    shape = tf.shape(mouth)
    num_windows, frames, height, width = shape[0], shape[1], shape[2], shape[3]
    images = tf.cast(tf.reshape(mouth, [-1, height, width, 1]), tf.float32)
    boxes = tf.repeat(_crop_boxes(num_windows, config.mouth_zoom), frames, axis=0)
    images = tf.image.crop_and_resize(images, boxes, tf.range(num_windows * frames),
                                      [height, width])
    if config.mouth_rotation:
        angles = tf.random.uniform([num_windows], -config.mouth_rotation, config.mouth_rotation)
        images = _rotated(images, tf.repeat(angles, frames))
    x = tf.reshape(images, [num_windows, frames, height, width])
    if config.mouth_resolution:
        x = _lower_resolution(x, config.mouth_resolution)
    mean = tf.reduce_mean(x, axis=[1, 2, 3], keepdims=True)
    contrast = tf.random.uniform([num_windows, 1, 1, 1], 1.0 - config.mouth_contrast,
                                 1.0 + config.mouth_contrast)
    brightness = tf.random.uniform([num_windows, 1, 1, 1], -config.mouth_brightness,
                                   config.mouth_brightness) * 255.0
    x = (x - mean) * contrast + mean + brightness
    flip = tf.random.uniform([num_windows, 1, 1, 1]) < config.mouth_flip
    x = tf.where(flip, tf.reverse(x, axis=[3]), x)
    return tf.cast(tf.clip_by_value(tf.round(x), 0.0, 255.0), tf.uint8)


def warp_positions(factors, num_filters):
    """float32 (W,) warp factors -> float32 (W, F) positions on the original filter axis that
    each output filter reads: factor * f up to the knee, then a line to the last filter."""
    top = float(num_filters - 1)
    knee = _WARP_KNEE * top
    f = tf.range(num_filters, dtype=tf.float32)[None, :]
    a = factors[:, None]
    above = knee * a + (f - knee) * (top - knee * a) / (top - knee)
    return tf.where(f <= knee, f * a, above)


def warped_speech(speech, factors):
    """float32 (W, T, F, C) -> the same shape, window w's filter axis stretched by factors[w]
    (linear interpolation between neighbouring filters)."""
    num_filters = speech.shape[2]
    positions = tf.clip_by_value(warp_positions(factors, num_filters), 0.0, num_filters - 1.0)
    below = tf.minimum(tf.floor(positions), num_filters - 2.0)
    weight = (positions - below)[:, None, :, None]
    below = tf.cast(below, tf.int32)
    lower = tf.gather(speech, below, axis=2, batch_dims=1)
    upper = tf.gather(speech, below + 1, axis=2, batch_dims=1)
    return lower + weight * (upper - lower)


def augment_speech(speech, config):
    """float32 (W, T, F, C) -> the same, Mel axis warped (if speech_warp) and
    N(0, speech_noise^2) noise added."""
    if config.speech_warp:
        factors = tf.random.uniform([tf.shape(speech)[0]], 1.0 - config.speech_warp,
                                    1.0 + config.speech_warp)
        speech = warped_speech(speech, factors)
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
