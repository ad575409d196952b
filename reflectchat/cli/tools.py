"""`reflectchat doctor` and `reflectchat bench`."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from reflectchat.cli.limits import gpu_layers_flag, whole_number_flag
from reflectchat.core.chat.export import to_json
from reflectchat.core.units import format_bytes


def add_tool_parsers(commands: Any) -> None:
    doctor = commands.add_parser(
        "doctor", help="check llama.cpp, GPU offload and memory; say how to fix what's off"
    )
    doctor.add_argument("--json", action="store_true")
    bench = commands.add_parser(
        "bench", help="prompt-processing and generation speed on this machine (like llama-bench)"
    )
    bench.add_argument("-m", "--model", metavar="SPEC")
    # The same limits as ask's flags and the config (core.config.LIMITS).
    tokens, repetitions = whole_number_flag("bench_tokens"), whole_number_flag("repetitions")
    bench.add_argument("--gpu-layers", type=gpu_layers_flag, default="auto", metavar="N|all|auto")
    bench.add_argument("--threads", type=whole_number_flag("threads"), metavar="N")
    bench.add_argument("-p", "--pp", type=tokens, default=512, metavar="N", help="prompt tokens")
    bench.add_argument("-n", "--tg", type=tokens, default=128, metavar="N", help="generated tokens")
    bench.add_argument("-r", "--repetitions", type=repetitions, default=3, metavar="N")
    bench.add_argument("--force", action="store_true", help="skip the memory fit check")
    bench.add_argument("--json", action="store_true")


def _gb(n: int | None) -> str:
    return format_bytes(n, "GB") if n else "unknown"


def run_doctor(args: argparse.Namespace) -> int:
    from reflectchat.core.host.doctor import diagnose

    report = diagnose()
    if args.json:
        print(to_json(report))
        return 0
    build = report["llama_cpp"]
    lines = [
        f"reflectchat {report['reflectchat']} · Python {report['python']} · {report['platform']}",
    ]
    if build.get("installed"):
        lines += [
            f"llama-cpp-python {build['llama_cpp_python']} · backends: "
            f"{', '.join(build['backends']) or 'CPU'} · GPU offload: "
            f"{'yes' if build['gpu_offload'] else 'no'}",
            f"CPU: {report['cpu']} · features: {' '.join(build['cpu_features'])}",
        ]
    lines.append(
        f"RAM: {_gb(report['ram_total_bytes'])} total, "
        f"{_gb(report['ram_available_bytes'])} available"
    )
    if report["gpus"]:
        for gpu in report["gpus"]:
            lines.append(
                f"GPU: {gpu['name']} ({gpu['backend']}) · {_gb(gpu['total_bytes'])} "
                f"total, {_gb(gpu['free_bytes'])} free"
            )
    else:
        lines.append("GPU: none found")
    fit = [f["model"] for f in report["catalog_fit"] if f["fits"]]
    too_big = [f["model"] for f in report["catalog_fit"] if not f["fits"]]
    lines.append(f"fits this machine: {', '.join(fit) or 'none of the catalog downloads'}")
    if too_big:
        lines.append(f"too big here: {', '.join(too_big)}")
    for advice in report["advice"]:
        lines.append(f"→ {advice}")
    print("\n".join(lines))
    return 0


def run_bench(args: argparse.Namespace) -> int:
    import dataclasses

    from reflectchat.cli.options import session_options
    from reflectchat.core.chat.setup import load_local
    from reflectchat.core.host.bench import run_bench as bench
    from reflectchat.core.models.resolve import resolve_model

    # Only as much context as one test needs; no seed (sampling is not what is measured).
    options = dataclasses.replace(session_options(args), n_ctx=max(args.pp, args.tg) + 16)
    model = resolve_model(options.model)
    backend: Any = load_local(model, options)  # ModelError, UsageError: exit 2, one line
    info = backend.describe()
    results = bench(backend, pp=args.pp, tg=args.tg, repetitions=args.repetitions)
    size = sum(h.file_size for h in backend.parts)
    params = backend.header.parameter_count
    if args.json:
        print(
            to_json(
                {
                    "model": info.model,
                    "path": str(model.path),
                    "size_bytes": size,
                    "params": params,
                    "quantization": info.quantization,
                    "backend": info.accelerator,
                    "gpu_layers": info.layers_offloaded,
                    "threads": info.threads,
                    "results": [
                        {
                            "test": r.test,
                            "tokens_per_second": round(r.tokens_per_second, 2),
                            "stdev": round(r.stdev, 2),
                            "samples": r.samples,
                        }
                        for r in results
                    ],
                }
            )
        )
        return 0
    header = ["model", "size", "params", "backend", "ngl", "threads", "test", "t/s"]
    rows = [
        [
            f"{info.model} {info.quantization or ''}".strip(),
            format_bytes(size, "MiB", digits=2),
            f"{params / 1e6:.2f} M" if params < 1e9 else f"{params / 1e9:.2f} B",
            info.accelerator,
            str(info.layers_offloaded),
            str(info.threads),
            r.test,
            f"{r.tokens_per_second:.2f} ± {r.stdev:.2f}",
        ]
        for r in results
    ]
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(header)]
    print("| " + " | ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)) + " |")
    print("| " + " | ".join("-" * w for w in widths) + " |")
    for row in rows:
        print("| " + " | ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) + " |")
    sys.stdout.flush()
    return 0
