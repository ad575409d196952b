"""The note on the first screen when only the demo model is there: what it is, the one
command that gets the real model, how big that is, and whether it fits this machine (the fit
check's estimate against this machine's free memory), so nobody starts a 42.5 GB download
that cannot run."""

from __future__ import annotations

from collections.abc import Callable

from reflectchat.core.host.machine import GpuDevice, available_ram, gpu_devices
from reflectchat.core.models.fit import MemoryEstimate, plan_fit
from reflectchat.core.models.resolve import load_catalog
from reflectchat.core.units import GB, format_bytes

REAL_MODEL = "reflection-70b"
CONTEXT = 8192  # the catalog's context for it
# Llama-3.1-70B's shape, for the KV cache (80 layers, 8 KV heads of 128): the GGUF header
# would say so, but it is not downloaded yet.
LAYERS, KV_HEADS, HEAD_DIM, EMBED, VOCAB = 80, 8, 128, 8192, 128256


def machine() -> tuple[int | None, list[GpuDevice]]:
    """Free RAM and GPUs; a hook the snapshot tests replace so pictures don't vary."""
    return available_ram(), gpu_devices()


MACHINE: Callable[[], tuple[int | None, list[GpuDevice]]] = machine


def _gb(n: float) -> str:
    return format_bytes(n, "GB")


def fit_sentence() -> str:
    entry = load_catalog()[REAL_MODEL]
    quant = entry.quant(None)
    size = (quant.size_gb or 0) * GB
    kv = LAYERS * CONTEXT * KV_HEADS * HEAD_DIM * 2 * 2  # K and V, f16
    layer = (size - EMBED * VOCAB) / LAYERS
    estimate = MemoryEstimate(
        weights_bytes=int(size),
        kv_bytes=kv,
        compute_bytes=512 * (EMBED + VOCAB) * 4,
        n_ctx=CONTEXT,
        n_layers=LAYERS,
        layer_bytes=int(layer),
        other_bytes=int(size - layer * LAYERS),
    )
    ram, gpus = MACHINE()
    report = plan_fit(estimate, gpu_layers=-1 if gpus else 0, gpus=gpus, ram_available=ram)
    need = f"It needs about {_gb(estimate.total_bytes)} at {CONTEXT:,} tokens of context"
    have = []
    if ram is not None:
        have.append(f"{_gb(ram)} of RAM free")
    if report.vram_free is not None:
        have.append(f"{_gb(report.vram_free)} of GPU memory free")
    if not have:
        return need + "."
    verdict = "it fits here" if report.fits else "it won't fit here"
    sentence = f"{need}; this machine has {' and '.join(have)}: {verdict}"
    if not report.fits:
        room = (ram or 0) + (report.vram_free or 0)
        smaller = [
            (q.size_gb, f"{e.alias}:{q.name.lower()} ({q.size_gb:g} GB)")
            for e in load_catalog().values()
            if e.prompt_style == "reflection"
            for q in e.quants.values()
            if q.size_gb and q.size_gb * GB * 1.15 <= room
        ]
        if smaller:
            sentence += f" — {max(smaller)[1]} would"
    return sentence + "."


def demo_note() -> str:
    entry = load_catalog()[REAL_MODEL]
    quant = entry.quant(None)
    return (
        "This is the demo model, SmolLM2-135M: a smoke test, expect nonsense.\n"
        f"For real reasoning, get {entry.name} ({quant.name}, {quant.size_gb:g} GB):\n"
        f"  reflectchat models pull {REAL_MODEL}\n"
        f"  reflectchat chat -m {REAL_MODEL}\n" + fit_sentence()
    )
