"""Optimisers and learning-rate schedules with the reference's flags and defaults."""
import keras

from avmatch.config import DECAY_TYPES, OPTIMIZERS


def learning_rate_schedule(config, steps_per_epoch):
    """The learning rate as a function of the global step.

    exponential: staircase decay by learning_rate_decay_factor every num_epochs_per_decay
    epochs' worth of steps; fixed: constant; polynomial: linear from learning_rate to
    end_learning_rate over the same number of steps, then constant.
    """
    decay_steps = max(1, int(steps_per_epoch * config.num_epochs_per_decay))
    if config.learning_rate_decay_type == "exponential":
        return keras.optimizers.schedules.ExponentialDecay(
            config.learning_rate, decay_steps, config.learning_rate_decay_factor, staircase=True)
    if config.learning_rate_decay_type == "fixed":
        return config.learning_rate
    if config.learning_rate_decay_type == "polynomial":
        return keras.optimizers.schedules.PolynomialDecay(
            config.learning_rate, decay_steps, config.end_learning_rate, power=1.0, cycle=False)
    raise ValueError(f"learning_rate_decay_type must be one of {DECAY_TYPES}, "
                     f"got {config.learning_rate_decay_type!r}")


def make_optimizer(config, schedule):
    """A Keras optimiser named by config.optimizer, driven by `schedule`."""
    if config.optimizer == "adam":
        return keras.optimizers.Adam(schedule, beta_1=config.adam_beta1, beta_2=config.adam_beta2,
                                     epsilon=config.opt_epsilon)
    if config.optimizer == "sgd":
        return keras.optimizers.SGD(schedule)
    if config.optimizer == "momentum":
        return keras.optimizers.SGD(schedule, momentum=config.momentum)
    if config.optimizer == "rmsprop":
        return keras.optimizers.RMSprop(schedule, rho=config.rmsprop_decay,
                                        momentum=config.momentum, epsilon=config.opt_epsilon)
    raise ValueError(f"optimizer must be one of {OPTIMIZERS}, got {config.optimizer!r}")


def current_learning_rate(optimizer):
    """The learning rate at the optimiser's current iteration, as a float."""
    rate = optimizer.learning_rate
    return float(rate.numpy() if hasattr(rate, "numpy") else rate)
