"""Evaluating a trained run on held-out pairs (test.py)."""
import os

from avmatch import checkpoints
from avmatch.config import TrainConfig
from avmatch.ema import WeightAverages
from avmatch.input_pipeline import load_dataset_info
from avmatch.instance import MatchingInstance
from avmatch.reporting import format_metrics, write_test_outputs
from avmatch.scoring import score_split


def dataset_for_evaluation(config, run, log=print):
    """--data_dir, else the dataset the run was trained on, else the demo dataset (made
    first if needed, reporting through `log`)."""
    if config.data_dir:
        return config.data_dir
    if run.get("data_dir") and os.path.isdir(run["data_dir"]):
        return run["data_dir"]
    from avprep.demo_data import ensure_demo_dataset
    return ensure_demo_dataset(log=log)


def evaluate_checkpoint(config, run, log=print):
    """Restores the newest checkpoint of config.checkpoint_dir, scores config.split of the
    dataset, writes the outputs into config.test_dir and returns the metrics dict (with a
    printable "summary")."""
    path = checkpoints.latest_checkpoint(config.checkpoint_dir)
    data_dir = dataset_for_evaluation(config, run, log)
    info = load_dataset_info(data_dir, required_splits=(config.split,))
    defaults = TrainConfig()
    instance = MatchingInstance.create(run.get("model_speech_name", defaults.model_speech_name),
                                       run.get("model_mouth_name", defaults.model_mouth_name),
                                       info.speech_shape)
    averages = WeightAverages(instance.trainable_variables,
                              run.get("moving_average_decay", defaults.moving_average_decay))
    checkpoints.restore_towers(path, instance, averages)
    if config.use_moving_average:
        averages.copy_to_variables()
    log(f"scoring the {config.split} split of {data_dir} with {path}"
        f"{' (moving averages)' if config.use_moving_average else ''}")
    labels, distances = score_split(instance, info, config.split, config.batch_size)
    num_folds = min(config.num_folds, len(labels) // 2)
    result = write_test_outputs(config.test_dir, labels, distances, num_folds=num_folds,
                                extra={"checkpoint": path, "data_dir": data_dir,
                                       "split": config.split,
                                       "use_moving_average": config.use_moving_average})
    result["summary"] = format_metrics(result)
    return result
