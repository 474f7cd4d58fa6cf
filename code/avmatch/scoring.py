"""Scoring a split: the distance of every pair, in the order the dataset holds them."""
import numpy as np
import tensorflow as tf

from avmatch.input_pipeline import window_batches
from avmatch.instance import l2_distance_matrix
from avmatch.pair_selection import offset_pair_mask


def make_scorer(instance):
    """A compiled function: window batch -> (labels (2W,), distances (2W,)), inference mode.

    Labels and distances are interleaved per window (genuine, impostor, genuine, ...), so
    consecutive folds of the scores each hold both classes.
    """
    @tf.function(reduce_retracing=True)
    def score(batch):
        num_windows = tf.shape(batch["mouth"])[0]
        distances = instance.window_distances(batch["mouth"], batch["speech_genuine"],
                                              batch["speech_impostor"], training=False)
        pairs = tf.reshape(tf.transpose(tf.reshape(distances, [2, num_windows])), [-1])
        labels = tf.tile(tf.constant([1.0, 0.0]), [num_windows])
        return labels, pairs
    return score


def score_split(instance, info, split, pairs_per_batch=128, scorer=None, with_video_ids=False):
    """Labels (1 genuine, 0 impostor) and distances of every pair of a split, as numpy (2N,),
    in make_scorer's order; with_video_ids: also the video id (str (2N,)) of each pair."""
    scorer = scorer or make_scorer(instance)
    labels, distances, video_ids = [], [], []
    for batch in window_batches(info, split, max(1, pairs_per_batch // 2),
                                with_video_id=with_video_ids):
        ids = batch.pop("video_id", None)
        batch_labels, batch_distances = scorer(batch)
        labels.append(batch_labels.numpy())
        distances.append(batch_distances.numpy())
        if ids is not None:
            video_ids.append(np.repeat([v.decode("utf-8") for v in ids.numpy()], 2))
    scored = (np.concatenate(labels), np.concatenate(distances))
    return scored + (np.concatenate(video_ids),) if with_video_ids else scored


def offset_ranking(instance, info, split, window_count=16):
    """How often a mouth window's own audio is nearer than its clip's audio at other offsets:
    the sync check's question asked of single windows.

    The split is read in the writer's order in groups of `window_count` consecutive windows
    (input_pipeline, run_windows); each mouth window is compared, in inference mode, with the
    aligned audio of every other window of its video in its group (offsets of 0.1 s
    multiples; build_dataset's hop).

    Returns a dict: windows (those with at least one other offset), nearest (of them, the
    windows whose own audio is strictly nearer than every other offset), share (nearest /
    windows) and chance (the share expected if the distances carried no information: the
    mean of 1 / (1 + other offsets)).
    """
    windows = nearest = 0
    chance = 0.0
    for batch in window_batches(info, split, window_count, run_windows=window_count):
        # the impostor cubes play no part: only the aligned audio is embedded
        distances = l2_distance_matrix(instance.embed_mouth(batch["mouth"]),
                                       instance.embed_speech(batch["speech_genuine"])).numpy()
        others = offset_pair_mask(batch["video"], batch["start_frame"]).numpy()
        counts = others.sum(axis=1)
        own = np.diag(distances)[:, None]
        beaten = np.where(others, distances > own, True).all(axis=1)
        windows += int((counts > 0).sum())
        nearest += int((beaten & (counts > 0)).sum())
        chance += float((1.0 / (1 + counts[counts > 0])).sum())
    return {"windows": windows, "nearest": nearest,
            "share": nearest / windows if windows else float("nan"),
            "chance": chance / windows if windows else float("nan")}
