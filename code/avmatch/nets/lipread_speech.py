"""The speech tower (`speech_cnn` of the reference): 1-D convolutions over the filterbank
axis of each 20 ms frame, then one layer over the 15 frames of the 0.3 s window."""

import tensorflow as tf

from avmatch.nets.layers import ConvBlock, MaxPool
from avmatch.nets.tower import Tower, head_conv


def speech_to_5d(inputs, dtype=tf.float32, num_channels=None):
    """(B, 15, 40, C) speech cube (time, filters, channels) -> the reference's (B, 15, 40, 1, C').

    num_channels: keep the first C' channels only (1: the static features of the paper's "-1"
    variants); None keeps all C.
    """
    return tf.expand_dims(tf.cast(inputs[..., :num_channels], dtype), 3)


def lipread_speech(
    formulation="fast",
    weight_decay=4e-5,
    batch_norm_decay=0.999,
    dtype="float32",
    num_frames=15,
    embedding_size=64,
    num_channels=None,
):
    """Builds the speech tower: (B, 15, 40, C) -> (B, 64); 164,816 trainable parameters for
    C = 3 (MFEC with first and second derivatives). num_channels=1 makes the tower read the
    static channel of the cube only (speech_to_5d)."""

    def block(filters, freq, name):
        return ConvBlock(
            filters,
            (1, freq, 1),
            "VALID",
            formulation,
            weight_decay,
            batch_norm_decay,
            name=name,
            dtype=dtype,
        )

    def pool(name):
        return MaxPool((1, 2, 1), (1, 2, 1), formulation, name=name, dtype=dtype)

    layers = [
        block(16, 5, "conv1"),
        pool("pool1"),
        block(32, 4, "conv21"),
        block(32, 4, "conv22"),
        pool("pool2"),
        block(64, 3, "conv31"),
        block(64, 3, "conv32"),
        block(128, 2, "fc4"),
    ]
    head = head_conv((num_frames, 1, 1), formulation, weight_decay, embedding_size, dtype)
    def to_5d(inputs, dtype):
        return speech_to_5d(inputs, dtype, num_channels)

    return Tower(layers, head, to_5d, name="speech_cnn", dtype=dtype)
