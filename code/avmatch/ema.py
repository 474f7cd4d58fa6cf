"""Exponential moving average of the weights (slim's moving_average_decay)."""
import tensorflow as tf


class WeightAverages(tf.Module):
    """Shadow copies of `variables`, updated after each training step.

    Like tf.train.ExponentialMovingAverage with num_updates = the global step, the decay
    used at update n is min(decay, (1 + n) / (10 + n)), so early averages are not stuck at
    the initial weights.
    """

    def __init__(self, variables, decay):
        super().__init__(name="moving_averages")
        self.decay = float(decay)
        self._variables = list(variables)
        self.shadows = [tf.Variable(tf.convert_to_tensor(v), trainable=False,
                                    aggregation=tf.VariableAggregation.ONLY_FIRST_REPLICA,
                                    name=v.path.replace("/", "__"))
                        for v in self._variables]

    def update(self, num_updates):
        """Moves every shadow towards its variable; num_updates: int scalar step count."""
        n = tf.cast(num_updates, tf.float32)
        decay = tf.minimum(self.decay, (1.0 + n) / (10.0 + n))
        for shadow, variable in zip(self.shadows, self._variables):
            shadow.assign_sub((1.0 - decay) * (shadow - tf.convert_to_tensor(variable)))

    def reset(self):
        """Restarts every average at its variable's current value (after a warm start)."""
        for shadow, variable in zip(self.shadows, self._variables):
            shadow.assign(tf.convert_to_tensor(variable))

    def copy_to_variables(self):
        """Overwrites the variables with their averages (evaluation with averaged weights)."""
        for shadow, variable in zip(self.shadows, self._variables):
            variable.assign(shadow)
