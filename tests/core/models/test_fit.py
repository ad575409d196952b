"""Will it fit: estimates on real GGUF headers, GPU-layer planning, and refusing with numbers."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from reflectchat.core.host.machine import GpuDevice
from reflectchat.core.models.fit import (
    GB,
    auto_gpu_layers,
    estimate_memory,
    plan_fit,
    too_big_message,
)
from reflectchat.core.models.gguf import read_gguf_parts
from reflectchat.core.models.resolve import load_catalog
from tests.conftest import cli, run_env
from tests.support.gguf_fixtures import embedded_model_path


def test_estimate_for_the_demo_model() -> None:
    parts = read_gguf_parts(embedded_model_path())
    e = estimate_memory(parts, 2048)
    # SmolLM2-135M: 30 layers, 3 KV heads of 64, f16 K and V
    assert e.kv_bytes == 30 * 2048 * 3 * (64 + 64) * 2
    assert 90e6 < e.weights_bytes < 100e6
    assert e.n_layers == 30
    # llama.cpp reports a 99.4 MiB CPU compute buffer for this model
    assert abs(e.compute_bytes / 2**20 - 99.4) < 3


def test_estimate_for_a_70b_shaped_file(synth_70b: Path) -> None:
    e = estimate_memory(read_gguf_parts(synth_70b), 8192)
    assert 42.0 * GB < e.weights_bytes < 43.0 * GB
    assert e.kv_bytes == 80 * 8192 * 8 * 256 * 2  # 2.68 GB: 80 layers, 8 KV heads of 128
    assert e.layer_bytes * 80 + e.other_bytes == e.weights_bytes


def test_auto_gpu_layers() -> None:
    e = estimate_memory(read_gguf_parts(embedded_model_path()), 2048)
    big = [GpuDevice("big", "CUDA", 80 * 2**30, 79 * 2**30)]
    # room for about half the layers beyond the safety margin and the compute buffer
    small = [GpuDevice("small", "CUDA", 2**30, (512 + 100 + 60) * 2**20)]
    assert auto_gpu_layers(e, []) == 0
    assert auto_gpu_layers(e, big) == -1
    layers = auto_gpu_layers(e, small)
    assert 0 < layers < e.n_layers
    metal = [GpuDevice("m", "Metal", 16 * 2**30, 8 * 2**30)]
    assert auto_gpu_layers(e, metal) == -1


def test_70b_on_a_24_gb_gpu_gets_some_layers(synth_70b: Path) -> None:
    e = estimate_memory(read_gguf_parts(synth_70b), 4096)
    gpu = [GpuDevice("RTX 4090", "CUDA", 24 * 2**30, 23 * 2**30)]
    layers = auto_gpu_layers(e, gpu)
    assert 30 < layers < 50
    report = plan_fit(e, gpu_layers=layers, gpus=gpu, ram_available=64 * 2**30)
    assert report.fits
    assert report.vram_needed <= 23 * 2**30
    assert report.ram_needed + report.vram_needed >= e.total_bytes
    two = gpu * 2
    assert auto_gpu_layers(e, two) == -1


def test_refusal_names_numbers_and_a_smaller_quantization(synth_70b: Path) -> None:
    e = estimate_memory(read_gguf_parts(synth_70b), 8192)
    entry = load_catalog()["reflection-70b"]
    report = plan_fit(e, gpu_layers=0, gpus=[], ram_available=40 * 10**9)
    assert not report.fits
    message = too_big_message("Reflection-Llama-3.1-70B-Q4_K_M.gguf", report, entry)
    assert "needs about 45.4 GB" in message and "40.0 GB of RAM available" in message
    assert "reflection-70b:q3_k_m" in message  # 34.3 GB fits in 40
    assert "--force" in message and "\n" not in message


def test_cli_refuses_a_model_too_big_for_this_machine(synth_70b: Path) -> None:
    proc = subprocess.run(
        cli("ask", "hi", "-m", str(synth_70b), "--ctx", "131072"),
        capture_output=True,
        text=True,
        env=run_env(),
        timeout=60,
    )
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "needs about" in lines[0] and "--force" in lines[0]
    assert "Traceback" not in proc.stderr


def test_doctor_and_bench_json() -> None:
    doctor = subprocess.run(
        cli("doctor", "--json"), capture_output=True, text=True, env=run_env(), timeout=60
    )
    assert doctor.returncode == 0
    report = json.loads(doctor.stdout)
    assert report["llama_cpp"]["installed"] is True
    assert "CPU" in report["llama_cpp"]["backends"]
    assert isinstance(report["llama_cpp"]["gpu_offload"], bool)
    assert report["ram_total_bytes"] > 0
    assert any(f["model"] == "reflection-70b:q4_k_m" for f in report["catalog_fit"])
    bench = subprocess.run(
        cli("bench", "-p", "32", "-n", "8", "-r", "1", "--json"),
        capture_output=True,
        text=True,
        env=run_env(),
        timeout=120,
    )
    assert bench.returncode == 0, bench.stderr
    data = json.loads(bench.stdout)
    assert [r["test"] for r in data["results"]] == ["pp32", "tg8"]
    assert all(r["tokens_per_second"] > 0 for r in data["results"])
    assert data["quantization"] == "Q4_1" and data["backend"] == "CPU"
