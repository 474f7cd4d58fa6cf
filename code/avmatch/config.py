"""Run configurations: small frozen dataclasses built from the entry scripts' flags and saved
as JSON beside the checkpoints. Library modules take these, never flags."""
import dataclasses
import json
import os
from typing import Optional

DEFAULT_TRAIN_DIR = os.path.join("runs", "lipread")
RUN_CONFIG_NAME = "config.json"  # a run's TrainConfig (to_dict), beside its checkpoints
OPTIMIZERS = ("adam", "sgd", "momentum", "rmsprop")
DECAY_TYPES = ("exponential", "fixed", "polynomial")
STRATEGIES = ("auto", "none", "mirrored", "multi_worker")
SELECTION_RULES = ("hard", "adaptive")
MAX_SPEECH_WARP = 0.2  # largest stretch of the Mel axis train.py --speech_warp accepts


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """Everything train.py reads; field names are the reference's flag names."""
    train_dir: str = DEFAULT_TRAIN_DIR
    data_dir: str = ""
    model_speech_name: str = "lipread_speech"
    model_mouth_name: str = "lipread_mouth"
    batch_size: int = 32
    num_epochs: int = 1
    log_every_n_steps: int = 1
    weight_decay: float = 4e-5
    batch_norm_decay: float = 0.999
    optimizer: str = "adam"
    adam_beta1: float = 0.9
    adam_beta2: float = 0.999
    opt_epsilon: float = 1.0
    momentum: float = 0.9
    rmsprop_decay: float = 0.9
    learning_rate_decay_type: str = "exponential"
    learning_rate: float = 0.01
    end_learning_rate: float = 1e-4
    learning_rate_decay_factor: float = 0.94
    num_epochs_per_decay: float = 5.0
    moving_average_decay: float = 0.9999
    margin_gen: float = 0.0
    margin_imp: float = 100.0
    hard_margin: float = 10.0
    online_pair_selection: bool = True
    selection_rule: str = "hard"
    adaptive_margin_ratio: float = 0.2
    offset_loss_weight: float = 0.0
    offset_temperature: float = 10.0
    offset_run_windows: int = 8
    checkpoint_path: str = ""
    checkpoint_exclude_scopes: tuple = ()
    trainable_scopes: tuple = ()
    ignore_missing_vars: bool = False
    distribution_strategy: str = "auto"
    jit_compile: bool = False
    max_checkpoints_to_keep: int = 5
    precise_bn_batches: int = 50
    augment_mouth: bool = False
    mouth_augmentation: str = "standard"
    augment_speech: bool = False
    speech_warp: float = 0.0
    early_stopping_epochs: int = 0
    max_train_windows: int = 0
    precision: str = "auto"
    seed: int = 0

    def to_dict(self):
        payload = dataclasses.asdict(self)
        payload["checkpoint_exclude_scopes"] = list(self.checkpoint_exclude_scopes)
        payload["trainable_scopes"] = list(self.trainable_scopes)
        return payload


@dataclasses.dataclass(frozen=True)
class EvalConfig:
    """Everything test.py reads."""
    checkpoint_dir: str = DEFAULT_TRAIN_DIR
    data_dir: str = ""
    test_dir: str = ""
    split: str = "test"
    batch_size: int = 128
    num_folds: int = 10
    use_moving_average: bool = False
    checkpoint: str = "best"
    group_by: str = ""
    precision: str = "auto"
    offset_windows: int = 0


def train_config_from_dict(payload):
    """TrainConfig from a dict such as TrainConfig.to_dict() gives: keys it does not know
    (a run of another version) are ignored, missing ones take their defaults."""
    fields = {field.name for field in dataclasses.fields(TrainConfig)}
    values = {key: value for key, value in payload.items() if key in fields}
    for key in ("checkpoint_exclude_scopes", "trainable_scopes"):
        if key in values:
            values[key] = tuple(values[key])
    return TrainConfig(**values)


@dataclasses.dataclass(frozen=True)
class SavedRun:
    """What a run saved in its config.json: the TrainConfig it ran with (train.data_dir: the
    dataset it trained on) and the dataset features its model depends on (None when the run
    recorded none)."""
    train: TrainConfig = dataclasses.field(default_factory=TrainConfig)
    features: Optional[dict] = None


def read_json_object(path, holds):
    """The dict in the JSON file at `path`, None when there is no such file; ValueError when
    it is not valid JSON or not an object (`holds` says what it should hold)."""
    if not os.path.exists(path):
        return None
    with open(path) as handle:
        try:
            payload = json.load(handle)
        except json.JSONDecodeError as error:
            raise ValueError(f"{path} is not valid JSON: {error}") from None
    if not isinstance(payload, dict):
        raise ValueError(f"{path} does not hold {holds}")
    return payload


def read_saved_run(train_dir):
    """The SavedRun of TRAIN_DIR/config.json, the one reader of that file; the defaults
    when the folder has none (e.g. bare towers). ValueError when it is not a JSON object."""
    payload = read_json_object(os.path.join(train_dir, RUN_CONFIG_NAME),
                               "a training configuration")
    if payload is None:
        return SavedRun()
    return SavedRun(train_config_from_dict(payload), payload.get("features"))
