"""tools/benchmark.py --quick runs every phase and writes a complete JSON report (smoke run;
no timing assertions: CI machines differ)."""
import json
import subprocess
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]


def test_quick_benchmark_writes_every_measurement(tmp_path):
    out = tmp_path / "bench.json"
    run = subprocess.run([sys.executable, str(REPO_ROOT / "tools/benchmark.py"), "--quick", "--out", str(out)],
                         capture_output=True, text=True, timeout=900, cwd=tmp_path)
    assert run.returncode == 0, run.stderr[-2000:]
    report = json.loads(out.read_text())
    assert report["machine"]["torch"] and report["machine"]["torch_threads"] >= 1
    assert report["machine"]["thp_alloc"] in ("0", "1") and "kernel_thp" in report["machine"]
    assert report["settings"]["quick"] and report["settings"]["batch"] == 4
    results = report["results"]
    graph = results["graph"]
    assert graph["vertices"] == 1229 and graph["level_sizes"][0] >= 1229 and graph["build_s"] > 0
    assert all(a == 2 * b for a, b in zip(graph["level_sizes"], graph["level_sizes"][1:]))
    gemm = results["gemm"]
    assert gemm["level0_128x128_gflops"] > 0 and gemm["level3_256x256_gflops"] > 0
    assert gemm["alloc_fill_level0_mb"] == round(graph["level_sizes"][0] * 4 * 128 * 4 / 2**20, 1)
    assert gemm["alloc_fill_level0_ms"] > 0
    for name in ("data", "posenet_train", "pose2mesh_train", "pose2mesh_infer"):
        assert results[name]["samples_per_s"] > 0 and results[name]["peak_rss_gb"] > 0, name
        assert results[name]["page_faults_per_step"] >= 0, name
        assert results[name]["kernel_s_per_step"] >= 0, name
    assert report["settings"]["memory_reuse"] is True
    assert results["pose2mesh_train"]["parameters"] > results["posenet_train"]["parameters"]
    assert results["pose2mesh_latency"]["latency_b1_ms"] > 0
    lifters = results["lifters"]
    for name in ("posenet", "posenet1024", "hgn"):
        assert lifters[f"{name}_train_samples_per_s"] > 0 and lifters[f"{name}_latency_b1_ms"] > 0, name
    assert lifters["posenet_parameters"] == results["posenet_train"]["parameters"]
    assert lifters["hgn_parameters"] < lifters["posenet1024_parameters"] < lifters["posenet_parameters"]
    assert "pose2mesh_train" in run.stdout and "machine:" in run.stdout


def test_bad_batch_is_a_usage_error(tmp_path):
    run = subprocess.run([sys.executable, str(REPO_ROOT / "tools/benchmark.py"), "--batch", "1"],
                         capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert run.returncode == 2 and "--batch must be >= 2" in run.stderr


def test_missing_config_is_a_usage_error(tmp_path):
    run = subprocess.run([sys.executable, str(REPO_ROOT / "tools/benchmark.py"), "--cfg", str(tmp_path / "none.yml")],
                         capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert run.returncode == 2 and "config not found" in run.stderr
