"""What this machine has: memory, GPUs and their free memory, CPU features.

Read from the OS (/proc/meminfo, sysctl) and `nvidia-smi` — no extra dependencies. Anything that
can't be read is None, and callers skip the checks that need it rather than guess.
"""

from __future__ import annotations

import os
import platform
import shutil
import subprocess
import sys
from dataclasses import dataclass


@dataclass(frozen=True)
class GpuDevice:
    name: str
    backend: str  # "CUDA", "Metal", …
    total_bytes: int
    free_bytes: int


def _meminfo() -> dict[str, int]:
    try:
        with open("/proc/meminfo") as f:
            lines = f.read().splitlines()
    except OSError:
        return {}
    info = {}
    for line in lines:
        key, _, rest = line.partition(":")
        parts = rest.split()
        if parts and parts[0].isdigit():
            info[key] = int(parts[0]) * (1024 if parts[1:] == ["kB"] else 1)
    return info


def total_ram() -> int | None:
    info = _meminfo()
    if "MemTotal" in info:
        return info["MemTotal"]
    if sys.platform == "darwin":
        return _sysctl_int("hw.memsize")
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return None


def available_ram() -> int | None:
    """Memory a new process can use without swapping (Linux: MemAvailable)."""
    info = _meminfo()
    if "MemAvailable" in info:
        return info["MemAvailable"]
    if sys.platform == "darwin":
        # macOS frees file cache on demand; most of the RAM is usable for a mapped model.
        total = total_ram()
        return int(total * 0.75) if total else None
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_AVPHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return None


def _sysctl_int(name: str) -> int | None:
    try:
        out = subprocess.run(["sysctl", "-n", name], capture_output=True, text=True, timeout=3)
        return int(out.stdout.strip())
    except (OSError, ValueError, subprocess.SubprocessError):
        return None


def nvidia_gpus() -> list[GpuDevice]:
    """NVIDIA GPUs as `nvidia-smi` reports them (empty when there is none or no driver)."""
    exe = shutil.which("nvidia-smi")
    if exe is None:
        return []
    try:
        out = subprocess.run(
            [exe, "--query-gpu=name,memory.total,memory.free", "--format=csv,noheader,nounits"],
            capture_output=True,
            text=True,
            timeout=10,
        )
    except (OSError, subprocess.SubprocessError):
        return []
    devices = []
    for line in out.stdout.splitlines():
        parts = [p.strip() for p in line.split(",")]
        if len(parts) == 3 and parts[1].isdigit() and parts[2].isdigit():
            mib = 1024 * 1024
            devices.append(GpuDevice(parts[0], "CUDA", int(parts[1]) * mib, int(parts[2]) * mib))
    return devices


def apple_silicon() -> bool:
    return sys.platform == "darwin" and platform.machine() == "arm64"


def gpu_devices() -> list[GpuDevice]:
    """GPUs that could hold layers. Apple Silicon's GPU shares the RAM (Metal)."""
    if apple_silicon():
        total = total_ram() or 0
        return [
            GpuDevice("Apple Silicon GPU (unified memory)", "Metal", total, available_ram() or 0)
        ]
    return nvidia_gpus()


def cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    if sys.platform == "darwin":
        out = subprocess.run(
            ["sysctl", "-n", "machdep.cpu.brand_string"], capture_output=True, text=True, timeout=3
        )
        if out.stdout.strip():
            return out.stdout.strip()
    return platform.processor() or platform.machine()
