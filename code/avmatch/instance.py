"""The matching instance: embed speech, embed mouth, measure distances.

Scoring (test.py, each epoch's evaluation), the training step and later the sync checker all
go through this one object, so they agree on how a pair is scored: score = -distance.
"""
import tensorflow as tf

from avmatch.nets.nets_factory import NETWORKS, get_network


def l2_distances(speech_embeddings, mouth_embeddings):
    """float32 (N,): Euclidean distance between rows of two (N, D) embeddings."""
    return tf.sqrt(tf.reduce_sum(tf.square(speech_embeddings - mouth_embeddings), axis=-1))


def l2_distance_matrix(mouth_embeddings, speech_embeddings):
    """float (M, S): Euclidean distance of every mouth row (M, D) to every speech row (S, D).
    A floor under the square keeps sqrt's gradient finite where the distance is 0 (a masked
    entry still passes 0 * inf through tf.where)."""
    squared = tf.reduce_sum(tf.square(mouth_embeddings[:, None, :] -
                                      speech_embeddings[None, :, :]), axis=-1)
    return tf.sqrt(tf.maximum(squared, 1e-12))


def window_pairs(num_windows):
    """Labels and window indices of the 2W pairs a batch of W windows holds.

    Pair order: every window's genuine pair, then every window's impostor pair.
    Returns (labels float32 (2W,), window_index int32 (2W,)).
    """
    labels = tf.concat([tf.ones([num_windows]), tf.zeros([num_windows])], 0)
    index = tf.range(num_windows, dtype=tf.int32)
    return labels, tf.concat([index, index], 0)


class MatchingInstance:
    """The two towers of a coupled network, used as one matcher."""

    def __init__(self, speech_net, mouth_net):
        self.speech_net = speech_net
        self.mouth_net = mouth_net

    @classmethod
    def create(cls, speech_name="lipread_speech", mouth_name="lipread_mouth", speech_shape=None,
               **net_kwargs):
        """Builds both towers by factory name and creates their variables.

        speech_shape: one example's speech cube shape (T, F, C); the registered default if None.
        net_kwargs: formulation, weight_decay, batch_norm_decay and dtype, a Keras dtype
        policy name ("float32" or "mixed_bfloat16", as avmatch.precision.dtype_policy gives);
        see nets_factory.
        """
        speech_net = get_network(speech_name, **net_kwargs)
        mouth_net = get_network(mouth_name, **net_kwargs)
        speech_shape = tuple(speech_shape or NETWORKS[speech_name].input_shape)
        speech_net(tf.zeros((1,) + speech_shape))
        mouth_net(tf.zeros((1,) + NETWORKS[mouth_name].input_shape, tf.uint8))
        return cls(speech_net, mouth_net)

    @property
    def trainable_variables(self):
        return self.speech_net.trainable_variables + self.mouth_net.trainable_variables

    @property
    def variables(self):
        return self.speech_net.variables + self.mouth_net.variables

    def embed_speech(self, speech, training=False, sample_weight=None, update_statistics=True):
        """(B, T, F, C) speech cubes -> (B, 64). update_statistics=False with training=True:
        batch statistics without moving the batch-norm averages."""
        return self.speech_net(speech, training=training, sample_weight=sample_weight,
                               update_statistics=update_statistics)

    def embed_mouth(self, mouth, training=False, sample_weight=None, update_statistics=True):
        """(B, 9, 60, 100) mouth cubes -> (B, 64); update_statistics as embed_speech."""
        return self.mouth_net(mouth, training=training, sample_weight=sample_weight,
                              update_statistics=update_statistics)

    def regularization_loss(self):
        return self.speech_net.regularization_loss() + self.mouth_net.regularization_loss()

    def window_embeddings(self, mouth, speech_genuine, speech_impostor, training=False,
                          pair_weights=None, update_statistics=True):
        """Embeddings of W windows for their 2W pairs (order of `window_pairs`).

        The mouth tower runs once per window, not once per pair. With `pair_weights` (2W,),
        batch norm weighs each mouth by the number of its pairs that count and each speech cube
        by its pair's weight, which is what running the towers on the kept pairs alone does.
        update_statistics=False (with training=True): batch statistics, moving averages kept.

        Args:
          mouth: (W, 9, 60, 100); speech_genuine, speech_impostor: (W, T, F, C).
        Returns:
          (mouth embeddings (W, D), speech embeddings (2W, D): genuine rows, then impostor).
        """
        num_windows = tf.shape(mouth)[0]
        _, window_index = window_pairs(num_windows)
        mouth_weights = None
        if pair_weights is not None:
            mouth_weights = tf.math.unsorted_segment_sum(pair_weights, window_index, num_windows)
        speech = tf.concat([speech_genuine, speech_impostor], 0)
        mouth_embeddings = self.embed_mouth(mouth, training=training, sample_weight=mouth_weights,
                                            update_statistics=update_statistics)
        speech_embeddings = self.embed_speech(speech, training=training,
                                              sample_weight=pair_weights,
                                              update_statistics=update_statistics)
        return mouth_embeddings, speech_embeddings

    def window_distances(self, mouth, speech_genuine, speech_impostor, training=False,
                         pair_weights=None, update_statistics=True):
        """float32 (2W,): distances of the 2W pairs of W windows (order of `window_pairs`);
        arguments as `window_embeddings`."""
        mouth_embeddings, speech_embeddings = self.window_embeddings(
            mouth, speech_genuine, speech_impostor, training, pair_weights, update_statistics)
        _, window_index = window_pairs(tf.shape(mouth)[0])
        return l2_distances(speech_embeddings, tf.gather(mouth_embeddings, window_index))

    def pair_distances(self, mouth, speech, training=False, update_statistics=True):
        """Distances of N independent pairs: mouth (N, 9, 60, 100), speech (N, T, F, C) -> (N,).
        training / update_statistics: batch-norm mode, as in embed_speech."""
        mode = dict(training=training, update_statistics=update_statistics)
        return l2_distances(self.embed_speech(speech, **mode), self.embed_mouth(mouth, **mode))
