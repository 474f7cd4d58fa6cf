"""Exports a trained model as a TensorFlow SavedModel (usable with tf.saved_model.load alone).

    python code/export.py --output_dir=exported/multispeaker-v6          # the shipped model
    python code/export.py --checkpoint_dir=runs/mine --output_dir=exported/mine

Serving signatures embed_speech (float32 [None, 15, 40, 3]), embed_mouth (uint8
[None, 9, 60, 100]) and distance (mouth, speech -> [None]); see avmatch.export. The model's
config.json (how its inputs are prepared) is copied beside saved_model.pb. The folder is
replaced only once the new export is complete.
"""
import dataclasses
import os
from pathlib import Path

from absl import flags

from avprep.cli import UsageError, reported, run

REPO = Path(__file__).resolve().parents[1]
DEFAULT_MODEL = REPO / "code" / "models" / "multispeaker-v6"

FLAGS = flags.FLAGS
flags.DEFINE_string("checkpoint_dir", str(DEFAULT_MODEL), "Trained model: a shipped model "
                    "folder or train.py's --train_dir (its best epoch when it kept one).")
flags.DEFINE_string("output_dir", None, "SavedModel folder to write (replaced whole).")


def export(checkpoint_dir, output_dir):
    """Restores checkpoint_dir's towers and writes their SavedModel; returns (checkpoint
    path, output folder)."""
    from avmatch import checkpoints
    from avmatch.config import RUN_CONFIG_NAME, read_saved_run
    from avmatch.export import export_saved_model
    from avmatch.instance import MatchingInstance
    from avprep.speech_features import SpeechFeatureConfig

    try:
        path = checkpoints.checkpoint_to_score(checkpoint_dir)
    except FileNotFoundError as error:
        raise UsageError(f"{error} (--checkpoint_dir: a shipped model folder or a train.py "
                         "--train_dir)") from None
    with reported(ValueError, TypeError, prefix=f"{checkpoint_dir}: "):
        saved = read_saved_run(checkpoint_dir)
        speech = SpeechFeatureConfig(**((saved.features or {}).get("speech") or {}))
        speech_shape = speech.cube_shape
    instance = MatchingInstance.create(saved.train.model_speech_name,
                                       saved.train.model_mouth_name, speech_shape)
    with reported(checkpoints.CheckpointError):
        checkpoints.restore_towers(path, instance)
    config = os.path.join(checkpoint_dir, RUN_CONFIG_NAME)
    extra = [config] if os.path.exists(config) else []
    with reported(OSError):
        return path, export_saved_model(instance, speech_shape, output_dir, extra)


@dataclasses.dataclass(frozen=True)
class ExportConfig:
    """The trained model to export and the SavedModel folder to write."""
    checkpoint_dir: str
    output_dir: str


def config_from_flags(values):
    """ExportConfig from parsed flags; UsageError for values that cannot work."""
    if not values.output_dir:
        raise UsageError("--output_dir is required")
    if os.path.exists(values.output_dir) and not os.path.isdir(values.output_dir):
        raise UsageError(f"--output_dir={values.output_dir} exists and is not a directory")
    return ExportConfig(checkpoint_dir=values.checkpoint_dir, output_dir=values.output_dir)


def main(argv):
    if len(argv) > 1:
        raise UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
    config = config_from_flags(FLAGS)
    path, output_dir = export(config.checkpoint_dir, config.output_dir)
    print(f"exported {path} to {output_dir} (signatures: embed_speech, embed_mouth, distance)")


if __name__ == "__main__":
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    run(main)
