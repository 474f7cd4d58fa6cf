"""data_preparation/sync_material.py and avprep.sync_material: the named sets of the sync
check's measurement material are chosen by fixed rules, and the tool writes their shifted
copies, resumably, with one error line for bad input."""
import json
import subprocess
import sys
from pathlib import Path

import pytest

from avprep.demo_data import make_demo_video
from avprep.records import FORMAT_VERSION, MANIFEST_NAME
from avprep.shift import parse_offsets_ms
from avprep.splits import VideoEntry
from avprep.sync_material import dataset_sets, grid_sets, manifest_paths

REPO = Path(__file__).resolve().parents[1]


def run_tool(*args, cwd=REPO):
    return subprocess.run([sys.executable, str(REPO / "data_preparation" / "sync_material.py"),
                           *args], cwd=cwd, capture_output=True, text=True, timeout=600)


def record(path, split, status="ok"):
    return {"path": path, "split": split, "status": status, "source": path.split("/")[0]}


def test_grid_sets_take_every_fifth_clip_by_id():
    entries = [VideoEntry(f"/g/{i:03d}.mpg", f"{i:03d}.mpg", f"video/{i:03d}",
                          "validation" if i < 50 else "test") for i in reversed(range(80))]
    sets = grid_sets(entries)
    assert sets["grid_val"] == [f"/g/{i:03d}.mpg" for i in range(0, 50, 5)]
    assert sets["grid_val2"] == [f"/g/{i:03d}.mpg" for i in range(2, 50, 5)]
    assert sets["grid_val_rest"] == [f"/g/{i:03d}.mpg" for i in range(50) if i % 5 not in (0, 2)]
    assert sets["grid_test"] == [f"/g/{i:03d}.mpg" for i in range(50, 80, 5)]
    assert len(sets["grid_test_full"]) == 30


def test_dataset_sets_follow_the_manifest_split():
    files = ([record(f"lrw_ar/video/{i:03d}.mp4", "validation") for i in range(250)]
             + [record(f"lrw_ar/video/t{i:03d}.mp4", "test") for i in range(30)]
             + [record("lrw_ar/video/t999.mp4", "test", status="skipped"),
                record("lrw_ar/video/x.mp4", "train"), record("lrw_ar/video/y.mp4", "train"),
                record("talks/a.mp4", "test"), record("talks/b.mp4", "train")])
    paths = {f["path"]: "/data/" + f["path"] for f in files}
    sets = dataset_sets({"files": files}, paths)
    assert sets["lrw_val"] == [f"/data/lrw_ar/video/{i:03d}.mp4" for i in range(0, 200, 10)]
    assert sets["lrw_val2"] == [f"/data/lrw_ar/video/{i:03d}.mp4" for i in range(5, 200, 10)]
    assert sets["lrw_val_rest"] == [f"/data/lrw_ar/video/{i:03d}.mp4" for i in range(250)
                                    if i >= 200 or i % 5]
    assert sets["lrw_test"] == [f"/data/lrw_ar/video/t{i:03d}.mp4" for i in range(0, 30, 10)]
    assert len(sets["lrw_test_full"]) == 30  # the skipped video is not material
    assert sets["heldout"] == ["/data/talks/a.mp4"]
    assert sets["lrw_train"] == ["/data/lrw_ar/video/x.mp4"]  # every 16th: the first of two


def test_manifest_paths_resolve_sources_and_name_a_missing_folder(tmp_path, monkeypatch):
    for name in ("lrw_ar/video/1.mp4", "talks/a.mp4"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(b"")
    monkeypatch.chdir(tmp_path)
    build = {"input_dir": "lrw_ar,talks", "split": {"layout": "flat"}}
    manifest = {"build": build,
                "files": [record("lrw_ar/video/1.mp4", "test"), record("talks/a.mp4", "test")]}
    paths = manifest_paths(manifest)
    assert paths["talks/a.mp4"] == str(tmp_path / "talks" / "a.mp4")
    assert paths["lrw_ar/video/1.mp4"] == str(tmp_path / "lrw_ar" / "video" / "1.mp4")
    with pytest.raises(FileNotFoundError, match="gone"):
        manifest_paths({"build": dict(build, input_dir="gone"), "files": []})
    (tmp_path / "talks" / "a.mp4").unlink()
    with pytest.raises(ValueError, match="talks/a.mp4"):
        manifest_paths(manifest)


def test_offsets_must_be_whole_milliseconds_each_once():
    assert parse_offsets_ms(["-200", "0", "100.0"]) == [-200, 0, 100]
    for values in (["ten"], ["1.5"], ["100", "100"], [], ["inf"]):
        with pytest.raises(ValueError):
            parse_offsets_ms(values)


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    """A built-like dataset folder whose manifest names two lrw_ar clips and one other."""
    root = tmp_path_factory.mktemp("material")
    for index, name in enumerate(("lrw_ar/video/v1.mp4", "lrw_ar/video/t1.mp4", "talks/a.mp4")):
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        make_demo_video(root / name, index, seconds=1.0)
    data_dir = root / "data"
    data_dir.mkdir()
    manifest = {"format_version": FORMAT_VERSION,
                "build": {"input_dir": "lrw_ar,talks", "split": {"layout": "flat"}},
                "files": [record("lrw_ar/video/v1.mp4", "validation"),
                          record("lrw_ar/video/t1.mp4", "test"), record("talks/a.mp4", "test")]}
    (data_dir / MANIFEST_NAME).write_text(json.dumps(manifest))
    return root


def test_tool_writes_each_set_and_resumes(dataset, tmp_path):
    args = ("--dataset_dir=data", f"--output_dir={tmp_path}", "--offsets_ms=0,100")
    result = run_tool(*args, cwd=dataset)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "lrw_val: 1 clips x 2 shifts (2 copies written)" in result.stdout
    assert "lrw_val2: no clip in the inputs, so no copies" in result.stdout
    assert sorted(p.name for p in (tmp_path / "heldout").iterdir()) == [
        "a_audio+0ms.mp4", "a_audio+100ms.mp4"]
    assert sorted(p.name for p in (tmp_path / "lrw_test_full").iterdir()) == [
        "t1_audio+0ms.mp4", "t1_audio+100ms.mp4"]
    material = json.loads((tmp_path / "material.json").read_text())
    assert material["offsets_ms"] == [0, 100] and "grid_val" not in material["sets"]
    again = run_tool(*args, cwd=dataset)
    assert again.returncode == 0 and "(0 copies written)" in again.stdout


def test_bad_input_is_one_error_line(dataset, tmp_path):
    (dataset / "garbled").mkdir(exist_ok=True)
    (dataset / "garbled" / MANIFEST_NAME).write_text("{not json")
    for args in (["--dataset_dir=absent", f"--output_dir={tmp_path}"],
                 ["--dataset_dir=lrw_ar/video/v1.mp4", f"--output_dir={tmp_path}"],
                 ["--dataset_dir=garbled", f"--output_dir={tmp_path}"],
                 ["--dataset_dir=data", f"--output_dir={tmp_path}", "--sets=grid_val"],
                 ["--dataset_dir=data", f"--output_dir={tmp_path}", "--sets=nonsense"],
                 ["--dataset_dir=data", f"--output_dir={tmp_path}", "--offsets_ms=1,1"]):
        result = run_tool(*args, cwd=dataset)
        errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
        assert result.returncode == 2 and len(errors) == 1, (args, result.stderr)
        assert "Traceback" not in result.stderr
    assert not list(tmp_path.iterdir())


def test_a_damaged_source_is_named_and_the_copies_before_it_kept(dataset, tmp_path):
    damaged = dataset / "damaged"
    for name in ("lrw_ar", "talks"):
        (damaged / name).mkdir(parents=True)
    (damaged / "lrw_ar" / "v1.mp4").write_bytes((dataset / "lrw_ar/video/v1.mp4").read_bytes())
    (damaged / "talks" / "a.mp4").write_bytes(b"not a video")
    (damaged / "data").mkdir()
    manifest = {"format_version": FORMAT_VERSION,
                "build": {"input_dir": "lrw_ar,talks", "split": {"layout": "flat"}},
                "files": [record("lrw_ar/v1.mp4", "validation"), record("talks/a.mp4", "test")]}
    (damaged / "data" / MANIFEST_NAME).write_text(json.dumps(manifest))
    result = run_tool("--dataset_dir=data", f"--output_dir={tmp_path}", "--offsets_ms=0",
                      cwd=damaged)
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert result.returncode == 2 and len(errors) == 1, result.stderr
    assert "a.mp4" in errors[0] and "Traceback" not in result.stderr
    assert [p.name for p in (tmp_path / "lrw_val").iterdir()] == ["v1_audio+0ms.mp4"]
