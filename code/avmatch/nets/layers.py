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
        y = self.convolve(x, self.kernel)
        if self.bias is not None:
            y = y + self.bias
        return y

    def convolve(self, x, kernel):
        """x convolved with `kernel` (this layer's shape; e.g. its kernel with a batch norm
        folded in), in this layer's formulation, without the bias."""
        if self.formulation == "conv3d":
            return tf.nn.conv3d(x, kernel, strides=[1] * 5, padding=self.padding)
        if self._whole_input:
            flat = tf.reshape(x, [-1, tf.reduce_prod(tf.shape(x)[1:])])
            y = tf.matmul(flat, tf.reshape(kernel, [-1, self.filters]))
            return tf.reshape(y, [-1, 1, 1, 1, self.filters])
        if self.kernel_size[0] == 1:
            folded, shape = _fold_time(x)
            return _unfold_time(
                tf.nn.conv2d(folded, kernel[0], strides=1, padding=self.padding), shape)
        return tf.nn.conv3d(x, kernel, strides=[1] * 5, padding=self.padding)


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


def _reduction_axes(x):
    return list(range(x.shape.rank - 1))


def _per_sample(sample_weight, x):
    """sample_weight (B,) in x's dtype, shaped to broadcast over x (B, ..., C)."""
    return tf.reshape(tf.cast(sample_weight, x.dtype), [-1] + [1] * (x.shape.rank - 1))


def _sum_over_positions(x):
    """Per-channel sum of x (..., C) -> (C,)."""
    return tf.reduce_sum(x, _reduction_axes(x))


def _weighted_moments(x, sample_weight, channel_sum=_sum_over_positions):
    """Per-channel moments of x (B, ..., C) with per-sample weights (B,): (mean, x - mean,
    variance, total weight over samples and positions), as BatchNorm's docstring defines them.
    channel_sum: (..., C) -> (C,) (the XLA pass gives _channel_sum)."""
    w = _per_sample(sample_weight, x)
    positions = tf.cast(tf.reduce_prod(tf.shape(x)[1:-1]), x.dtype)
    total = tf.reduce_sum(w) * positions
    safe_total = tf.maximum(total, 1e-12)
    mean = channel_sum(w * x) / safe_total
    centered = x - mean
    variance = channel_sum(w * tf.square(centered)) / safe_total
    return mean, centered, variance, total


def _channel_sum(x):
    """Per-channel sum of a static-shape x (..., C) -> (C,), for XLA: summed as rows of k * C
    values (k a power of two, up to 512 values a row), then the k partial sums, because
    XLA's CPU reduction over all but a short last axis is about 3x slower (measured for
    C = 16)."""
    channels = x.shape[-1]
    rows = x.shape.num_elements() // channels
    k = 1
    while channels * k * 2 <= 512 and rows % (k * 2) == 0:
        k *= 2
    partial = tf.reduce_sum(tf.reshape(x, [-1, k * channels]), 0)
    return tf.reduce_sum(tf.reshape(partial, [k, channels]), 0)


@tf.function(jit_compile=True)
def _bn_prelu_forward(x, sample_weight, beta, alpha, epsilon):
    """Weighted training batch norm then PReLU as one XLA-compiled pass: x (B, ..., C) in
    the compute dtype, sample_weight (B,); beta, alpha (C,) in the statistics' dtype, which
    the arithmetic uses. Returns (y in x's dtype, mean, variance, rsqrt(variance + epsilon),
    total weight)."""
    mean, centered, variance, total = _weighted_moments(tf.cast(x, beta.dtype), sample_weight,
                                                        _channel_sum)
    inverse = tf.math.rsqrt(variance + epsilon)
    z = centered * inverse + beta
    return tf.cast(tf.where(z > 0, z, alpha * z), x.dtype), mean, variance, inverse, total


@tf.function(jit_compile=True)
def _bn_prelu_backward(dy, x, sample_weight, beta, alpha, mean, inverse, total):
    """Gradient of _bn_prelu_forward's y to (x, beta, alpha), recomputing the normalised
    input rather than keeping it. PReLU's is dz = dy where z > 0, else alpha * dy; batch
    norm's in closed form, with x_hat the normalised input, W the total weight and S a sum
    over all samples and positions (the weighted moments' derivatives; a sample of weight 0
    still passes dz through the normalisation):
        dx = rsqrt(variance + epsilon) * (dz - w / W * (S(dz) + x_hat * S(dz * x_hat)))"""
    x_hat = (tf.cast(x, beta.dtype) - mean) * inverse
    w = _per_sample(sample_weight, x_hat)
    z = x_hat + beta
    dy = tf.cast(dy, beta.dtype)
    dz = tf.where(z > 0, dy, alpha * dy)
    dalpha = _channel_sum(tf.minimum(z, 0.0) * dy)
    sum_dz = _channel_sum(dz)
    sum_dz_x_hat = _channel_sum(dz * x_hat)
    dx = inverse * (dz - (w / tf.maximum(total, 1e-12)) * (sum_dz + x_hat * sum_dz_x_hat))
    return tf.cast(dx, x.dtype), sum_dz, dalpha


def _train_bn_prelu(x, sample_weight, beta, alpha, epsilon):
    """PReLU(weighted training batch norm(x)) with one fused pass each way (XLA fuses the
    dozen elementwise passes and reductions of the two layers; the convolutions around stay
    TensorFlow's). x (B, ..., C); sample_weight (B,); beta, alpha (C,).
    Returns (y like x, mean, variance, total weight); only y takes a gradient."""
    @tf.custom_gradient
    def block(x, beta, alpha):
        y, mean, variance, inverse, total = _bn_prelu_forward(x, sample_weight, beta, alpha,
                                                              epsilon)

        def grad(dy, *unused_statistics_grads):
            return _bn_prelu_backward(dy, x, sample_weight, beta, alpha, mean, inverse, total)

        return (y, tf.stop_gradient(mean), tf.stop_gradient(variance),
                tf.stop_gradient(total)), grad

    return block(x, beta, alpha)


class BatchNorm(keras.layers.Layer):
    """slim.batch_norm(center=True, scale=False): y = (x - mean) / sqrt(var + eps) + beta.

    Training: batch statistics over every axis but the channel, weighted per sample by
    `sample_weight` (B,) when given, so a batch where sample i stands for w_i identical pairs
    normalises exactly as the batch with those duplicates would; a sample of weight 0 takes
    no part. The moving statistics follow with `decay` (left as they are when the total weight
    is 0), unless `update_statistics` is False: then the batch statistics normalise and the
    moving ones stay as they are (the reference's selection pass, see train_step.kept_pairs).
    Inference: the moving statistics. The training pass here is differentiated by autodiff
    (the Conv3D baseline, ConvBlock.fuse_training=False); ConvBlock's fast formulation trains
    through _train_bn_prelu instead, with this layer's variables.
    """

    def __init__(self, decay=0.999, epsilon=1e-3, **kwargs):
        super().__init__(**kwargs)
        self.decay = decay
        self.epsilon = epsilon

    def build(self, input_shape):
        channels = (int(input_shape[-1]),)
        # float32 even under a bfloat16 compute policy: the statistics are computed in float32
        self.beta = self.add_weight(name="beta", shape=channels, initializer="zeros",
                                    autocast=False)
        sync = dict(trainable=False, aggregation="mean", autocast=False)
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
        mean, _, variance, total = _weighted_moments(x, sample_weight)
        return mean, variance, total

    def call(self, x, training=False, sample_weight=None, update_statistics=True):
        if x.dtype != self.beta.dtype:
            # bfloat16 compute (precision.py): statistics and normalisation in float32
            y = self._normalize(tf.cast(x, self.beta.dtype), training, sample_weight,
                                update_statistics)
            return tf.cast(y, x.dtype)
        return self._normalize(x, training, sample_weight, update_statistics)

    def _normalize(self, x, training, sample_weight, update_statistics):
        if not training:
            mean, variance = self.moving_mean, self.moving_variance
        elif not update_statistics:
            mean, variance, _ = self._moments(x, sample_weight)
        else:
            mean, variance, total = self._moments(x, sample_weight)
            self._update_moving(mean, variance, total > 0)
        return (x - mean) * tf.math.rsqrt(variance + self.epsilon) + self.beta

    def _update_moving(self, mean, variance, has_data):
        """Moves the moving statistics toward (mean, variance) unless the batch had no weight."""
        decay = self.decay
        self.moving_mean.assign(tf.where(
            has_data, self.moving_mean * decay + mean * (1 - decay), self.moving_mean))
        self.moving_variance.assign(tf.where(
            has_data, self.moving_variance * decay + variance * (1 - decay),
            self.moving_variance))


class PReLU(keras.layers.Layer):
    """max(x, 0) + alpha * min(x, 0) with one alpha per channel, starting at 0 (a ReLU).

    formulation "fast": one select, tf.where(x > 0, x, alpha * x); "conv3d": the reference's
    relu(x) + alpha * min(x, 0), as the baseline.
    """

    def __init__(self, formulation="fast", **kwargs):
        super().__init__(**kwargs)
        self.formulation = formulation

    def build(self, input_shape):
        self.alpha = self.add_weight(
            name="alpha", shape=(int(input_shape[-1]),), initializer="zeros"
        )

    def call(self, x):
        if self.formulation == "fast":
            return tf.where(x > 0, x, self.alpha * x)
        return tf.nn.relu(x) + self.alpha * tf.minimum(x, tf.zeros_like(x))


class ConvBlock(keras.layers.Layer):
    """Conv (no bias) -> BatchNorm -> PReLU: every layer of both towers but the last.

    Inference in the "fast" formulation folds the batch norm into the convolution (kernel
    scaled by rsqrt(moving_variance + epsilon) per output channel, bias beta - moving_mean
    times that scale), computed from the variables at each call, so the scorer and the sync
    check run one conv with a bias instead of a conv and three elementwise passes; the same
    outputs up to float rounding. fold_batch_norm=False keeps the two apart (tests, baseline).
    Training in the "fast" formulation runs batch norm and PReLU as one XLA-compiled pass
    each way (_train_bn_prelu; against the closed-form gradients it replaced, 1.4x a float32
    step and 1.7x a bfloat16 one on a 2-core CPU);
    fuse_training=False runs the two layers, differentiated by autodiff (tests compare).
    """

    fold_batch_norm = True
    fuse_training = True

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
            decay=batch_norm_decay, name="batch_norm",
            dtype=self.dtype_policy
        )
        self.activation = PReLU(formulation, name="activation", dtype=self.dtype_policy)

    def regularization_loss(self):
        return self.conv.regularization_loss()

    def call(self, x, training=False, sample_weight=None, update_statistics=True):
        # (the first call builds the layers the unfolded way)
        fast = self.conv.formulation == "fast" and self.batch_norm.built
        if training and fast and self.fuse_training:
            return self._fused_training(self.conv(x), sample_weight, update_statistics)
        if not training and fast and self.fold_batch_norm:
            return self.activation(self._folded_conv(x))
        x = self.conv(x)
        x = self.batch_norm(x, training=training, sample_weight=sample_weight,
                            update_statistics=update_statistics)
        return self.activation(x)

    def _fused_training(self, x, sample_weight, update_statistics):
        """Training batch norm and PReLU of the conv output x (B, T, H, W, C) as one fused
        pass (_train_bn_prelu); sample_weight None weighs every sample 1."""
        norm = self.batch_norm
        if sample_weight is None:
            sample_weight = tf.ones(tf.shape(x)[:1], norm.beta.dtype)
        y, mean, variance, total = _train_bn_prelu(
            x, tf.cast(sample_weight, norm.beta.dtype), tf.convert_to_tensor(norm.beta),
            tf.cast(self.activation.alpha, norm.beta.dtype), norm.epsilon)
        if update_statistics:
            norm._update_moving(mean, variance, total > 0)
        return y

    def _folded_conv(self, x):
        """conv then inference batch norm as one conv with a bias: (B, T, H, W, C) -> (B, T',
        H', W', filters) in x's dtype."""
        norm = self.batch_norm
        scale = tf.math.rsqrt(norm.moving_variance + norm.epsilon)
        kernel = tf.cast(tf.cast(self.conv.kernel, scale.dtype) * scale, x.dtype)
        bias = tf.cast(norm.beta - norm.moving_mean * scale, x.dtype)
        return tf.nn.bias_add(self.conv.convolve(x, kernel), bias)
