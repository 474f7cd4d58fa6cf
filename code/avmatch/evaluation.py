"""Evaluating a trained run on held-out pairs (test.py)."""
import numpy as np

from avmatch import checkpoints, metrics, precision
from avmatch.ema import WeightAverages
from avmatch.input_pipeline import DatasetError, load_dataset_info, model_features
from avmatch.instance import MatchingInstance
from avmatch.nets.nets_factory import input_shape
from avmatch.reporting import format_metrics, write_test_outputs
from avmatch.scoring import offset_ranking, score_split
from avprep import records


def check_features(run, manifest, data_dir):
    """Raises DatasetError when the dataset's speech features or mouth crop (its manifest) are
    not those the model was trained on (run: its config.SavedRun); runs that recorded none
    (or trained on a dataset without feature settings) are not checked."""
    trained, found = run.features, model_features(manifest)
    if trained and trained.get("speech") is not None and trained != found:
        raise DatasetError(f"the model was trained on features {trained}, but {data_dir} holds "
                         f"{found}: build the dataset with the model's settings")


def evaluate_checkpoint(config, run, log=print):
    """Restores the checkpoint of config.checkpoint_dir chosen by config.checkpoint (see
    checkpoints.checkpoint_to_score) into the towers of `run` (the run's config.SavedRun,
    from config.read_saved_run), scores config.split of config.data_dir (the script chose the
    dataset), writes the outputs into config.test_dir and returns the metrics dict (with a
    printable "summary", and "groups": metrics per source or speaker when config.group_by
    is set)."""
    # the best checkpoint keeps the towers only: the moving averages live in the latest
    which = "latest" if config.use_moving_average else config.checkpoint
    path = checkpoints.checkpoint_to_score(config.checkpoint_dir, which)
    data_dir = config.data_dir
    info = load_dataset_info(data_dir, required_splits=(config.split,),
                             expected_speech=input_shape(run.train.model_speech_name)[:2])
    check_features(run, records.read_manifest(data_dir), data_dir)
    instance = MatchingInstance.create(run.train.model_speech_name, run.train.model_mouth_name,
                                       info.speech_shape,
                                       dtype=precision.dtype_policy(config.precision))
    averages = None
    if config.use_moving_average:
        averages = WeightAverages(instance.trainable_variables, run.train.moving_average_decay)
    checkpoints.restore_towers(path, instance, averages)
    if averages is not None:
        averages.copy_to_variables()
    log(f"scoring the {config.split} split of {data_dir} with {path}"
        f"{' (moving averages)' if config.use_moving_average else ''}")
    labels, distances, video_ids = score_split(instance, info, config.split, config.batch_size,
                                               with_video_ids=True)
    num_folds = min(config.num_folds, len(labels) // 2)
    extra = {"checkpoint": path, "data_dir": data_dir, "split": config.split,
             "use_moving_average": config.use_moving_average,
             "precision": precision.resolve(config.precision)}
    if config.group_by:
        extra["group_by"] = config.group_by
        extra["groups"] = metrics.group_metrics(
            labels, distances, pair_groups(video_ids, info.data_dir, config.group_by))
    if config.offset_windows:
        extra["offset_ranking"] = dict(
            offset_ranking(instance, info, config.split, config.offset_windows),
            window_count=config.offset_windows)
    result = write_test_outputs(config.test_dir, labels, distances, num_folds=num_folds,
                                extra=extra)
    result["summary"] = format_metrics(result)
    if config.offset_windows:
        result["summary"] += "\n" + format_offset_ranking(extra["offset_ranking"])
    return result


def format_offset_ranking(ranking):
    """One line for scoring.offset_ranking's dict (with its window_count)."""
    return (f"own audio nearer than every other offset of its video (within "
            f"{ranking['window_count']} consecutive windows): {ranking['nearest']} of "
            f"{ranking['windows']} windows ({ranking['share']:.3f}; chance "
            f"{ranking['chance']:.3f})")


def pair_groups(video_ids, data_dir, group_by):
    """str (n,): the source or speaker (group_by) of each pair's video, from the manifest
    (datasets built before sources and speakers were recorded: "unknown")."""
    files = records.read_manifest(data_dir).get("files", [])
    group_of = {item["video_id"]: str(item.get(group_by) or "unknown") for item in files}
    return np.array([group_of.get(video_id, "unknown") for video_id in video_ids])


def format_groups(groups, group_by):
    """Printable table of group_metrics' result, one line per group."""
    lines = [f"{group_by:<24} {'pairs':>7} {'EER':>7} {'AUC':>7} {'AP':>7}"]
    for name, row in groups.items():
        lines.append(f"{name[:24]:<24} {row['num_pairs']:>7d} {100 * row['eer']:>6.2f}% "
                     f"{row['auc']:>7.4f} {row['ap']:>7.4f}")
    return "\n".join(lines)
