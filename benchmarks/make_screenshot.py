"""Save what `reflectchat ask` shows on a terminal as SVG (assets/), from a real run.

Usage: python benchmarks/make_screenshot.py [--model SPEC] [--seed N] PROMPT OUT.svg
"""

from __future__ import annotations

import argparse
from pathlib import Path

from rich.console import Console
from rich.text import Text

from reflectchat.cli.render import footer, render_parsed
from reflectchat.core.chat.prompts import REFLECTION_SYSTEM_PROMPT
from reflectchat.core.engine.base import GenerationParams, Message
from reflectchat.core.engine.llama import LlamaBackend, LoadOptions
from reflectchat.core.models.resolve import resolve_model
from reflectchat.core.reply.stream import ReplyStream


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("prompt")
    parser.add_argument("out", type=Path)
    parser.add_argument("--model", default="smollm2")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    model = resolve_model(args.model)
    backend = LlamaBackend(model, LoadOptions())
    strict = bool(model.entry and model.entry.strict_format)
    messages = [Message("system", REFLECTION_SYSTEM_PROMPT), Message("user", args.prompt)]
    console = Console(record=True, width=90, force_terminal=True, highlight=False, markup=False)
    console.print(Text(f'$ reflectchat ask "{args.prompt}"', style="bold"))
    # The finished screen, rendered whole: a recording console would keep every intermediate
    # frame of the live answer region, which a real terminal overwrites.
    params = GenerationParams(seed=args.seed, strict_format=strict)
    result = ReplyStream(backend, messages, params).run()
    render_parsed(console, result.parsed, show_reasoning=True)
    console.print(footer(result))
    console.save_svg(str(args.out), title="reflectchat ask")


if __name__ == "__main__":
    main()
