"""The status line: model, quantization, where it runs, context used, live tokens/s, and the
load progress while a model loads."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.containers import Horizontal
from textual.content import Content
from textual.reactive import reactive
from textual.widget import Widget
from textual.widgets import ProgressBar

from reflectchat.core.reply.sanitize import strip_controls


def describe_backend(backend: object) -> list[str]:
    """Model, quantization and placement, as the status line shows them."""
    describe = getattr(backend, "describe", None)
    if describe is None:
        name = getattr(backend, "model_name", "") or "model"
        return [strip_controls(str(name))]
    info = describe()
    parts = [strip_controls(info.model)]
    if info.quantization:
        parts.append(strip_controls(info.quantization))
    if info.layers_offloaded:
        parts.append(f"{info.accelerator} {info.layers_offloaded}/{info.layers_total} layers")
    else:
        parts.append(f"CPU · {info.threads} threads")
    return parts


class StatusText(Widget):
    """One line of text that repaints without a layout pass (the status line changes several
    times a second while a reply streams; a layout pass costs the whole screen)."""

    DEFAULT_CSS = "StatusText { height: 1; }"
    text: reactive[Content] = reactive(Content(""), layout=False)

    def render(self) -> Content:
        return self.text


class StatusLine(Horizontal):
    def compose(self) -> ComposeResult:
        yield StatusText(id="status-model")
        yield ProgressBar(total=100, show_eta=False, id="load-progress")
        yield StatusText(id="status-usage")

    def on_mount(self) -> None:
        self.query_one(ProgressBar).display = False

    def show_model(self, parts: list[str], *, style: str = "") -> None:
        self.query_one("#status-model", StatusText).text = Content.styled(" · ".join(parts), style)

    def show_usage(
        self, *, used: int | None, n_ctx: int | None, rate: float | None, note: str = ""
    ) -> None:
        parts = []
        if used is not None:
            parts.append(f"ctx {used:,}/{n_ctx:,}" if n_ctx else f"ctx {used:,}")
        elif n_ctx:
            parts.append(f"ctx {n_ctx:,}")
        if rate:
            parts.append(f"{rate:.1f} tok/s")
        if note:
            parts.append(note)
        self.query_one("#status-usage", StatusText).text = Content(" · ".join(parts))

    def show_progress(self, fraction: float | None) -> None:
        bar = self.query_one(ProgressBar)
        if fraction is None:
            bar.display = False
            return
        bar.display = True
        bar.update(progress=round(max(0.0, min(1.0, fraction)) * 100))
