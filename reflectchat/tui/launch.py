"""`reflectchat chat` (and `reflectchat` with no arguments): flags in, the app running."""

from __future__ import annotations

import argparse

from reflectchat.core.chat.store import Store
from reflectchat.tui.app import ChatApp
from reflectchat.tui.loading import ChatOptions, llama_factory, remote_factory


def options_from_args(args: argparse.Namespace) -> ChatOptions:
    load = {
        "n_ctx": getattr(args, "ctx", None),
        "n_threads": getattr(args, "threads", None),
        "gpu_layers": getattr(args, "gpu_layers", None) or "auto",
        "seed": getattr(args, "seed", None),
    }
    rpc = [s.strip() for s in (getattr(args, "rpc", None) or "").split(",") if s.strip()]
    if rpc:
        load["rpc_servers"] = tuple(rpc)
    if getattr(args, "force", False):
        load["force"] = True  # load even when the fit check says it won't fit
    return ChatOptions(
        model=getattr(args, "model", None),
        system=getattr(args, "system", None),
        no_system=bool(getattr(args, "no_system", False)),
        temperature=getattr(args, "temperature", None),
        top_p=getattr(args, "top_p", None),
        seed=getattr(args, "seed", None),
        max_tokens=getattr(args, "max_tokens", None) or 1024,
        strict_format=getattr(args, "strict_format", None),
        keep_reasoning=bool(getattr(args, "keep_reasoning", False)),
        conversation_id=getattr(args, "conversation", None),
        continue_last=bool(getattr(args, "continue_last", False)),
        keep_thinking_open=bool(getattr(args, "keep_thinking_open", False)),
        show_reasoning=getattr(args, "reasoning", None) != "hide",
        load=load,
    )


def run_chat(
    args: argparse.Namespace,
    *,
    theme: str | None = None,
    store: Store | None = None,
    store_error: str | None = None,
) -> int:
    """Run the app until the user quits. The caller owns (and closes) the store."""
    options = options_from_args(args)
    endpoint = getattr(args, "remote_endpoint", None)
    factory = remote_factory(endpoint) if endpoint else llama_factory(options.load)
    app = ChatApp(
        backend_factory=factory,
        options=options,
        store=store,
        store_error=store_error,
    )
    if theme:
        app.initial_theme = theme
    app.run()
    return app.return_code or 0
