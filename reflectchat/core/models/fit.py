"""Will it fit? Memory a model needs at a context size, against what this machine has free.

Estimate = weights (the tensor data of every part) + KV cache (2 × layers × context × KV heads ×
head size, f16) + llama.cpp's compute buffer (dominated by one batch of logits). `--gpu-layers
auto` puts as many layers as fit in free VRAM on CUDA/Vulkan builds (all on Metal, whose GPU
shares the RAM), and none on CPU builds.
"""

from __future__ import annotations

from dataclasses import dataclass

from reflectchat.core.errors import ModelError
from reflectchat.core.host.machine import GpuDevice
from reflectchat.core.models.gguf import GGUFHeader
from reflectchat.core.models.resolve import CatalogEntry, load_catalog
from reflectchat.core.units import GB, format_bytes

N_UBATCH = 512  # llama.cpp's default micro-batch: its logits buffer is the compute buffer's bulk
GPU_MARGIN = 512 * 1024 * 1024  # drivers, fragmentation: never plan to fill a GPU to the byte


class ModelTooBigError(ModelError):
    """The model can't fit; the message has the numbers and a concrete suggestion."""


@dataclass(frozen=True)
class MemoryEstimate:
    weights_bytes: int
    kv_bytes: int
    compute_bytes: int
    n_ctx: int
    n_layers: int
    layer_bytes: int  # weights of one repeating layer
    other_bytes: int  # embeddings and output head

    @property
    def total_bytes(self) -> int:
        return self.weights_bytes + self.kv_bytes + self.compute_bytes

    @property
    def kv_per_layer(self) -> int:
        return self.kv_bytes // self.n_layers if self.n_layers else 0


def estimate_memory(parts: list[GGUFHeader], n_ctx: int) -> MemoryEstimate:
    """`parts`: the headers of every file of the model (read_gguf_parts)."""
    first = parts[0]
    tensors = [t for h in parts for t in h.tensors]
    weights = sum(t.nbytes for t in tensors)
    layer_weights = sum(t.nbytes for t in tensors if t.name.startswith("blk."))
    n_layers = first.block_count or 0
    n_embd = first.embedding_length or 0
    n_head = first.head_count or 0
    n_head_kv = first.head_count_kv or n_head
    key_len = first.arch_int("attention.key_length") or (n_embd // n_head if n_head else 0)
    value_len = first.arch_int("attention.value_length") or key_len
    kv = n_layers * n_ctx * n_head_kv * (key_len + value_len) * 2  # K and V, f16 (2 bytes)
    vocab = first.arch_int("vocab_size") or _vocab_size(first)
    compute = N_UBATCH * (n_embd + vocab) * 4
    return MemoryEstimate(
        weights_bytes=weights,
        kv_bytes=kv,
        compute_bytes=compute,
        n_ctx=n_ctx,
        n_layers=n_layers,
        layer_bytes=layer_weights // n_layers if n_layers else 0,
        other_bytes=weights - layer_weights,
    )


def _vocab_size(header: GGUFHeader) -> int:
    tokens = header.metadata.get("tokenizer.ggml.tokens")
    length = getattr(tokens, "length", None)
    if isinstance(length, int):
        return length
    return len(tokens) if isinstance(tokens, list) else 32000


def auto_gpu_layers(estimate: MemoryEstimate, gpus: list[GpuDevice]) -> int:
    """How many layers fit in the free VRAM (-1: all of them, with the output head)."""
    if not gpus:
        return 0
    if any(g.backend == "Metal" for g in gpus):
        return -1  # unified memory: offloading moves nothing out of RAM, it only speeds up
    free = sum(g.free_bytes for g in gpus) - GPU_MARGIN - estimate.compute_bytes
    per_layer = estimate.layer_bytes + estimate.kv_per_layer
    if per_layer <= 0 or free <= 0:
        return 0
    layers = min(estimate.n_layers, int(free // per_layer))
    if layers == estimate.n_layers and free - layers * per_layer >= estimate.other_bytes:
        return -1
    return layers


@dataclass(frozen=True)
class FitReport:
    estimate: MemoryEstimate
    gpu_layers: int  # resolved: -1 all, else a count
    ram_needed: int
    vram_needed: int
    ram_available: int | None
    vram_free: int | None

    @property
    def fits(self) -> bool:
        ram_ok = self.ram_available is None or self.ram_needed <= self.ram_available
        vram_ok = self.vram_free is None or self.vram_needed <= self.vram_free
        return ram_ok and vram_ok


def plan_fit(
    estimate: MemoryEstimate,
    *,
    gpu_layers: int,
    gpus: list[GpuDevice],
    ram_available: int | None,
) -> FitReport:
    """Split the estimate between RAM and VRAM for `gpu_layers` (-1 = all)."""
    unified = any(g.backend == "Metal" for g in gpus)
    layers_on_gpu = estimate.n_layers if gpu_layers < 0 else min(gpu_layers, estimate.n_layers)
    if not gpus:
        layers_on_gpu = 0
    gpu_part = layers_on_gpu * (estimate.layer_bytes + estimate.kv_per_layer)
    if gpu_layers < 0 and gpus:
        gpu_part += estimate.other_bytes
    if layers_on_gpu:
        gpu_part += estimate.compute_bytes
    if unified:
        return FitReport(estimate, gpu_layers, estimate.total_bytes, 0, ram_available, None)
    ram = estimate.total_bytes - gpu_part + (estimate.compute_bytes if layers_on_gpu else 0)
    vram_free = sum(g.free_bytes for g in gpus) if gpus else None
    return FitReport(estimate, gpu_layers, ram, gpu_part, ram_available, vram_free)


def too_big_message(name: str, report: FitReport, entry: CatalogEntry | None) -> str:
    """One line: what is needed, what there is, and what to do instead."""
    e = report.estimate
    what = (
        f"{name} needs about {_gb(report.ram_needed)} of memory ({_gb(e.weights_bytes)} "
        f"weights + {_gb(e.kv_bytes)} KV cache at {e.n_ctx} tokens"
    )
    if report.vram_needed and report.vram_free is not None:
        what += f"; {_gb(report.vram_needed)} of it on the GPU"
    what += ")"
    have = []
    if report.ram_available is not None:
        have.append(f"{_gb(report.ram_available)} of RAM available")
    if report.vram_free is not None:
        have.append(f"{_gb(report.vram_free)} of VRAM free")
    return f"{what} but this machine has {' and '.join(have)}; {suggestion(report, entry)}"


def suggestion(report: FitReport, entry: CatalogEntry | None) -> str:
    e = report.estimate
    room = (report.ram_available or 0) + (report.vram_free or 0)
    ideas = []
    if entry and entry.quants:
        smaller = [
            q
            for q in entry.quants.values()
            if q.size_gb and q.size_gb * GB + e.kv_bytes + e.compute_bytes <= room
        ]
        if smaller:
            best = max(smaller, key=lambda q: q.size_gb or 0)
            ideas.append(
                f"a smaller quantization ({entry.alias}:{best.name.lower()}, {best.size_gb:g} GB)"
            )
    if e.kv_bytes > 0.1 * e.total_bytes and e.n_ctx > 2048:
        ideas.append("a shorter context (--ctx 2048)")
    if report.vram_free is not None and report.gpu_layers >= 0:
        ideas.append("more layers on the GPU (--gpu-layers)")
    if not ideas:
        ideas.append(f"a smaller model that fits, such as {_smallest_fitting(room)}")
    return "try " + " or ".join(ideas) + ", or --force to load it anyway"


def _smallest_fitting(room: float) -> str:
    options = []
    for entry in load_catalog().values():
        for q in entry.quants.values():
            if q.size_gb and q.size_gb * GB * 1.1 <= room:
                options.append((q.size_gb, f"{entry.alias}:{q.name.lower()} ({q.size_gb:g} GB)"))
    if not options:
        return "the demo model (smollm2)"
    return max(options)[1]


def _gb(n: float) -> str:
    return format_bytes(n, "GB")
