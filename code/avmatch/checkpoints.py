"""Checkpoints: saving and resuming a run, fine-tuning from another run's checkpoint.

A checkpoint holds both towers under the reference's scope names (speech_cnn/...,
mouth_cnn/...), the optimiser, the moving averages of the weights and the run's progress
(epoch and step within the epoch), so an interrupted run resumes where it stopped.

Problems raise plain exceptions about the checkpoint (FileNotFoundError, CheckpointError, a
ValueError); the scripts say which flag to change.
"""
import collections
import os

import tensorflow as tf
from google.protobuf.message import DecodeError
from tensorflow.core.protobuf import trackable_object_graph_pb2

VALUE_SUFFIX = "/.ATTRIBUTES/VARIABLE_VALUE"
# What TensorFlow raises for a damaged checkpoint depends on where the damage is: a bad
# checksum (OpError), an object graph that does not parse (DecodeError, IndexError, KeyError)
# or one that does not match the towers (AssertionError, ValueError).
_UNREADABLE = (tf.errors.OpError, DecodeError, IndexError, KeyError, AssertionError,
               ValueError, RuntimeError)


class CheckpointError(ValueError):
    """A checkpoint that cannot be used: unreadable, damaged, or without the variables
    needed."""


def training_checkpoint(instance, optimizer, averages, progress):
    """tf.train.Checkpoint of a training run; progress: dict of int64 tf.Variables."""
    return tf.train.Checkpoint(speech_cnn=instance.speech_net, mouth_cnn=instance.mouth_net,
                               optimizer=optimizer, moving_averages=averages, **progress)


def _first_line(error):
    message = getattr(error, "message", None) or str(error) or type(error).__name__
    return message.strip().splitlines()[0]


def latest_checkpoint(checkpoint_dir):
    """Path prefix of the newest checkpoint in `checkpoint_dir`; FileNotFoundError if none."""
    path = tf.train.latest_checkpoint(checkpoint_dir) if tf.io.gfile.isdir(checkpoint_dir) else None
    if path is None:
        raise FileNotFoundError(f"no checkpoint in {checkpoint_dir}")
    return path


BEST_DIR = "best"


def checkpoint_to_score(checkpoint_dir, which="best"):
    """Path prefix of the checkpoint to evaluate: with which="best", the towers kept in
    CHECKPOINT_DIR/best (the epoch of the best validation AUC) when there are any, else the
    newest checkpoint of the directory itself (also for which="latest", or when
    `checkpoint_dir` is itself a folder of bare towers such as a shipped model)."""
    best = os.path.join(checkpoint_dir, BEST_DIR)
    if which == "best" and tf.io.gfile.isdir(best) and tf.train.latest_checkpoint(best):
        return tf.train.latest_checkpoint(best)
    return latest_checkpoint(checkpoint_dir)


def _holds_moving_averages(path):
    """False when checkpoint `path` is readable and holds no weight averages (a tower-only
    copy); True otherwise, so that a damaged file is named by the restore itself."""
    try:
        paths = _keys_by_path(tf.train.load_checkpoint(path))
    except _UNREADABLE:
        return True
    return any(name.startswith("moving_averages/") for name in paths)


def restore_towers(path, instance, averages=None):
    """Loads the towers (and, if given, the weight averages) of checkpoint `path`;
    CheckpointError when it does not exist, its files are damaged, do not hold these towers
    or, with `averages`, hold no weight averages."""
    if not tf.io.gfile.exists(path + ".index"):
        raise CheckpointError(f"no checkpoint {path} ({path}.index does not exist; a "
                              "checkpoint is named by its prefix, e.g. RUN/ckpt-3)")
    objects = {"speech_cnn": instance.speech_net, "mouth_cnn": instance.mouth_net}
    if averages is not None:
        if not _holds_moving_averages(path):
            raise CheckpointError(f"checkpoint {path} holds no moving averages of the weights "
                                  "(towers alone, as in best/ or a shipped model; a training "
                                  "checkpoint RUN/ckpt-N has them)")
        objects["moving_averages"] = averages
    try:
        status = tf.train.Checkpoint(**objects).restore(path).expect_partial()
        status.assert_existing_objects_matched()
    except _UNREADABLE as error:
        raise CheckpointError(f"cannot restore checkpoint {path} (damaged, or not of these "
                              f"towers): {type(error).__name__}: {_first_line(error)}") from None


def restore_run(checkpoint, path):
    """Restores a run's training_checkpoint from checkpoint `path` to resume it;
    CheckpointError when its files are damaged or were written for other towers or settings
    (a kernel of another shape, a variable this run lacks)."""
    try:
        checkpoint.restore(path).assert_existing_objects_matched()
    except _UNREADABLE as error:
        raise CheckpointError(f"cannot resume from checkpoint {path} (damaged, or written by a "
                              f"run with other towers or settings): "
                              f"{type(error).__name__}: {_first_line(error)}") from None


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
                              f"{_first_line(error)}") from None
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
                                  f"(want {list(variable.shape)}); ignore missing variables or "
                                  "exclude their scope to fine-tune without it")
        variable.assign(reader.get_tensor(key))
        copied += 1
    return copied


def trainable_subset(variables, trainable_scopes):
    """The variables to train: all of them, or those under `trainable_scopes`; ValueError
    when the scopes match no variable."""
    if not trainable_scopes:
        return list(variables)
    chosen = [v for v in variables if _in_scopes(v.path, trainable_scopes)]
    if not chosen:
        raise ValueError(f"trainable scopes {','.join(trainable_scopes)} match no variable")
    return chosen


def export_towers(instance, output_dir, step):
    """Saves the towers alone (no optimiser, no weight averages) as OUTPUT_DIR/ckpt-STEP with
    its `checkpoint` index file, the form of a shipped model that test.py and
    checkpoint_to_score read; returns the path prefix."""
    towers = tf.train.Checkpoint(speech_cnn=instance.speech_net, mouth_cnn=instance.mouth_net)
    return tf.train.CheckpointManager(towers, output_dir, max_to_keep=1).save(
        checkpoint_number=step)
