"""Checkpoints: saving and resuming a run, fine-tuning from another run's checkpoint.

A checkpoint holds both towers under the reference's scope names (speech_cnn/...,
mouth_cnn/...), the optimiser, the moving averages of the weights and the run's progress
(epoch and step within the epoch), so an interrupted run resumes where it stopped.
"""
import collections

import tensorflow as tf
from tensorflow.core.protobuf import trackable_object_graph_pb2

from avmatch.cli import UsageError

VALUE_SUFFIX = "/.ATTRIBUTES/VARIABLE_VALUE"


class CheckpointError(UsageError):
    """No usable checkpoint where one is needed."""


def training_checkpoint(instance, optimizer, averages, progress):
    """tf.train.Checkpoint of a training run; progress: dict of int64 tf.Variables."""
    return tf.train.Checkpoint(speech_cnn=instance.speech_net, mouth_cnn=instance.mouth_net,
                               optimizer=optimizer, moving_averages=averages, **progress)


def latest_checkpoint(checkpoint_dir):
    """Path prefix of the newest checkpoint in `checkpoint_dir`; CheckpointError if none."""
    path = tf.train.latest_checkpoint(checkpoint_dir) if tf.io.gfile.isdir(checkpoint_dir) else None
    if path is None:
        raise CheckpointError(f"no checkpoint in {checkpoint_dir} (train first with code/train.py "
                              f"--train_dir={checkpoint_dir})")
    return path


def restore_towers(path, instance, averages=None):
    """Loads the towers (and, if given, the weight averages) of checkpoint `path`."""
    objects = {"speech_cnn": instance.speech_net, "mouth_cnn": instance.mouth_net}
    if averages is not None:
        objects["moving_averages"] = averages
    tf.train.Checkpoint(**objects).restore(path).expect_partial().assert_existing_objects_matched()


def _in_scopes(name, scopes):
    return any(name == scope or name.startswith(scope.rstrip("/") + "/") for scope in scopes)


def _keys_by_path(reader):
    """{object path such as speech_cnn/conv1/conv/kernel: its key in the checkpoint}.

    A checkpoint keys each variable by one path only, its shortest (in a training checkpoint
    the optimiser's and the weight averages' lists reach the weights first, e.g.
    optimizer/_trainable_variables/0), so the tower paths are read from the object graph.
    """
    if not reader.has_tensor("_CHECKPOINTABLE_OBJECT_GRAPH"):
        return {}
    graph = trackable_object_graph_pb2.TrackableObjectGraph()
    graph.ParseFromString(reader.get_tensor("_CHECKPOINTABLE_OBJECT_GRAPH"))
    keys, expanded = {}, set()
    queue = collections.deque([(0, "")])
    while queue:
        node_id, path = queue.popleft()
        node = graph.nodes[node_id]
        for attribute in node.attributes:
            if attribute.name == "VARIABLE_VALUE":
                keys[path] = attribute.checkpoint_key
        if node_id in expanded:
            continue
        expanded.add(node_id)
        for child in node.children:
            child_path = f"{path}/{child.local_name}" if path else child.local_name
            queue.append((child.node_id, child_path))
    return keys


def warm_start(instance, checkpoint_path, exclude_scopes=(), ignore_missing_vars=False):
    """Copies the towers' variables from another run's checkpoint, by variable path.

    Variables under one of `exclude_scopes` keep their fresh values. A variable that the
    checkpoint lacks, or holds with another shape, is an error unless ignore_missing_vars.
    Returns the number of variables copied.
    """
    if tf.io.gfile.isdir(checkpoint_path):
        checkpoint_path = latest_checkpoint(checkpoint_path)
    try:
        reader = tf.train.load_checkpoint(checkpoint_path)
    except (tf.errors.NotFoundError, tf.errors.DataLossError, ValueError) as error:
        raise CheckpointError(f"cannot read checkpoint {checkpoint_path}: "
                              f"{str(error).splitlines()[0]}") from None
    shapes = reader.get_variable_to_shape_map()
    keys = _keys_by_path(reader)
    copied = 0
    for variable in instance.variables:
        if _in_scopes(variable.path, exclude_scopes):
            continue
        key = keys.get(variable.path, variable.path + VALUE_SUFFIX)
        if key not in shapes or tuple(shapes[key]) != tuple(variable.shape):
            if ignore_missing_vars:
                continue
            found = "missing" if key not in shapes else f"of shape {shapes[key]}"
            raise CheckpointError(f"{checkpoint_path}: variable {variable.path} is {found} "
                                  f"(want {list(variable.shape)}); see --ignore_missing_vars and "
                                  "--checkpoint_exclude_scopes")
        variable.assign(reader.get_tensor(key))
        copied += 1
    return copied


def trainable_subset(variables, trainable_scopes):
    """The variables to train: all of them, or those under `trainable_scopes`."""
    if not trainable_scopes:
        return list(variables)
    chosen = [v for v in variables if _in_scopes(v.path, trainable_scopes)]
    if not chosen:
        raise UsageError(f"--trainable_scopes {','.join(trainable_scopes)} match no variable")
    return chosen
