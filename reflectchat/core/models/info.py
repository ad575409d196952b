"""`models info`: what a GGUF is, read from its header without loading the weights."""

from __future__ import annotations

from typing import Any

from reflectchat.core.engine.grammar import TAGS
from reflectchat.core.host.machine import available_ram, gpu_devices
from reflectchat.core.models.fit import estimate_memory, plan_fit
from reflectchat.core.models.gguf import read_gguf_parts, read_metadata_array
from reflectchat.core.models.resolve import ResolvedModel
from reflectchat.core.reply.detect import detect_from_model, vocabulary_hints

SPECIAL_TOKEN_TYPES = {3, 4}  # CONTROL, USER_DEFINED


def special_tags(header: Any, wanted: set[str] | None = None) -> list[str]:
    """The reasoning tags (or other `wanted` texts) that are single special tokens in this
    vocabulary."""
    try:
        tokens = read_metadata_array(header, "tokenizer.ggml.tokens")
        types = read_metadata_array(header, "tokenizer.ggml.token_type")
    except Exception:  # no vocabulary in this file: nothing to report
        return []
    if wanted is None:
        wanted = set(TAGS) | {"<think>", "</think>"}
    found = []
    for i, token in enumerate(tokens):
        if token in wanted and i < len(types) and types[i] in SPECIAL_TOKEN_TYPES:
            found.append(str(token))
    return found


def _reasoning_format(header: Any, model: ResolvedModel) -> dict[str, str]:
    """The format the local engine will read replies in, found the same way (detect.py)."""
    found = detect_from_model(
        template=header.chat_template,
        special_tokens=special_tags(header, set(vocabulary_hints())),
        names=(header.name, model.path.name),
        catalog_format=model.entry.format if model.entry else None,
    )
    return {"name": found.format.name, "reason": found.reason}


def model_info(model: ResolvedModel, n_ctx: int | None = None) -> dict[str, Any]:
    parts = read_gguf_parts(model.path)
    header = parts[0]
    entry = model.entry
    ctx = n_ctx or min(entry.context if entry else 4096, header.context_length or 4096)
    estimate = estimate_memory(parts, ctx)
    from reflectchat.core.host.llama_build import gpu_offload_supported

    gpus = gpu_devices() if gpu_offload_supported() else []
    from reflectchat.core.models.fit import auto_gpu_layers

    layers = auto_gpu_layers(estimate, gpus)
    report = plan_fit(estimate, gpu_layers=layers, gpus=gpus, ram_available=available_ram())
    return {
        "path": str(model.path),
        "parts": [str(h.path) for h in parts],
        "file_size_bytes": sum(h.file_size for h in parts),
        "architecture": header.architecture,
        "name": header.name,
        "parameters": header.parameter_count,
        "quantization": header.quantization,
        "context_length": header.context_length,
        "chat_template": header.chat_template is not None,
        "special_tags": special_tags(header),
        "reasoning_format": _reasoning_format(header, model),
        "catalog": entry.alias if entry else None,
        "memory": {
            "context": ctx,
            "weights_bytes": estimate.weights_bytes,
            "kv_cache_bytes": estimate.kv_bytes,
            "compute_bytes": estimate.compute_bytes,
            "total_bytes": estimate.total_bytes,
        },
        "fit": {
            "fits": report.fits,
            "gpu_layers": "all" if layers < 0 else layers,
            "ram_needed_bytes": report.ram_needed,
            "ram_available_bytes": report.ram_available,
            "vram_needed_bytes": report.vram_needed,
            "vram_free_bytes": report.vram_free,
        },
    }
