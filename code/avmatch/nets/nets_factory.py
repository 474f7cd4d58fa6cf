"""Networks by name, as the reference's nets_factory: one entry per tower.

    tower = get_network("lipread_mouth", formulation="fast", weight_decay=4e-5)

Each entry takes plain keyword arguments (formulation, weight_decay, batch_norm_decay, dtype) and
returns an unbuilt keras.Model mapping its modality's input to a (B, 64) embedding. Every
entry has an `input_shape` for one example, used to build it and by the tests.

The paper's four model/feature variants (avmatch.experiments.VARIANTS) pair these: the
ported 3-D towers ("lipread_*", MFEC) and the 2-D SyncNet-style baseline ("cnn_*", MFCC); a
"*_static" speech tower reads only the static channel of the dataset's (T, F, 3) cubes (the
"-1" variants).
"""
import dataclasses
import functools

from avmatch.nets.cnn_mouth import cnn_mouth
from avmatch.nets.cnn_speech import cnn_speech
from avmatch.nets.lipread_mouth import lipread_mouth
from avmatch.nets.lipread_speech import lipread_speech
from avprep.records import MOUTH_SHAPE, NUM_FILTERS, SPEECH_FRAMES

NUM_CEPSTRA = 13  # MFCC coefficients of the CNN-MFCC baseline (build_dataset --features=mfcc)


@dataclasses.dataclass(frozen=True)
class NetworkSpec:
    """A registered network: its builder, modality and one example's input shape."""
    builder: object
    modality: str
    input_shape: tuple


NETWORKS = {
    "lipread_speech": NetworkSpec(lipread_speech, "speech", (SPEECH_FRAMES, NUM_FILTERS, 3)),
    "lipread_speech_static": NetworkSpec(functools.partial(lipread_speech, num_channels=1),
                                         "speech", (SPEECH_FRAMES, NUM_FILTERS, 3)),
    "lipread_mouth": NetworkSpec(lipread_mouth, "mouth", MOUTH_SHAPE),
    "cnn_speech": NetworkSpec(cnn_speech, "speech", (SPEECH_FRAMES, NUM_CEPSTRA, 3)),
    "cnn_speech_static": NetworkSpec(functools.partial(cnn_speech, num_channels=1),
                                     "speech", (SPEECH_FRAMES, NUM_CEPSTRA, 3)),
    "cnn_mouth": NetworkSpec(cnn_mouth, "mouth", MOUTH_SHAPE),
}


def _spec(name):
    if name not in NETWORKS:
        raise ValueError(f"unknown network {name!r}; known: {', '.join(sorted(NETWORKS))}")
    return NETWORKS[name]


def get_network(name, **kwargs):
    """An unbuilt tower registered under `name`; ValueError for an unknown name."""
    return _spec(name).builder(**kwargs)


def input_shape(name):
    """One example's input shape for the tower `name`; ValueError for an unknown name."""
    return _spec(name).input_shape
