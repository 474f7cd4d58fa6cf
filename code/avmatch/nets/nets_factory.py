"""Networks by name, as the reference's nets_factory: one entry per tower.

    tower = get_network("lipread_mouth", formulation="fast", weight_decay=4e-5)

Each entry takes plain keyword arguments (formulation, weight_decay, batch_norm_decay, dtype) and
returns an unbuilt keras.Model mapping its modality's input to a (B, 64) embedding. Every
entry has an `input_shape` for one example, used to build it and by the tests.
"""
import dataclasses

from avmatch.nets.lipread_mouth import lipread_mouth
from avmatch.nets.lipread_speech import lipread_speech
from avprep.records import MOUTH_SHAPE, NUM_FILTERS, SPEECH_FRAMES


@dataclasses.dataclass(frozen=True)
class NetworkSpec:
    """A registered network: its builder, modality and one example's input shape."""
    builder: object
    modality: str
    input_shape: tuple


NETWORKS = {
    "lipread_speech": NetworkSpec(lipread_speech, "speech", (SPEECH_FRAMES, NUM_FILTERS, 3)),
    "lipread_mouth": NetworkSpec(lipread_mouth, "mouth", MOUTH_SHAPE),
}


def get_network(name, **kwargs):
    """An unbuilt tower registered under `name`; ValueError for an unknown name."""
    if name not in NETWORKS:
        raise ValueError(f"unknown network {name!r}; known: {', '.join(sorted(NETWORKS))}")
    return NETWORKS[name].builder(**kwargs)
