"""The contrastive loss of the reference (auxiliary/losses.py)."""
import tensorflow as tf


def contrastive_loss(labels, distances, margin_gen=0.0, margin_imp=100.0, weights=None):
    """Contrastive loss over pairs; label 1 = genuine pair, 0 = impostor pair.

    per pair: ( y * max(d - margin_gen, 0)^2 + (1 - y) * max(margin_imp - d, 0)^2 ) / 2
    A genuine pair is pulled in until its distance is at most margin_gen; an impostor is
    pushed out until its distance is at least margin_imp.

    Args:
      labels: (N,) 1 genuine / 0 impostor, any numeric dtype.
      distances: float32 (N,) Euclidean distances between the two embeddings.
      margin_gen, margin_imp: the genuine and impostor margins.
      weights: optional float32 (N,) per-pair weights (0 drops a pair).
    Returns:
      float32 scalar: the (weighted) mean over pairs; 0 when the weights sum to 0.
    """
    y = tf.cast(labels, distances.dtype)
    genuine = y * tf.square(tf.nn.relu(distances - margin_gen))
    impostor = (1.0 - y) * tf.square(tf.nn.relu(margin_imp - distances))
    per_pair = (genuine + impostor) / 2.0
    if weights is None:
        return tf.reduce_mean(per_pair)
    weights = tf.cast(weights, distances.dtype)
    return tf.math.divide_no_nan(tf.reduce_sum(weights * per_pair), tf.reduce_sum(weights))
