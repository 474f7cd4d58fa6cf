"""The mouth tower of the paper's CNN-MFCC baseline: a 2-D CNN in the style of SyncNet's lip
stream (Chung and Zisserman, 2016), which sees the 9 frames of the 0.3 s window stacked as the
channels of one image, so time is mixed in the first layer and never modelled apart from it."""

import tensorflow as tf

from avmatch.nets.layers import ConvBlock, MaxPool
from avmatch.nets.tower import Tower, head_conv


def frames_as_channels(inputs, dtype=tf.float32):
    """(B, 9, 60, 100) uint8 grey levels or float -> `dtype` (B, 1, 60, 100, 9): one image per
    window whose channels are the frames (uint8 scaled to [0, 1], as mouth_to_5d does)."""
    x = tf.cast(inputs, dtype)
    if inputs.dtype == tf.uint8:
        x = x / 255.0
    return tf.expand_dims(tf.transpose(x, [0, 2, 3, 1]), 1)


def cnn_mouth(
    formulation="fast",
    weight_decay=4e-5,
    batch_norm_decay=0.999,
    dtype="float32",
    embedding_size=64,
):
    """Builds the 2-D mouth tower: (B, 9, 60, 100) -> (B, 64), 735,264 trainable parameters.

    Five 3x3 conv blocks (32, 64, 128, 128, 128 filters) with 3x3/2 max pooling take the
    60 x 100 image to 2 x 5; a VALID 2x5 block (256) and the head (64) follow, as in the
    3-D tower. The layers are the project's (conv, batch norm, PReLU), so the two model
    families differ only in how they treat time.
    """

    def block(filters, kernel, padding, name):
        return ConvBlock(filters, kernel, padding, formulation, weight_decay, batch_norm_decay,
                         name=name, dtype=dtype)

    def pool(name):
        return MaxPool((1, 3, 3), (1, 2, 2), formulation, name=name, dtype=dtype)

    layers = [
        block(32, (1, 3, 3), "SAME", "conv1"),
        pool("pool1"),
        block(64, (1, 3, 3), "SAME", "conv2"),
        pool("pool2"),
        block(128, (1, 3, 3), "SAME", "conv31"),
        block(128, (1, 3, 3), "SAME", "conv32"),
        pool("pool3"),
        block(128, (1, 3, 3), "SAME", "conv4"),
        pool("pool4"),
        block(256, (1, 2, 5), "VALID", "fc5"),
    ]
    head = head_conv((1, 1, 1), formulation, weight_decay, embedding_size, dtype)
    return Tower(layers, head, frames_as_channels, name="mouth_cnn", dtype=dtype)
