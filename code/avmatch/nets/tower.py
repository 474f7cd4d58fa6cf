"""A tower: a stack of ConvBlocks with pooling, ending in a biased conv to a 64-d embedding."""

import keras
import tensorflow as tf

from avmatch.nets.layers import Conv, ConvBlock


class Tower(keras.Model):
    """One modality's network.

    `to_5d` maps the modality's natural input (see its builder) to (B, T, H, W, C) in the
    tower's dtype.
    call(inputs, training, sample_weight): sample_weight (B,) optional batch-norm weights
    (see layers.BatchNorm); returns (B, embedding_size) in the weights' dtype (float32 unless
    the tower is float64).
    """

    def __init__(self, layers, head, to_5d, **kwargs):
        super().__init__(**kwargs)
        # Layers become named attributes so that checkpoints key them by the reference's
        # scope names (mouth_cnn/conv1/...); a list attribute would not be saved.
        self.layer_names = tuple(layer.name for layer in layers)
        for layer in layers:
            setattr(self, layer.name, layer)
        self.head = head
        self.to_5d = to_5d

    @property
    def body(self):
        """The layers before the head, in order."""
        return [getattr(self, name) for name in self.layer_names]

    def regularization_loss(self):
        """The L2 weight decay of every conv kernel, as slim's regularisers add it."""
        blocks = [layer for layer in self.body if isinstance(layer, ConvBlock)]
        return tf.add_n(
            [block.regularization_loss() for block in blocks] + [self.head.regularization_loss()]
        )

    def call(self, inputs, training=False, sample_weight=None, update_statistics=True):
        x = self.to_5d(inputs, self.compute_dtype)
        for layer in self.body:
            if isinstance(layer, ConvBlock):
                x = layer(x, training=training, sample_weight=sample_weight,
                          update_statistics=update_statistics)
            else:
                x = layer(x)
        # embeddings in the weights' dtype (float32 under a bfloat16 compute policy), so the
        # distances and the loss are never computed in bfloat16
        return tf.cast(tf.reshape(self.head(x), [-1, self.head.filters]),
                       self.dtype_policy.variable_dtype)


def head_conv(kernel_size, formulation, weight_decay, embedding_size=64, dtype="float32"):
    """The last layer: VALID conv with bias over the whole remaining input, no BN/activation."""
    return Conv(
        embedding_size,
        kernel_size,
        "VALID",
        formulation,
        use_bias=True,
        weight_decay=weight_decay,
        name="head",
        dtype=dtype,
    )
