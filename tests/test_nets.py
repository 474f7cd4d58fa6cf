"""The coupled towers: output shapes, the reference's parameter counts and variable layout."""
import numpy as np
import pytest
import tensorflow as tf

from avmatch.nets import nets_factory
from avmatch.nets.layers import FORMULATIONS

# Measured on the reference graph (ORIGINAL.md): trainable, and with batch-norm moving statistics.
# The 2-D baseline's ("cnn_*") and the static-only towers' counts are this project's own.
TRAINABLE = {"lipread_speech": 164_816, "lipread_mouth": 610_096,
             "lipread_speech_static": 164_656, "cnn_speech": 707_840,
             "cnn_speech_static": 706_688, "cnn_mouth": 735_264}
TOTAL = {"lipread_speech": 165_488, "lipread_mouth": 611_216,
         "lipread_speech_static": 165_328, "cnn_speech": 709_376,
         "cnn_speech_static": 708_224, "cnn_mouth": 736_736}
HEAD_KERNELS = {"lipread_speech": (15, 1, 1, 128, 64), "lipread_mouth": (9, 1, 1, 256, 64),
                "lipread_speech_static": (15, 1, 1, 128, 64),
                "cnn_speech": (1, 1, 1, 256, 64), "cnn_speech_static": (1, 1, 1, 256, 64),
                "cnn_mouth": (1, 1, 1, 256, 64)}
FIRST_KERNELS = {"lipread_speech": (1, 5, 1, 3, 16), "lipread_mouth": (1, 3, 3, 1, 16),
                 "lipread_speech_static": (1, 5, 1, 1, 16), "cnn_speech": (1, 3, 3, 3, 64),
                 "cnn_speech_static": (1, 3, 3, 1, 64), "cnn_mouth": (1, 3, 3, 9, 32)}

CASES = [(name, formulation) for name in nets_factory.NETWORKS for formulation in FORMULATIONS]


def _count(variables):
    return int(sum(np.prod(v.shape) for v in variables))


@pytest.fixture(scope="module")
def towers():
    """(name, formulation) -> (tower, its output for a batch of 2 in the registered shape)."""
    rng = np.random.default_rng(0)
    built = {}
    for name, formulation in CASES:
        spec = nets_factory.NETWORKS[name]
        tower = nets_factory.get_network(name, formulation=formulation)
        if spec.modality == "mouth":
            inputs = tf.constant(rng.integers(0, 256, (2,) + spec.input_shape, dtype=np.uint8))
        else:
            inputs = tf.constant(rng.normal(size=(2,) + spec.input_shape).astype(np.float32))
        built[name, formulation] = (tower, tower(inputs))
    return built


def test_registry_names_every_tower():
    assert set(nets_factory.NETWORKS) == set(TRAINABLE)
    assert nets_factory.NETWORKS["lipread_speech"].input_shape == (15, 40, 3)
    assert nets_factory.NETWORKS["lipread_mouth"].input_shape == (9, 60, 100)
    assert nets_factory.input_shape("cnn_speech") == (15, 13, 3)
    with pytest.raises(ValueError, match="unknown network"):
        nets_factory.input_shape("syncnet")


@pytest.mark.parametrize("name,formulation", CASES)
def test_output_is_batch_by_64(towers, name, formulation):
    _, output = towers[name, formulation]
    assert output.shape == (2, 64)
    assert output.dtype == tf.float32
    assert np.all(np.isfinite(output.numpy()))


@pytest.mark.parametrize("name,formulation", CASES)
def test_parameter_counts_match_reference(towers, name, formulation):
    tower, _ = towers[name, formulation]
    assert _count(tower.trainable_variables) == TRAINABLE[name]
    assert _count(tower.variables) == TOTAL[name]
    moving = [v for v in tower.variables if not v.trainable]
    assert moving and all(v.path.endswith(("moving_mean", "moving_variance")) for v in moving)


@pytest.mark.parametrize("name,formulation", CASES)
def test_prelu_alphas_start_at_zero(towers, name, formulation):
    tower, _ = towers[name, formulation]
    alphas = [v for v in tower.variables if v.path.endswith("/alpha")]
    blocks = [layer for layer in tower.body if hasattr(layer, "activation")]
    assert len(alphas) == len(blocks) > 0
    for alpha in alphas:
        assert alpha.trainable
        np.testing.assert_array_equal(alpha.numpy(), 0.0)


@pytest.mark.parametrize("name,formulation", CASES)
def test_only_the_last_layer_has_a_bias(towers, name, formulation):
    tower, _ = towers[name, formulation]
    scope = tower.name
    biases = [v.path for v in tower.variables if v.path.endswith("/bias")]
    assert biases == [f"{scope}/head/bias"]
    assert tower.variables[-1].path == f"{scope}/head/bias"
    assert tower.head.use_bias and not any(
        layer.conv.use_bias for layer in tower.body if hasattr(layer, "conv"))
    # slim batch_norm(scale=False): a beta but no gamma.
    assert not [v for v in tower.variables if "gamma" in v.path]


@pytest.mark.parametrize("name,formulation", CASES)
def test_conv_kernels_are_5d_t_h_w_in_out(towers, name, formulation):
    tower, _ = towers[name, formulation]
    kernels = {v.path: tuple(v.shape) for v in tower.variables if v.path.endswith("/kernel")}
    assert kernels and all(len(shape) == 5 for shape in kernels.values())
    scope = tower.name
    first = f"{scope}/conv1/conv/kernel"
    assert kernels[first] == FIRST_KERNELS[name]
    assert kernels[f"{scope}/head/kernel"] == HEAD_KERNELS[name]
    # Every kernel but the head's has a time size of 1 (per-frame convolutions).
    assert all(shape[0] == 1 for path, shape in kernels.items() if not path.endswith("head/kernel"))


def test_unknown_network_name_is_a_value_error():
    with pytest.raises(ValueError, match="unknown network 'lipread_ear'"):
        nets_factory.get_network("lipread_ear")


@pytest.mark.parametrize("name", ["lipread_speech_static", "cnn_speech_static"])
def test_static_towers_read_the_static_channel_only(name):
    """The "-1" variants: derivative channels of the cube do not change the embedding."""
    tower = nets_factory.get_network(name)
    cube = np.random.default_rng(1).normal(size=(2,) + nets_factory.input_shape(name))
    changed = cube.copy()
    changed[..., 1:] = 0.0
    np.testing.assert_array_equal(tower(tf.constant(cube, tf.float32)).numpy(),
                                  tower(tf.constant(changed, tf.float32)).numpy())
