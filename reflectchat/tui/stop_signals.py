"""SIGTERM and SIGHUP in the chat app: a part of `ChatApp`.

Their default action kills the process mid-frame: the reply is lost and the terminal stays in
the alternate screen with the mouse reported and the cursor hidden. Treated as a stop instead:
the reply is cancelled, the worker saves what was written, then the app exits normally
(Textual restores the terminal) with 128 + the signal's number.
"""

from __future__ import annotations

import asyncio
import signal
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from reflectchat.tui.app import ChatApp


class StopSignals:
    """Catches the signals while `app` runs; the signal's number goes to `app.exit_signal`."""

    def __init__(self, app: ChatApp) -> None:
        self.app = app
        self._signals: list[int] = []

    def catch(self) -> None:
        loop = asyncio.get_running_loop()
        for name in ("SIGTERM", "SIGHUP"):
            signum = getattr(signal, name, None)
            if signum is None:
                continue
            try:
                loop.add_signal_handler(signum, self._on_signal, signum)
            except (NotImplementedError, RuntimeError, ValueError):
                return  # not Unix, or not the main thread (some tests): the default stays
            self._signals.append(signum)

    def release(self) -> None:
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return
        for signum in self._signals:
            loop.remove_signal_handler(signum)
        self._signals.clear()

    def _on_signal(self, signum: int) -> None:
        app = self.app
        if app.exit_signal is not None:  # a second one: don't wait any longer
            self.exit_now()
            return
        app.exit_signal = signum
        if app.replies.pending:  # waiting for the model: nothing was sent or stored
            app.action_stop()
        if app.replies.cancel():  # the worker stops within a token and saves the reply
            app.set_timer(10.0, self.exit_now)  # a stuck backend can't keep us here
            return
        self.exit_now()

    def exit_now(self) -> None:
        assert self.app.exit_signal is not None
        self.app.exit(return_code=128 + self.app.exit_signal)
