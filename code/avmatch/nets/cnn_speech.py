"""The speech tower of the paper's CNN-MFCC baseline: a 2-D CNN in the style of SyncNet's
audio stream (Chung and Zisserman, 2016) on the MFCC of the 0.3 s window seen as one image
(cepstra x time), with the derivative channels, if any, as image channels."""

import tensorflow as tf

from avmatch.nets.layers import ConvBlock, MaxPool
from avmatch.nets.tower import Tower, head_conv


def cepstra_by_time(inputs, dtype=tf.float32, num_channels=None):
    """(B, T, F, C) speech cube -> `dtype` (B, 1, F, T, C'): one image per window, cepstra as
    rows and time as columns as SyncNet's audio input. num_channels: keep the first C'
    channels only (1: the static features of the "-1" variant); None keeps all."""
    x = tf.cast(inputs[..., :num_channels], dtype)
    return tf.expand_dims(tf.transpose(x, [0, 2, 1, 3]), 1)


def _pooled(size):
    """Length of an axis after a 3-wide VALID pooling with stride 2."""
    return (size - 3) // 2 + 1


def cnn_speech(
    formulation="fast",
    weight_decay=4e-5,
    batch_norm_decay=0.999,
    dtype="float32",
    num_frames=15,
    num_features=13,
    embedding_size=64,
    num_channels=None,
):
    """Builds the 2-D speech tower: (B, 15, 13, C) MFCC cubes -> (B, 64); 707,840 trainable
    parameters for C = 3, 706,688 for num_channels=1.

    As SyncNet's audio stream: two 3x3 conv blocks (64, 128), a 3x3 max pooling that halves
    time only, three 3x3 blocks (128, 128, 64), a 3x3/2 pooling, then a VALID block over what
    is left (5 x 3 for 13 cepstra and 15 frames; 256) and the head (64).
    """

    def block(filters, kernel, padding, name):
        return ConvBlock(filters, kernel, padding, formulation, weight_decay, batch_norm_decay,
                         name=name, dtype=dtype)

    # pool2 keeps rows - 2 cepstra rows (3-high, stride 1) and halves time; pool5 halves both
    rows, cols = _pooled(num_features - 2), _pooled(_pooled(num_frames))
    layers = [
        block(64, (1, 3, 3), "SAME", "conv1"),
        block(128, (1, 3, 3), "SAME", "conv2"),
        MaxPool((1, 3, 3), (1, 1, 2), formulation, name="pool2", dtype=dtype),
        block(128, (1, 3, 3), "SAME", "conv3"),
        block(128, (1, 3, 3), "SAME", "conv4"),
        block(64, (1, 3, 3), "SAME", "conv5"),
        MaxPool((1, 3, 3), (1, 2, 2), formulation, name="pool5", dtype=dtype),
        block(256, (1, rows, cols), "VALID", "fc6"),
    ]
    head = head_conv((1, 1, 1), formulation, weight_decay, embedding_size, dtype)

    def to_5d(inputs, dtype):
        return cepstra_by_time(inputs, dtype, num_channels)

    return Tower(layers, head, to_5d, name="speech_cnn", dtype=dtype)
