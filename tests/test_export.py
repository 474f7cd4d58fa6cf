"""code/export.py: the SavedModel gives the checkpoint's distances and embeddings."""
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

from avmatch.checkpoints import export_towers
from avmatch.instance import MatchingInstance
from avprep.records import MOUTH_SHAPE

REPO = Path(__file__).resolve().parents[1]


def run_export(*args):
    return subprocess.run([sys.executable, str(REPO / "code" / "export.py"), *args], cwd=REPO,
                          capture_output=True, text=True, timeout=600)


@pytest.fixture(scope="module")
def towers(tmp_path_factory):
    """A saved model folder of towers with random batch-norm statistics and offsets (fresh
    ones have means 0 and variances 1, which would hide a training/inference mode mix-up)."""
    tf.random.set_seed(3)
    instance = MatchingInstance.create()
    rng = np.random.default_rng(3)
    for variable in instance.variables:
        if "batch_norm" in variable.path:
            low = 0.5 if "variance" in variable.path else -0.1
            high = 1.5 if "variance" in variable.path else 0.1
            variable.assign(rng.uniform(low, high, variable.shape).astype(np.float32))
    folder = tmp_path_factory.mktemp("towers")
    export_towers(instance, str(folder), 7)
    return instance, str(folder)


@pytest.fixture(scope="module")
def exported(towers, tmp_path_factory):
    """The SavedModel code/export.py writes of `towers`."""
    output = tmp_path_factory.mktemp("export") / "saved"
    result = run_export(f"--checkpoint_dir={towers[1]}", f"--output_dir={output}")
    assert result.returncode == 0, result.stderr[-3000:]
    assert "exported" in result.stdout and (output / "saved_model.pb").is_file()
    return output


def test_saved_model_matches_the_checkpoint(towers, exported):
    instance = towers[0]
    output = exported
    loaded = tf.saved_model.load(str(output))
    assert set(loaded.signatures) == {"embed_speech", "embed_mouth", "distance"}
    rng = np.random.default_rng(0)
    mouth = tf.constant(rng.integers(0, 256, (6,) + MOUTH_SHAPE, dtype=np.uint8))
    speech = tf.constant(rng.normal(size=(6, 15, 40, 3)).astype(np.float32))
    expected = instance.pair_distances(mouth, speech).numpy()
    served = loaded.signatures["distance"](mouth=mouth, speech=speech)["distance"].numpy()
    np.testing.assert_allclose(served, expected, rtol=0, atol=1e-5)
    np.testing.assert_allclose(loaded.distance(mouth, speech)["distance"].numpy(), expected,
                               rtol=0, atol=1e-5)
    np.testing.assert_allclose(
        loaded.signatures["embed_mouth"](mouth=mouth)["embedding"].numpy(),
        instance.embed_mouth(mouth).numpy(), rtol=0, atol=1e-5)
    np.testing.assert_allclose(
        loaded.signatures["embed_speech"](speech=speech[:1])["embedding"].numpy(),
        instance.embed_speech(speech[:1]).numpy(), rtol=0, atol=1e-5)
    assert np.ptp(expected) > 1e-3  # distinct inputs, distinct distances: not a constant


def test_saved_model_loads_with_tensorflow_alone(towers, exported, tmp_path):
    instance, output = towers[0], exported
    rng = np.random.default_rng(1)
    np.save(tmp_path / "mouth.npy", rng.integers(0, 256, (3,) + MOUTH_SHAPE, dtype=np.uint8))
    np.save(tmp_path / "speech.npy", rng.normal(size=(3, 15, 40, 3)).astype(np.float32))
    script = ("import sys, numpy as np, tensorflow as tf\n"
              "model = tf.saved_model.load(sys.argv[1])\n"
              "mouth, speech = np.load(sys.argv[2]), np.load(sys.argv[3])\n"
              "np.save(sys.argv[4], model.signatures['distance'](mouth=tf.constant(mouth), "
              "speech=tf.constant(speech))['distance'].numpy())\n"
              "assert not [m for m in sys.modules if m.startswith(('avmatch', 'avprep'))]\n")
    result = subprocess.run([sys.executable, "-c", script, str(output),
                             str(tmp_path / "mouth.npy"), str(tmp_path / "speech.npy"),
                             str(tmp_path / "served.npy")], cwd=tmp_path, capture_output=True,
                            text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    expected = instance.pair_distances(np.load(tmp_path / "mouth.npy"),
                                       np.load(tmp_path / "speech.npy")).numpy()
    np.testing.assert_allclose(np.load(tmp_path / "served.npy"), expected, rtol=0, atol=1e-5)


def test_export_without_a_checkpoint_is_one_error_line(tmp_path):
    result = run_export(f"--checkpoint_dir={tmp_path}", f"--output_dir={tmp_path / 'out'}")
    assert result.returncode == 2 and "Traceback" not in result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "no checkpoint" in errors[0]
    assert not (tmp_path / "out").exists()
