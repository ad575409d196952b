"""One root for every failure reflectchat reports to people, and the exit codes it reports.

Each error's message is one line saying what happened and what to do; `exit_code` is what the
command line exits with when the error reaches it (cli/main.py maps nothing else). Callers that
need to tell failures apart catch the subclasses below; the modules that raise them keep their
own names (GGUFError, RemoteError, …) as subclasses of these.
"""

from __future__ import annotations

# The process exit codes, defined here once.
EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_USAGE = 2  # the command was asked for something it cannot do as given
SIGNAL_EXIT_BASE = 128  # a shell reports "killed by signal N" as 128 + N
EXIT_HANGUP = SIGNAL_EXIT_BASE + 1  # SIGHUP
EXIT_INTERRUPTED = SIGNAL_EXIT_BASE + 2  # SIGINT (Ctrl+C)
EXIT_TERMINATED = SIGNAL_EXIT_BASE + 15  # SIGTERM


def signal_exit_code(signum: int) -> int:
    """The shell's exit status for a process stopped by signal `signum`."""
    return SIGNAL_EXIT_BASE + signum


class ReflectchatError(Exception):
    """A failure said for people. `exit_code` is the class's unless one is given."""

    exit_code: int = EXIT_FAILURE

    def __init__(self, *args: object, exit_code: int | None = None) -> None:
        super().__init__(*args)
        if exit_code is not None:
            self.exit_code = exit_code


class UsageError(ReflectchatError):
    """What was asked cannot be done as given: a flag, a setting, an id, the input."""

    exit_code = EXIT_USAGE


class ModelError(ReflectchatError):
    """A model that cannot be used: not found, not a usable GGUF, too big, failing to load."""

    exit_code = EXIT_USAGE


class EngineError(ReflectchatError):
    """A failure of the engine running the model (local or remote) while it answers."""


class ContextOverflowError(EngineError):
    """The prompt does not fit in the model's context window."""


class StoreError(ReflectchatError):
    """A history failure meant for people: one line naming the file and what to do."""

    def __init__(self, message: str, *, code: int | None = None) -> None:
        super().__init__(message)
        self.code = code  # the SQLite primary result code, when SQLite failed


class NetworkError(ReflectchatError):
    """A server (an OpenAI-compatible endpoint, the Hugging Face Hub) failed or is unreachable."""
