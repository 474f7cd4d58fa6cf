"""Online pair selection: which pairs of a batch the training step learns from.

The reference's rule (train.py): max_gen = the largest distance of a genuine pair (0 when
the batch has none, as its loop starts from 0); keep every genuine pair, and every impostor
whose distance is below max_gen + hard_margin. Impostors farther away already satisfy the
metric and teach nothing.
"""
import tensorflow as tf


def hard_pair_mask(labels, distances, hard_margin=10.0):
    """bool (N,): True for the pairs to keep; labels (N,) 1 genuine / 0 impostor, distances (N,)."""
    genuine = tf.cast(labels, tf.bool)
    genuine_distances = tf.where(genuine, distances, tf.zeros_like(distances))
    max_gen = tf.reduce_max(tf.concat([genuine_distances, tf.zeros([1], distances.dtype)], 0))
    return tf.logical_or(genuine, distances < max_gen + hard_margin)


def all_pairs_mask(labels):
    """bool (N,): every pair kept (--online_pair_selection=false)."""
    return tf.ones_like(labels, dtype=tf.bool)
