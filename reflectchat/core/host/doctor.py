"""`reflectchat doctor`: what this install and this machine can do, and how to fix what's off."""

from __future__ import annotations

import os
import platform
import sys
from typing import Any

from reflectchat import __version__
from reflectchat.core.host.llama_build import llama_build
from reflectchat.core.host.machine import (
    apple_silicon,
    available_ram,
    cpu_name,
    gpu_devices,
    nvidia_gpus,
    total_ram,
)
from reflectchat.core.models.resolve import load_catalog
from reflectchat.core.units import GB

CUDA_REINSTALL = (
    'CMAKE_ARGS="-DGGML_CUDA=on" pip install --force-reinstall --no-cache-dir llama-cpp-python'
)
METAL_REINSTALL = (
    'CMAKE_ARGS="-DGGML_METAL=on" pip install --force-reinstall --no-cache-dir llama-cpp-python'
)
NOAMX_REINSTALL = (
    'CMAKE_ARGS=\'-DCMAKE_C_FLAGS="-mno-amx-int8 -mno-amx-tile" '
    '-DCMAKE_CXX_FLAGS="-mno-amx-int8 -mno-amx-tile"\' '
    "pip install --force-reinstall --no-cache-dir llama-cpp-python"
)


def diagnose() -> dict[str, Any]:
    build = llama_build()
    ram_total, ram_free = total_ram(), available_ram()
    gpus = gpu_devices()
    offload = bool(build.get("gpu_offload"))
    vram = sum(g.free_bytes for g in gpus) if offload and not apple_silicon() else 0
    advice = []
    if build.get("installed") is False:
        advice.append("llama-cpp-python is not installed: pip install reflectchat")
    elif nvidia_gpus() and not offload:
        advice.append(
            f"an NVIDIA GPU is present but this llama.cpp build is CPU-only; rebuild "
            f"it with CUDA: {CUDA_REINSTALL}"
        )
    elif apple_silicon() and not offload:
        advice.append(f"Apple Silicon without Metal in the build; rebuild: {METAL_REINSTALL}")
    if "AMX_INT8" in build.get("cpu_features", []) and not os.environ.get("REFLECTCHAT_AMX"):
        advice.append(
            "this llama.cpp build has AMX kernels, which crash on some Xeon VMs (SIGSEGV in "
            "ggml_backend_amx_mul_mat), so reflectchat loads models without llama.cpp's extra "
            "buffer types — safe, but decoding is up to ~2.5x slower. For full speed rebuild "
            f"without AMX: {NOAMX_REINSTALL} — or set REFLECTCHAT_AMX=1 if AMX works here"
        )
    fits = []
    room_ram = ram_free or 0
    for entry in load_catalog().values():
        for quant in entry.quants.values():
            if not quant.size_gb:
                continue
            need = quant.size_gb * GB * 1.08  # weights + a modest KV cache and compute buffer
            where = (
                "GPU"
                if vram and need <= vram
                else "RAM"
                if need <= room_ram
                else "GPU+RAM"
                if vram and need <= vram + room_ram
                else None
            )
            fits.append(
                {
                    "model": f"{entry.alias}:{quant.name.lower()}",
                    "size_gb": quant.size_gb,
                    "fits": where is not None,
                    "where": where,
                }
            )
    return {
        "reflectchat": __version__,
        "python": platform.python_version(),
        "platform": f"{platform.system()} {platform.release()} {platform.machine()}",
        "executable": sys.executable,
        "llama_cpp": build,
        "cpu": cpu_name(),
        "ram_total_bytes": ram_total,
        "ram_available_bytes": ram_free,
        "gpus": [
            {
                "name": g.name,
                "backend": g.backend,
                "total_bytes": g.total_bytes,
                "free_bytes": g.free_bytes,
            }
            for g in gpus
        ],
        "catalog_fit": fits,
        "advice": advice,
    }
