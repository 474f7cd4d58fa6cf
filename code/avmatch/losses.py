"""The contrastive loss of the reference (auxiliary/losses.py), and a multi-way loss over
audio offsets for the sync check."""
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


def offset_loss(genuine, shifted, shifted_mask, temperature=10.0):
    """Multi-way matching over audio offsets: each mouth window must be nearer its own audio
    than the same clip's audio at other offsets (the sync check's question), as a softmax
    cross-entropy over negative distances.

    per window i with at least one candidate:
      -log( exp(-g_i / t) / (exp(-g_i / t) + sum_k m_ik * exp(-s_ik / t)) )
    Unlike the contrastive loss, no distance has to reach an absolute margin; only the order
    of the genuine distance among the candidates counts, at the scale `temperature` sets.

    Args:
      genuine: float32 (W,) distance of each mouth window to its aligned audio (label 1).
      shifted: float32 (W, K) distances of the same windows to K candidate impostor audio
        cubes (label 0), e.g. the same clip's audio at other offsets.
      shifted_mask: bool (W, K), True where a candidate counts.
      temperature: distance units per unit of logit (> 0).
    Returns:
      float32 scalar: the mean over windows with a candidate; 0 when none has one.
    """
    logits = -tf.concat([genuine[:, None], shifted], axis=1) / temperature
    mask = tf.concat([tf.ones_like(genuine[:, None], tf.bool), shifted_mask], axis=1)
    logits = tf.where(mask, logits, tf.fill(tf.shape(logits), logits.dtype.min))
    per_window = tf.reduce_logsumexp(logits, axis=1) - logits[:, 0]
    counted = tf.cast(tf.reduce_any(shifted_mask, axis=1), genuine.dtype)
    return tf.math.divide_no_nan(tf.reduce_sum(counted * per_window), tf.reduce_sum(counted))
