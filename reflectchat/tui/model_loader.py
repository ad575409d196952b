"""The chat's model: loaded in a worker thread (progress in the status line), switched with
`/model`, put to use once it is there. A part of `ChatApp`."""

from __future__ import annotations

from functools import partial
from typing import TYPE_CHECKING

from textual.message import Message
from textual.timer import Timer

from reflectchat.core.chat.session import warm_conversation
from reflectchat.core.engine.base import Backend
from reflectchat.core.reply.sanitize import strip_controls
from reflectchat.tui.loading import BackendFactory, entry_for, generation_params, load_error_types
from reflectchat.tui.status import describe_backend
from reflectchat.tui.streaming import MeteredBackend

if TYPE_CHECKING:
    from reflectchat.tui.app import ChatApp

# -- news from the loading thread (posted, never waited on) ----------------------------------


class ModelLoaded(Message):
    def __init__(self, backend: Backend, spec: str) -> None:
        super().__init__()
        self.backend = backend
        self.spec = spec


class ModelLoadFailed(Message):
    def __init__(self, spec: str, error: str) -> None:
        super().__init__()
        self.spec = spec
        self.error = error


class ModelLoader:
    """Loads models with `factory` (None: the app was given a fixed backend) for `app`."""

    def __init__(self, app: ChatApp, factory: BackendFactory | None) -> None:
        self.app = app
        self.factory = factory
        self.aborted = False  # set when the app goes: the loading thread stops at once
        self._progress = 0.0
        self._progress_timer: Timer | None = None

    def start(self, spec: str) -> None:
        app = self.app
        app.loading = True
        app.load_error = None
        self._progress = 0.0
        app.model_spec = spec
        app.entry = entry_for(spec)
        app.status_line.show_model([f"Loading {strip_controls(spec)}…"])
        app.status_line.show_progress(0.0)
        self._progress_timer = app.set_interval(0.25, self._show_progress)
        app.run_worker(
            partial(self._load, spec),
            name="load_model",
            group="load",
            description=f"load_model({spec!r})",
            exclusive=True,
            exit_on_error=False,
            thread=True,
        )

    def _show_progress(self) -> None:
        self.app.status_line.show_progress(self._progress)

    def _load(self, spec: str) -> None:
        """In the worker thread: only posts its news to the app."""
        assert self.factory is not None

        def progress(value: float) -> bool:
            self._progress = value
            return not self.aborted

        try:
            backend = self.factory(spec, progress)
        except load_error_types() as exc:
            self.app.post_message(ModelLoadFailed(spec, str(exc)))
            return
        except Exception as exc:  # never a crash: say what happened
            self.app.post_message(
                ModelLoadFailed(spec, f"unexpected error: {type(exc).__name__}: {exc}")
            )
            return
        self.app.post_message(ModelLoaded(backend, spec))

    def _end(self) -> None:
        self.app.loading = False
        if self._progress_timer is not None:
            self._progress_timer.stop()
            self._progress_timer = None
        self.app.status_line.show_progress(None)

    def loaded(self, message: ModelLoaded) -> None:
        self._end()
        self.use(message.backend, message.spec)

    def failed(self, message: ModelLoadFailed) -> None:
        app = self.app
        self._end()
        app.load_error = message.error
        app.status_line.show_model(["No model loaded — /model NAME loads one"], style="$text-error")
        app.say(message.error, "error", title="The model could not be loaded")
        pending = app.replies.take_pending()
        if pending is not None:
            _, reply = pending
            reply.fail(f"no model: {message.error}")
        app.mount_note(f"✗ {message.error}", classes="error")

    def use(self, backend: Backend, spec: str) -> None:
        app = self.app
        app.backend = MeteredBackend(backend)
        app.model_spec = spec
        app.entry = entry_for(spec, backend)
        app.params = generation_params(app.options, app.entry)
        if app.session is not None:
            app.session.backend = app.backend
            app.session.params = app.params
        try:
            parts = describe_backend(backend)
        except Exception:  # a status line is not worth a crash
            parts = [strip_controls(backend.model_name)]
        app.status_line.show_model(parts)
        app.show_usage()
        pending = app.replies.take_pending()
        if pending is not None:
            text, reply = pending
            app.replies.generate_into(reply, text)
        elif app.conversation_id is not None:  # a reopened one: read its KV cache meanwhile
            warm_conversation(app.backend, app.conversation_id)

    def switch(self, spec: str) -> None:
        app = self.app
        spec = spec.strip()
        if not spec:
            return
        if self.factory is None:
            app.say("This chat was started with a fixed model; it cannot switch.", "warning")
            return
        if app.generating or app.loading:
            app.say("Wait for the reply or the load to finish (Esc stops a reply).", "warning")
            return
        # Drop the old model first: two 70B models do not fit in memory together.
        app.backend = None
        if app.session is not None:
            # The session is not used again until a new backend is set on it (use()).
            app.session.backend = None  # type: ignore[assignment]
        app.context_used = None
        app.last_rate = None
        self.start(spec)
