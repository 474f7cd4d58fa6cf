"""Scoring a split: the distance of every pair, in the order the dataset holds them."""
import numpy as np
import tensorflow as tf

from avmatch.input_pipeline import window_batches


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
