"""evaluation/ship_model.py on runs made without training (bare towers and a config.json):
the towers follow the run's recorded speech features, and the folder swap keeps the old
model whole. The shipping of trained runs (best epoch, moving averages, soups) is tested in
test_sync.py."""
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from avmatch import checkpoints
from avmatch.config import RUN_CONFIG_NAME, TrainConfig
from avmatch.export import replace_folder
from avmatch.instance import MatchingInstance
from avprep.speech_features import SpeechFeatureConfig

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "evaluation" / "ship_model.py"


def fake_run(folder, speech_settings, speech_shape=None):
    """A run folder holding untrained towers (for cubes of speech_shape) as ckpt-3 and a
    config.json recording the dataset's speech settings; returns the towers."""
    instance = MatchingInstance.create(speech_shape=speech_shape)
    checkpoints.export_towers(instance, str(folder), 3)
    config = dict(TrainConfig(train_dir=str(folder)).to_dict(),
                  features={"speech": speech_settings, "crop": {"border_fraction": None}})
    (folder / RUN_CONFIG_NAME).write_text(json.dumps(config))
    return instance


def ship(*args):
    return subprocess.run([sys.executable, str(SCRIPT), *args], cwd=REPO, capture_output=True,
                          text=True, timeout=600)


def test_a_run_on_static_speech_features_ships_with_its_input_shape(tmp_path):
    run = tmp_path / "run"
    trained = fake_run(run, SpeechFeatureConfig(num_channels=1).to_dict(), (15, 40, 1))
    output = tmp_path / "model"
    output.mkdir()
    (output / "MODEL_CARD.md").write_text("kept")
    (output / "stale.txt").write_text("replaced with the rest of the old model")
    done = ship(f"--run_dir={run}", f"--output_dir={output}")
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.strip() == f"shipped {output / 'ckpt-3'}"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model", "run"]  # no .old-*/.ship-*
    assert (output / "MODEL_CARD.md").read_text() == "kept"
    assert not (output / "stale.txt").exists()
    config = json.loads((output / RUN_CONFIG_NAME).read_text())
    assert config["features"]["speech"]["num_channels"] == 1 and config["data_dir"] == ""
    shipped = MatchingInstance.create(speech_shape=(15, 40, 1))
    checkpoints.restore_towers(checkpoints.checkpoint_to_score(str(output)), shipped)
    for a, b in zip(trained.variables, shipped.variables):
        np.testing.assert_array_equal(a.numpy(), b.numpy())


def test_unusable_speech_settings_are_one_error_line(tmp_path):
    run = tmp_path / "run"
    fake_run(run, {"num_channels": 4})
    done = ship(f"--run_dir={run}", f"--output_dir={tmp_path / 'model'}")
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert done.stderr.strip().splitlines()[-1] == (
        'error: config.json "features": num_channels must be 1, 2 or 3, got 4')
    assert not (tmp_path / "model").exists()


def test_replace_folder_swaps_a_whole_folder(tmp_path):
    target, new = tmp_path / "model", tmp_path / ".new"
    for folder, text in ((target, "old"), (new, "new")):
        folder.mkdir()
        (folder / "weights").write_text(text)
    replace_folder(str(new), str(target) + "/")  # a trailing slash names the same folder
    assert (target / "weights").read_text() == "new"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]


def test_replace_folder_keeps_the_old_folder_when_the_swap_fails(tmp_path, monkeypatch):
    target, new = tmp_path / "model", tmp_path / ".new"
    for folder, text in ((target, "old"), (new, "new")):
        folder.mkdir()
        (folder / "weights").write_text(text)
    renames, real_replace = [], os.replace

    def interrupted_second_rename(source, destination):
        renames.append((source, destination))
        if len(renames) == 2:
            raise KeyboardInterrupt
        real_replace(source, destination)

    monkeypatch.setattr(os, "replace", interrupted_second_rename)
    with pytest.raises(KeyboardInterrupt):
        replace_folder(str(new), str(target))
    assert (target / "weights").read_text() == "old"
    assert (new / "weights").read_text() == "new"
    assert sorted(p.name for p in tmp_path.iterdir()) == [".new", "model"]
