"""The mouth tower (`mouth_cnn` of the reference): 2-D convolutions on each of the 9 mouth
frames, then one layer over the 9 frames of the 0.3 s window."""

import tensorflow as tf

from avmatch.nets.layers import ConvBlock, MaxPool
from avmatch.nets.tower import Tower, head_conv


def mouth_to_5d(inputs, dtype=tf.float32):
    """(B, 9, 60, 100) uint8 grey levels or float -> `dtype` (B, 9, 60, 100, 1).

    uint8 input is scaled to [0, 1] inside the graph, so cubes travel as bytes.
    """
    x = tf.cast(inputs, dtype)
    if inputs.dtype == tf.uint8:
        x = x / 255.0
    return tf.expand_dims(x, -1)


def lipread_mouth(
    formulation="fast",
    weight_decay=4e-5,
    batch_norm_decay=0.999,
    dtype="float32",
    num_frames=9,
    embedding_size=64,
):
    """Builds the mouth tower: (B, 9, 60, 100) -> (B, 64), 610,096 trainable parameters."""

    def block(filters, kernel, padding, name):
        return ConvBlock(
            filters,
            kernel,
            padding,
            formulation,
            weight_decay,
            batch_norm_decay,
            name=name,
            dtype=dtype,
        )

    def pool(name):
        return MaxPool((1, 3, 3), (1, 2, 2), formulation, name=name, dtype=dtype)

    layers = [
        block(16, (1, 3, 3), "SAME", "conv1"),
        pool("pool1"),
        block(32, (1, 3, 3), "SAME", "conv2"),
        pool("pool2"),
        block(64, (1, 3, 3), "SAME", "conv31"),
        block(64, (1, 3, 3), "SAME", "conv32"),
        pool("pool3"),
        block(128, (1, 3, 3), "SAME", "conv4"),
        pool("pool4"),
        block(256, (1, 2, 5), "VALID", "fc5"),
    ]
    head = head_conv((num_frames, 1, 1), formulation, weight_decay, embedding_size, dtype)
    return Tower(layers, head, mouth_to_5d, name="mouth_cnn", dtype=dtype)
