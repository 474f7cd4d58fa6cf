"""The training step: select pairs in inference mode, then learn from the kept pairs only.

A batch holds W windows; each gives a genuine and an impostor pair (2W pairs, the order of
instance.window_pairs). One step:
  (a) distances of all 2W pairs as the reference computes them in its selection pass: batch
      norm normalises with this batch's statistics (the reference never told batch norm it
      was not training) and the moving averages are left untouched;
  (b) the pairs to keep (pair_selection.hard_pair_mask or adaptive_pair_mask by
      StepConfig.selection_rule, or every pair without selection);
  (c) forward and backward in training mode where the kept pairs alone count: dropped pairs
      get weight 0 in the loss and in the batch statistics, so they contribute no gradient and
      the result equals running the towers on the kept pairs alone (the reference's way,
      `pairwise_loss`), while the shapes stay static and the mouth tower runs once per window;
  (d) the optimiser update and the moving average of the weights.
"""
import dataclasses

import tensorflow as tf

from avmatch.instance import l2_distance_matrix, l2_distances, window_pairs
from avmatch.losses import contrastive_loss, offset_loss
from avmatch.pair_selection import (adaptive_pair_mask, all_pairs_mask, hard_pair_mask,
                                    offset_pair_mask)


@dataclasses.dataclass(frozen=True)
class StepConfig:
    """What the step needs besides the networks: margins and the selection rule.

    selection_rule: "hard" (max_gen + hard_margin) or "adaptive" (max_gen * (1 +
    adaptive_margin_ratio)); used when online_pair_selection is on.
    offset_loss_weight > 0 adds that times losses.offset_loss (each mouth against the audio
    of the batch's other windows of its video and its own impostor, at offset_temperature);
    the batch must then hold video and start_frame (input_pipeline, run_windows).
    """
    margin_gen: float = 0.0
    margin_imp: float = 100.0
    hard_margin: float = 10.0
    online_pair_selection: bool = True
    selection_rule: str = "hard"
    adaptive_margin_ratio: float = 0.2
    offset_loss_weight: float = 0.0
    offset_temperature: float = 10.0


def kept_pairs(instance, batch, config):
    """bool (2W,): the pairs of `batch` that the training pass learns from.

    The distances use batch statistics over the whole batch (each mouth cube counts once per
    pair in the reference's layout, i.e. twice, which gives the same moments as once), so
    `hard_margin` applies to the distances the reference's selection saw; with the moving
    statistics, which start at (0, 1), they were about 20x smaller early in training.
    """
    labels, _ = window_pairs(tf.shape(batch["mouth"])[0])
    if not config.online_pair_selection:
        return all_pairs_mask(labels)
    distances = instance.window_distances(batch["mouth"], batch["speech_genuine"],
                                          batch["speech_impostor"], training=True,
                                          update_statistics=False)
    if config.selection_rule == "adaptive":
        return adaptive_pair_mask(labels, distances, config.adaptive_margin_ratio)
    return hard_pair_mask(labels, distances, config.hard_margin)


def weighted_loss(instance, batch, pair_weights, config, global_weight=None):
    """Loss of the kept pairs in training mode (plus the offset loss, see StepConfig).

    Args:
      batch: dict mouth (W, 9, 60, 100), speech_genuine / speech_impostor (W, T, F, C);
        with the offset loss also video (W,) and start_frame (W,).
      pair_weights: float32 (2W,), 1 for a kept pair, 0 for a dropped one.
      global_weight: the kept-pair count over all replicas (None: this batch's count).
    Returns:
      (total loss scalar, distances (2W,)). Under a distribution strategy the replica losses
      add up to the loss of the whole batch.
    """
    num_windows = tf.shape(batch["mouth"])[0]
    labels, window_index = window_pairs(num_windows)
    mouth_embeddings, speech_embeddings = instance.window_embeddings(
        batch["mouth"], batch["speech_genuine"], batch["speech_impostor"], training=True,
        pair_weights=pair_weights)
    distances = l2_distances(speech_embeddings, tf.gather(mouth_embeddings, window_index))
    data_loss = contrastive_loss(labels, distances, config.margin_gen, config.margin_imp,
                                 weights=pair_weights)
    replicas = tf.distribute.get_strategy().num_replicas_in_sync
    if global_weight is not None:
        data_loss = data_loss * tf.reduce_sum(pair_weights) / tf.maximum(global_weight, 1.0)
    total = data_loss + instance.regularization_loss() / replicas
    if config.offset_loss_weight:
        total += config.offset_loss_weight * offset_term(
            mouth_embeddings, speech_embeddings[:num_windows], distances, batch,
            config.offset_temperature) / replicas
    return total, distances


def offset_term(mouth_embeddings, genuine_embeddings, distances, batch, temperature):
    """losses.offset_loss of W windows: mouth i against its aligned audio, the aligned audio
    of the batch's other windows of its video (other offsets) and its impostor audio.

    mouth_embeddings, genuine_embeddings: (W, D); distances: (2W,) in window_pairs order.
    """
    num_windows = tf.shape(mouth_embeddings)[0]
    cross = l2_distance_matrix(mouth_embeddings, genuine_embeddings)
    shifted = tf.concat([cross, distances[num_windows:, None]], axis=1)
    mask = tf.concat([offset_pair_mask(batch["video"], batch["start_frame"]),
                      tf.ones([num_windows, 1], tf.bool)], axis=1)
    return offset_loss(distances[:num_windows], shifted, mask, temperature)


def pairwise_loss(instance, batch, keep, config):
    """The reference's way, for tests and the baseline: gather the kept pairs and run the
    towers on them (a mouth cube once per kept pair). batch: W windows as in weighted_loss;
    keep: bool (2W,). Returns (total loss scalar, distances (K,) of the K kept pairs)."""
    labels, window_index = window_pairs(tf.shape(batch["mouth"])[0])
    speech = tf.concat([batch["speech_genuine"], batch["speech_impostor"]], 0)
    mouth = tf.boolean_mask(tf.gather(batch["mouth"], window_index), keep)
    speech = tf.boolean_mask(speech, keep)
    distances = l2_distances(instance.embed_speech(speech, training=True),
                             instance.embed_mouth(mouth, training=True))
    loss = contrastive_loss(tf.boolean_mask(labels, keep), distances, config.margin_gen,
                            config.margin_imp)
    return loss + instance.regularization_loss(), distances


class TrainStep:
    """One compiled training step over a distribution strategy.

    __call__(batch) with a distributed batch of W windows returns a dict:
      loss: contrastive + weight decay, summed over replicas (scalar);
      distances: (2W,) training-mode distances; labels: (2W,); kept: bool (2W,).
    """

    def __init__(self, instance, optimizer, variables, averages, config, strategy,
                 jit_compile=False):
        self.instance = instance
        self.optimizer = optimizer
        self.variables = list(variables)
        self.averages = averages
        self.config = config
        self.strategy = strategy
        # A nested tf.function may not hold the replicas' all_reduce (merge_call) under a
        # multi-replica strategy, so the replica step is nested only for XLA, on one replica.
        if jit_compile and strategy.num_replicas_in_sync > 1:
            raise ValueError("jit_compile needs a single replica")
        self._replica_fn = (tf.function(self._replica_step, jit_compile=True) if jit_compile
                            else self._replica_step)
        self._step = tf.function(self._distributed_step)

    def _replica_step(self, batch):
        keep = kept_pairs(self.instance, batch, self.config)
        weights = tf.cast(keep, tf.float32)
        context = tf.distribute.get_replica_context()
        global_weight = context.all_reduce(tf.distribute.ReduceOp.SUM, tf.reduce_sum(weights))
        with tf.GradientTape() as tape:
            total, distances = weighted_loss(self.instance, batch, weights, self.config,
                                                global_weight)
        grads = tape.gradient(total, self.variables)
        return total, distances, keep, grads

    def _distributed_step(self, batch):
        def step_fn(batch):
            total, distances, keep, grads = self._replica_fn(batch)
            # Keras optimisers sum the replicas' gradients themselves.
            self.optimizer.apply_gradients(zip(grads, self.variables))
            self.averages.update(self.optimizer.iterations)
            labels, _ = window_pairs(tf.shape(batch["mouth"])[0])
            return total, distances, labels, keep

        total, distances, labels, keep = self.strategy.run(step_fn, args=(batch,))
        reduce = self.strategy.experimental_local_results
        return {"loss": self.strategy.reduce(tf.distribute.ReduceOp.SUM, total, axis=None),
                "distances": tf.concat(reduce(distances), 0),
                "labels": tf.concat(reduce(labels), 0),
                "kept": tf.concat(reduce(keep), 0)}

    def __call__(self, batch):
        return self._step(batch)
