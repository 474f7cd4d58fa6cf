"""The benchmark's timing helpers and a tiny end-to-end run of evaluation/benchmark.py.

No assertion is about speed: the machine is shared. The tests check that every figure is
measured, positive and consistent, and that the two formulations score the same pairs alike.
"""
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from avmatch import benchmarking

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "evaluation" / "benchmark.py"


def test_time_interleaved_times_only_the_repeats():
    calls = []
    seconds = benchmarking.time_interleaved({"fn": lambda: calls.append(1)}, repeats=3,
                                            warmup=2)["fn"]
    assert len(calls) == 5
    assert len(seconds) == 3
    assert all(s >= 0 for s in seconds)


def test_time_interleaved_goes_round_the_functions():
    order = []
    seconds = benchmarking.time_interleaved(
        {"a": lambda: order.append("a"), "b": lambda: order.append("b")}, repeats=2, warmup=1)
    assert order == ["a", "b", "a", "b", "a", "b"]
    assert {name: len(values) for name, values in seconds.items()} == {"a": 2, "b": 2}


def test_median_rate_uses_the_median_call():
    assert benchmarking.median_rate(32, [4.0, 1.0, 2.0]) == 16.0
    summary = benchmarking.rate_summary(8, [1.0, 4.0], kept_pairs_mean=6.0)
    assert summary["pairs_per_second"] == pytest.approx(8 / 2.5)
    assert summary["median_seconds"] == 2.5
    assert summary["kept_pairs_mean"] == 6.0


def test_random_window_batch_is_seeded_with_model_shapes():
    first = benchmarking.random_window_batch(3, seed=7)
    again = benchmarking.random_window_batch(3, seed=7)
    assert first["mouth"].shape == (3, 9, 60, 100) and first["mouth"].dtype.name == "uint8"
    for key in ("speech_genuine", "speech_impostor"):
        assert first[key].shape == (3, 15, 40, 3) and first[key].dtype.name == "float32"
    for key in first:
        np.testing.assert_array_equal(first[key].numpy(), again[key].numpy())
    mouth, speech = benchmarking.per_pair_inputs(first)
    assert mouth.shape == (6, 9, 60, 100) and speech.shape == (6, 15, 40, 3)
    np.testing.assert_array_equal(mouth[3].numpy(), first["mouth"][0].numpy())


def test_make_instances_gives_every_variant_the_same_weights():
    fast, conv3d = benchmarking.make_instances(seed=3)
    fast_again, _ = benchmarking.make_instances(seed=3)
    for a, b, c in zip(fast.variables, conv3d.variables, fast_again.variables):
        np.testing.assert_array_equal(a.numpy(), b.numpy())
        np.testing.assert_array_equal(a.numpy(), c.numpy())


def test_measure_scoring_compares_the_same_pairs():
    config = benchmarking.BenchConfig(score_batch_size=6, repeats=2, warmup=1)
    result = benchmarking.measure_scoring(config)
    for side in ("project", "baseline"):
        assert result[side]["pairs_per_second"] > 0
        assert len(result[side]["seconds"]) == 2
    assert result["ratio"] == pytest.approx(
        result["project"]["pairs_per_second"] / result["baseline"]["pairs_per_second"])
    # Same weights, same pairs: the two formulations agree to float rounding.
    assert result["max_abs_difference"] < 1e-3


def _run(args):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    return subprocess.run([sys.executable, str(SCRIPT), *args], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=600)


def test_benchmark_script_writes_every_figure(tmp_path):
    out = tmp_path / "bench.json"
    empty = tmp_path / "no_videos"
    empty.mkdir()
    done = _run(["--repeats=1", "--warmup=1", "--batch_size=4", "--score_batch_size=4",
                 f"--videos_dir={empty}", f"--json={out}"])
    assert done.returncode == 0, done.stderr[-2000:]
    results = json.loads(out.read_text())
    assert results["machine"]["nproc"] >= 1 and results["machine"]["tensorflow"]
    for variant in ("project", "project_xla", "baseline"):
        figures = results["training"][variant]
        assert figures["pairs_per_second"] > 0
        assert 1 <= figures["kept_pairs_mean"] <= 4
    for section in ("training", "scoring"):
        assert results[section]["ratio"] > 0
    assert results["training"]["ratio_xla"] == pytest.approx(
        results["training"]["project_xla"]["pairs_per_second"]
        / results["training"]["baseline"]["pairs_per_second"])
    assert results["scoring"]["project"]["pairs_per_second"] > 0
    assert "no videos" in results["data_preparation"]["skipped"]
    lines = done.stdout.splitlines()
    training = [line for line in lines if line.startswith("training  project ")][0]
    assert f"ratio {results['training']['ratio']:.2f}x" in training
    assert any(line.startswith("scoring ") and "ratio" in line for line in lines)
    assert any("data preparation skipped" in line for line in lines)
    for section in ("training", "scoring"):
        assert results[section]["project_bfloat16"]["pairs_per_second"] > 0
        assert results[section]["ratio_bfloat16"] > 0
        assert any(line.startswith(f"{section:<9} project") and line.endswith("(bfloat16)")
                   for line in lines)
    assert results["machine"]["auto_precision"] in ("float32", "bfloat16")
    assert "--precision=auto" in lines[0]
    auto = results["machine"]["auto_precision"]
    key = "ratio" if auto == "float32" else f"ratio_{auto}"
    default = [line for line in lines if line.startswith("default precision")]
    assert default == [f"default precision (auto: {auto}): training "
                       f"{results['training'][key]:.2f}x (target 4x), scoring "
                       f"{results['scoring'][key]:.2f}x (target 3x) the baseline"]
    assert "no videos" in results["sync"]["skipped"]
    assert any(line.startswith("sync check skipped") for line in lines)


def test_benchmark_script_rejects_an_odd_batch_in_one_line():
    done = _run(["--batch_size=5"])
    assert done.returncode == 2
    assert done.stderr.strip().splitlines()[-1].startswith("error: --batch_size=5")
    assert "Traceback" not in done.stderr


def test_profile_script_prints_the_op_table(tmp_path):
    result = subprocess.run(
        [sys.executable, str(REPO / "evaluation" / "profile_step.py"), "--what=training",
         f"--logdir={tmp_path}", "--calls=1", "--warmup=1", "--batch_size=4", "--top=30"],
        cwd=REPO, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    lines = result.stdout.splitlines()
    assert lines[0].startswith("training: ") and "ms per call" in lines[0]
    assert lines[1].split() == ["op", "type", "pass", "ms/call", "ops/call", "share"]
    assert any("Conv2D" in line for line in lines[2:7])
    # the fused batch norm + PReLU of training runs as XLA kernels, counted as one op type
    assert any(line.startswith("XLA kernels") and " both " in line for line in lines)
    assert lines[-1].startswith("all ops") and lines[-1].endswith("100.0%")
    assert list(tmp_path.glob("plugins/profile/*/*.xplane.pb"))


@pytest.mark.parametrize("arguments,expected", [
    ([], "error: --logdir is required"),
    (["--top=0"], "error: --top must be >= 1"),
    (["--calls=0"], "error: --calls must be >= 1"),
    (["--batch_size=3"], "error: --batch_size must be a positive even number"),
])
def test_profile_script_rejects_bad_flags_in_one_line(tmp_path, arguments, expected):
    logdir = [] if not arguments else [f"--logdir={tmp_path / 'trace'}"]
    result = subprocess.run(
        [sys.executable, str(REPO / "evaluation" / "profile_step.py"), *logdir, *arguments],
        cwd=REPO, capture_output=True, text=True, timeout=120)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines()[-1].startswith(expected)
    assert not (tmp_path / "trace").exists()


@pytest.mark.parametrize("value", ["0", "-1"])
def test_benchmark_script_rejects_too_few_pipeline_videos_in_one_line(value):
    done = _run([f"--pipeline_videos={value}"])
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert done.stderr.strip().splitlines()[-1].startswith(
        f"error: --pipeline_videos={value} must be at least 1")


def test_a_failed_child_is_reported_by_its_error_line_or_its_status():
    # in a child process: importing the script defines its absl flags, here for good
    check = """
import subprocess
from benchmark import last_line
failed = subprocess.CompletedProcess([], -9, "", "")
assert last_line(failed) == "exited with status -9 and wrote no message", last_line(failed)
failed.stderr = "error: no face found\\nW1128 checkpoint.py:234] unrestored values\\n"
assert last_line(failed) == "error: no face found", last_line(failed)
failed.stderr = "Segmentation fault\\n"
assert last_line(failed) == "Segmentation fault", last_line(failed)
"""
    done = subprocess.run([sys.executable, "-c", check], cwd=SCRIPT.parent,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
