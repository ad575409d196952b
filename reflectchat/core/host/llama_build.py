"""What the installed llama.cpp build can do: its compiled-in backends, GPU offload, AMX.

Read from llama.cpp's own system info ("CUDA : ARCHS = 890 | … | CPU : AVX2 = 1 | …"), for
`reflectchat doctor`, the fit check and the engine. llama_cpp is imported only when asked, so
the light commands never load it.
"""

from __future__ import annotations

from typing import Any


def system_info() -> str:
    """llama.cpp's system info line, as it prints it."""
    import llama_cpp

    return str(llama_cpp.llama_print_system_info().decode("utf-8", "replace"))


def gpu_offload_supported() -> bool:
    import llama_cpp

    return bool(llama_cpp.llama_supports_gpu_offload())


def accelerator_name() -> str:
    """The GPU backend this llama.cpp build was compiled with (as llama.cpp names it in its
    system info, e.g. "CUDA : ARCHS = 890 | … | CPU : AVX2 = 1 | …"), or "CPU"."""
    for part in system_info().split("|"):
        name, sep, _ = part.partition(" : ")
        if sep and name.strip() and name.strip() != "CPU":
            return name.strip()
    return "CPU"


def amx_build() -> bool:
    """Whether this llama.cpp was compiled with its AMX kernels (Intel Xeon 4th gen and later)."""
    return "AMX_INT8 = 1" in system_info()


def llama_build() -> dict[str, Any]:
    """Versions, compiled-in backends and CPU features of the installed llama.cpp."""
    try:
        import llama_cpp
    except ImportError as exc:
        return {"installed": False, "error": str(exc)}
    info = system_info()
    backends: list[str] = []
    features: list[str] = []
    for part in info.split("|"):
        name, sep, rest = part.partition(" : ")
        if sep:
            backends.append(name.strip())
            part = rest
        key, eq, value = part.partition("=")
        if eq and value.strip() == "1":
            features.append(key.strip())
    return {
        "installed": True,
        "llama_cpp_python": llama_cpp.__version__,
        "backends": backends,
        "gpu_offload": gpu_offload_supported(),
        "cpu_features": features,
        "system_info": info.strip(),
    }
