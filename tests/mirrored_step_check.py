"""Runs two TrainStep calls under MirroredStrategy on two logical CPUs; prints a JSON report.

Run as a script by tests/test_train_step.py (logical devices must be configured before
TensorFlow initialises its devices, so this needs its own process).
"""
import json
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from avmatch.ema import WeightAverages  # noqa: E402
from avmatch.instance import MatchingInstance  # noqa: E402
from avmatch.train_step import StepConfig, TrainStep  # noqa: E402

WINDOWS = 4


def windows_dataset(seed):
    rng = np.random.default_rng(seed)
    data = {"mouth": rng.integers(0, 256, (2 * WINDOWS, 9, 60, 100), dtype=np.uint8),
            "speech_genuine": rng.normal(size=(2 * WINDOWS, 15, 40, 3)).astype(np.float32),
            "speech_impostor": rng.normal(size=(2 * WINDOWS, 15, 40, 3)).astype(np.float32)}
    return tf.data.Dataset.from_tensor_slices(data).batch(WINDOWS, drop_remainder=True)


def main():
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(
        cpu, [tf.config.LogicalDeviceConfiguration(), tf.config.LogicalDeviceConfiguration()])
    strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    keras.utils.set_random_seed(0)
    with strategy.scope():
        instance = MatchingInstance.create()
        variables = instance.trainable_variables
        optimizer = keras.optimizers.Adam(1e-3, epsilon=1.0)
        optimizer.build(variables)
        averages = WeightAverages(variables, decay=0.9999)
    before = [v.numpy().copy() for v in variables]
    step = TrainStep(instance, optimizer, variables, averages, StepConfig(), strategy)
    losses, shapes = [], []
    for batch in strategy.experimental_distribute_dataset(windows_dataset(1)):
        out = step(batch)
        losses.append(float(out["loss"]))
        shapes.append(list(out["distances"].shape))
    changed = sum(not np.array_equal(b, v.numpy()) for b, v in zip(before, variables))
    moved = sum(not np.array_equal(b, s.numpy()) for b, s in zip(before, averages.shadows))
    print(json.dumps({"replicas": strategy.num_replicas_in_sync, "losses": losses,
                      "iterations": int(optimizer.iterations.numpy()), "outputs_shape": shapes[0],
                      "changed_variables": changed, "num_variables": len(variables),
                      "shadows_moved": moved}))


if __name__ == "__main__":
    main()
