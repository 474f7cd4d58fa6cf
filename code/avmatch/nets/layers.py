"""Building blocks of the coupled towers, in two formulations of one function.

Every layer keeps the reference's variables (slim conv3d weights [t, h, w, in, out], batch
norm beta and moving statistics, one PReLU alpha per channel), so both formulations load the
same checkpoints:

* ``"fast"``: a kernel with time size 1 runs as a 2-D convolution on the frames folded into
  the batch, (B, T, H, W, C) -> (B*T, H, W, C); a kernel that covers its whole input with
  VALID padding (the last layer) runs as one matrix product.
* ``"conv3d"``: tf.nn.conv3d / max_pool3d on the 5-D tensor, as the reference does. Kept as
  the equivalence and speed baseline.

Tensors are always (batch, time, height, width, channels) between layers.
"""

import keras
import tensorflow as tf

FORMULATIONS = ("fast", "conv3d")


def _fold_time(x):
    """(B, T, H, W, C) -> (B*T, H, W, C) and the shape to unfold with."""
    shape = tf.shape(x)
    return tf.reshape(x, tf.concat([[-1], shape[2:]], 0)), shape


def _unfold_time(y, shape):
    """(B*T, H', W', C') -> (B, T, H', W', C')."""
    return tf.reshape(y, tf.concat([shape[:2], tf.shape(y)[1:]], 0))


class Conv(keras.layers.Layer):
    """A conv3d with the reference's kernel layout [t, h, w, in, out], stride 1.

    Input (B, T, H, W, C_in) -> (B, T', H', W', filters). `use_bias` is True only for the
    last layer of each tower; the others are followed by batch norm, which has the shift.
    """

    def __init__(
        self, filters, kernel_size, padding, formulation, use_bias=False, weight_decay=0.0, **kwargs
    ):
        super().__init__(**kwargs)
        if formulation not in FORMULATIONS:
            raise ValueError(f"formulation must be one of {FORMULATIONS}, got {formulation!r}")
        self.filters = filters
        self.kernel_size = tuple(kernel_size)
        self.padding = padding
        self.formulation = formulation
        self.use_bias = use_bias
        self.weight_decay = weight_decay

    def build(self, input_shape):
        in_channels = int(input_shape[-1])
        # slim's variance_scaling_initializer(factor=1, FAN_AVG) draws from a truncated normal.
        init = keras.initializers.VarianceScaling(1.0, "fan_avg", "truncated_normal")
        self.kernel = self.add_weight(
            name="kernel", shape=self.kernel_size + (in_channels, self.filters), initializer=init
        )
        self.bias = (
            self.add_weight(name="bias", shape=(self.filters,), initializer="zeros")
            if self.use_bias
            else None
        )
        self._whole_input = (
            self.padding == "VALID" and tuple(int(d) for d in input_shape[1:4]) == self.kernel_size
        )

    def regularization_loss(self):
        """slim.l2_regularizer: weight_decay * sum(w^2) / 2."""
        return self.weight_decay * tf.nn.l2_loss(self.kernel)

    def call(self, x):
        if self.formulation == "conv3d":
            y = tf.nn.conv3d(x, self.kernel, strides=[1] * 5, padding=self.padding)
        elif self._whole_input:
            flat = tf.reshape(x, [-1, tf.reduce_prod(tf.shape(x)[1:])])
            y = tf.matmul(flat, tf.reshape(self.kernel, [-1, self.filters]))
            y = tf.reshape(y, [-1, 1, 1, 1, self.filters])
        elif self.kernel_size[0] == 1:
            folded, shape = _fold_time(x)
            y = _unfold_time(
                tf.nn.conv2d(folded, self.kernel[0], strides=1, padding=self.padding), shape
            )
        else:
            y = tf.nn.conv3d(x, self.kernel, strides=[1] * 5, padding=self.padding)
        if self.bias is not None:
            y = y + self.bias
        return y


def _max_pool3d_exact_gradient(x, ksize, strides):
    """tf.nn.max_pool3d whose gradient goes to one maximum per window, as max_pool2d's does.

    TensorFlow's MaxPool3DGrad hands the gradient of some windows to more than one input
    (measured: 1,637,068 instead of 1,636,992 units for the mouth tower's first pooling of a
    batch of 8, with one exact tie), so the conv3d baseline would not differentiate the same
    function as the fast nets. The forward pass stays tf.nn.max_pool3d.
    """

    @tf.custom_gradient
    def pool(x):
        y = tf.nn.max_pool3d(x, ksize=ksize, strides=strides, padding="VALID")

        def grad(dy):
            folded, shape = _fold_time(x)
            dy_folded, _ = _fold_time(dy)
            y_folded, _ = _fold_time(y)
            dx = tf.raw_ops.MaxPoolGrad(
                orig_input=folded,
                orig_output=y_folded,
                grad=dy_folded,
                ksize=[1] + ksize[2:],
                strides=[1] + strides[2:],
                padding="VALID",
            )
            return tf.reshape(dx, shape)

        return y, grad

    return pool(x)


class MaxPool(keras.layers.Layer):
    """Max pooling with a [1, h, w] window and [1, sh, sw] strides, VALID padding."""

    def __init__(self, pool_size, strides, formulation, **kwargs):
        super().__init__(**kwargs)
        self.pool_size = tuple(pool_size)
        self.strides = tuple(strides)
        self.formulation = formulation

    def call(self, x):
        if self.formulation == "conv3d":
            return _max_pool3d_exact_gradient(x, [1, *self.pool_size, 1], [1, *self.strides, 1])
        folded, shape = _fold_time(x)
        y = tf.nn.max_pool2d(
            folded, ksize=self.pool_size[1:], strides=self.strides[1:], padding="VALID"
        )
        return _unfold_time(y, shape)


class BatchNorm(keras.layers.Layer):
    """slim.batch_norm(center=True, scale=False): y = (x - mean) / sqrt(var + eps) + beta.

    Training: batch statistics over every axis but the channel, weighted per sample by
    `sample_weight` (B,) when given, so a batch where sample i stands for w_i identical pairs
    normalises exactly as the batch with those duplicates would; a sample of weight 0 takes
    no part. The moving statistics follow with `decay` (left as they are when the total weight
    is 0), unless `update_statistics` is False: then the batch statistics normalise and the
    moving ones stay as they are (the reference's selection pass, see train_step.kept_pairs).
    Inference: the moving statistics.
    """

    def __init__(self, decay=0.999, epsilon=1e-3, **kwargs):
        super().__init__(**kwargs)
        self.decay = decay
        self.epsilon = epsilon

    def build(self, input_shape):
        channels = (int(input_shape[-1]),)
        self.beta = self.add_weight(name="beta", shape=channels, initializer="zeros")
        sync = dict(trainable=False, aggregation="mean")
        self.moving_mean = self.add_weight(
            name="moving_mean", shape=channels, initializer="zeros", **sync
        )
        self.moving_variance = self.add_weight(
            name="moving_variance", shape=channels, initializer="ones", **sync
        )

    def _moments(self, x, sample_weight):
        axes = list(range(x.shape.rank - 1))
        if sample_weight is None:
            mean, variance = tf.nn.moments(x, axes)
            return mean, variance, tf.constant(1.0, x.dtype)
        w = tf.reshape(tf.cast(sample_weight, x.dtype), [-1] + [1] * (x.shape.rank - 1))
        positions = tf.cast(tf.reduce_prod(tf.shape(x)[1:-1]), x.dtype)
        total = tf.reduce_sum(w) * positions
        safe_total = tf.maximum(total, 1e-12)
        mean = tf.reduce_sum(w * x, axes) / safe_total
        variance = tf.reduce_sum(w * tf.square(x - mean), axes) / safe_total
        return mean, variance, total

    def call(self, x, training=False, sample_weight=None, update_statistics=True):
        if not training:
            mean, variance = self.moving_mean, self.moving_variance
        elif not update_statistics:
            mean, variance, _ = self._moments(x, sample_weight)
        else:
            mean, variance, total = self._moments(x, sample_weight)
            has_data = total > 0
            self.moving_mean.assign(
                tf.where(
                    has_data,
                    self.moving_mean * self.decay + mean * (1 - self.decay),
                    self.moving_mean,
                )
            )
            self.moving_variance.assign(
                tf.where(
                    has_data,
                    self.moving_variance * self.decay + variance * (1 - self.decay),
                    self.moving_variance,
                )
            )
        return (x - mean) * tf.math.rsqrt(variance + self.epsilon) + self.beta


class PReLU(keras.layers.Layer):
    """max(x, 0) + alpha * min(x, 0) with one alpha per channel, starting at 0 (a ReLU)."""

    def build(self, input_shape):
        self.alpha = self.add_weight(
            name="alpha", shape=(int(input_shape[-1]),), initializer="zeros"
        )

    def call(self, x):
        return tf.nn.relu(x) + self.alpha * tf.minimum(x, tf.zeros_like(x))


class ConvBlock(keras.layers.Layer):
    """Conv (no bias) -> BatchNorm -> PReLU: every layer of both towers but the last."""

    def __init__(
        self,
        filters,
        kernel_size,
        padding,
        formulation,
        weight_decay=0.0,
        batch_norm_decay=0.999,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.conv = Conv(
            filters,
            kernel_size,
            padding,
            formulation,
            weight_decay=weight_decay,
            name="conv",
            dtype=self.dtype_policy,
        )
        self.batch_norm = BatchNorm(
            decay=batch_norm_decay, name="batch_norm", dtype=self.dtype_policy
        )
        self.activation = PReLU(name="activation", dtype=self.dtype_policy)

    def regularization_loss(self):
        return self.conv.regularization_loss()

    def call(self, x, training=False, sample_weight=None, update_statistics=True):
        x = self.conv(x)
        x = self.batch_norm(x, training=training, sample_weight=sample_weight,
                            update_statistics=update_statistics)
        return self.activation(x)
