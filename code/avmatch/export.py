"""A trained model as a TensorFlow SavedModel, for use without this project's code.

    loaded = tf.saved_model.load(EXPORT_DIR)
    loaded.signatures["distance"](mouth=uint8 (B, 9, 60, 100), speech=float32 (B, 15, 40, 3))
        -> {"distance": float32 (B,)}

Serving signatures (inference mode: batch norm uses its moving statistics):
  embed_speech  speech float32 [None, T, F, C] (15, 40, 3 for MFEC)  -> {"embedding": [None, 64]}
  embed_mouth   mouth uint8 [None, 9, 60, 100] (grey mouth crops)      -> {"embedding": [None, 64]}
  distance      mouth, speech as above (pairs, row by row)             -> {"distance": [None]}
The same three are plain functions of the loaded object (loaded.distance(mouth, speech)).
Inputs must be prepared as the model's training data was (its config.json "features").
"""
import os
import shutil
import tempfile

import tensorflow as tf

from avmatch.instance import l2_distances
from avprep.records import MOUTH_SHAPE


class ServingModule(tf.Module):
    """The two towers of a MatchingInstance behind fixed input signatures."""

    def __init__(self, instance, speech_shape):
        super().__init__()
        self.speech_cnn = instance.speech_net
        self.mouth_cnn = instance.mouth_net
        speech = tf.TensorSpec([None, *speech_shape], tf.float32, name="speech")
        mouth = tf.TensorSpec([None, *MOUTH_SHAPE], tf.uint8, name="mouth")
        self.embed_speech = tf.function(self._embed_speech, input_signature=[speech])
        self.embed_mouth = tf.function(self._embed_mouth, input_signature=[mouth])
        self.distance = tf.function(self._distance, input_signature=[mouth, speech])

    def _embed_speech(self, speech):
        return {"embedding": self.speech_cnn(speech, training=False)}

    def _embed_mouth(self, mouth):
        return {"embedding": self.mouth_cnn(mouth, training=False)}

    def _distance(self, mouth, speech):
        return {"distance": l2_distances(self.speech_cnn(speech, training=False),
                                         self.mouth_cnn(mouth, training=False))}

    def signatures(self):
        """The serving signatures by name."""
        return {"embed_speech": self.embed_speech, "embed_mouth": self.embed_mouth,
                "distance": self.distance}


def export_saved_model(instance, speech_shape, output_dir, extra_files=()):
    """Writes the SavedModel of `instance` (speech cubes of `speech_shape` (T, F, C)) to
    output_dir, replacing what is there only once the new one is complete (written into a
    temporary folder beside it, then renamed). extra_files: paths copied into it (e.g. the
    model's config.json, which says how to prepare the inputs). Returns output_dir."""
    module = ServingModule(instance, tuple(speech_shape))
    output_dir = os.path.abspath(output_dir)
    parent = os.path.dirname(output_dir)
    os.makedirs(parent, exist_ok=True)
    staging = tempfile.mkdtemp(prefix=".export-", dir=parent)
    try:
        tf.saved_model.save(module, staging, signatures=module.signatures())
        for path in extra_files:
            shutil.copy2(path, staging)
        os.chmod(staging, 0o755)  # mkdtemp's 0o700 would make the export private
        replace_folder(staging, output_dir)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return output_dir


def replace_folder(new, target):
    """Renames folder `new` (beside `target`, on the same file system) to `target`. An
    existing target is moved aside first (to .old-* beside it) and removed after: a reader
    finds the old folder or the new one, whole (or, between the two renames, none), never a
    mixture; a run killed between the two renames leaves the old folder whole in .old-*."""
    if not os.path.exists(target):
        os.replace(new, target)
        return
    # abspath: the parent of "model/" is not "model"
    old = tempfile.mkdtemp(prefix=".old-", dir=os.path.dirname(os.path.abspath(target)))
    os.rmdir(old)
    os.replace(target, old)
    try:
        os.replace(new, target)
    except BaseException:
        os.replace(old, target)  # a failed swap keeps the old folder where it was
        raise
    shutil.rmtree(old, ignore_errors=True)
