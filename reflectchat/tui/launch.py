"""`reflectchat chat` (and `reflectchat` with no arguments): options in, the app running."""

from __future__ import annotations

from collections.abc import Sequence

from reflectchat.core.chat.attachments import Attachment
from reflectchat.core.chat.setup import SessionOptions
from reflectchat.core.chat.store import Store
from reflectchat.tui.app import ChatApp
from reflectchat.tui.loading import ChatOptions, llama_factory, remote_factory


def run_chat(
    options: SessionOptions,
    *,
    keep_thinking_open: bool = False,
    show_reasoning: bool = True,
    theme: str | None = None,
    store: Store | None = None,
    store_error: str | None = None,
    prompt: str | None = None,
    attachments: Sequence[Attachment] = (),
) -> int:
    """Run the app until the user quits. The caller owns (and closes) the store."""
    chat = ChatOptions.from_session(
        options, keep_thinking_open=keep_thinking_open, show_reasoning=show_reasoning
    )
    endpoint = chat.endpoint
    factory = remote_factory(endpoint) if endpoint is not None else llama_factory(chat)
    app = ChatApp(
        backend_factory=factory,
        options=chat,
        store=store,
        store_error=store_error,
    )
    if theme:
        app.initial_theme = theme
    app.initial_prompt = prompt
    app.replies.attachments = list(attachments)  # they go with the first message
    app.run()
    return app.return_code or 0
