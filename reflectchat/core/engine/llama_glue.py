"""The low-level side of the local engine: llama.cpp reached through llama-cpp-python's ctypes
bindings where its Python API falls short — the log callback, the vocabulary (tokenizing and
token pieces with special tokens kept), sampling settings, RPC devices, and the model
parameters `Llama` has no argument for (load progress, the AMX workaround).

llama_cpp is imported inside the functions, so importing this module stays cheap.
"""

from __future__ import annotations

import codecs
import ctypes
import os
import re
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from reflectchat.core.engine.base import EngineError, GenerationParams, ModelLoadError
from reflectchat.core.host.llama_build import amx_build


class LlamaLog:
    """Collects llama.cpp's log lines instead of letting them spill onto the user's terminal, so
    a load failure can be explained in one line (and shown whole with --debug)."""

    def __init__(self) -> None:
        self.lines: deque[str] = deque(maxlen=200)
        self.echo = False
        self._callback: Any = None

    def install(self) -> None:
        import llama_cpp

        if self._callback is not None:
            return

        @llama_cpp.llama_log_callback
        def callback(level: int, text: bytes, user_data: ctypes.c_void_p) -> None:
            line = text.decode("utf-8", "replace")
            self.lines.append(line)
            if self.echo:
                os.write(2, text)

        self._callback = callback  # keep a reference: ctypes callbacks die with their object
        llama_cpp.llama_log_set(callback, ctypes.c_void_p(0))

    def reason(self) -> str | None:
        """The most telling error line llama.cpp logged, without its function-name prefix."""
        lines = "".join(self.lines).splitlines()
        for marker in ("error loading model:", "error:", "failed", "unknown", "unsupported"):
            for line in reversed(lines):
                at = line.lower().rfind(marker)
                if at >= 0:
                    if marker == "error loading model:":
                        return line[at + len(marker) :].strip()
                    return _LOG_PREFIX.sub("", line.strip())
        return None


_LOG_PREFIX = re.compile(r"^[A-Za-z_]+:\s*")
LLAMA_LOG = LlamaLog()


class Vocab:
    """A loaded model's vocabulary through llama.cpp's C API."""

    def __init__(self, llm: Any) -> None:
        import llama_cpp

        self._lib = llama_cpp
        self._vocab = llm._model.vocab
        self._piece_buffer = ctypes.create_string_buffer(256)
        self._pieces: dict[int, bytes] = {}

    def tokenize(self, text: bytes, *, add_bos: bool) -> list[int]:
        """llama-cpp-python's tokenize allocates a buffer of the model's whole trained context
        on every call (40 MB for a 10M-context model); size it from the text instead: a token
        holds at least one byte, plus BOS/EOS the tokenizer may add."""
        lib = self._lib
        n_max = len(text) + 8
        buf = (lib.llama_token * n_max)()
        n = lib.llama_tokenize(self._vocab, text, len(text), buf, n_max, add_bos, True)
        if n < 0:  # cannot happen with the bound above, but llama.cpp says how many it needs
            n_max = -n
            buf = (lib.llama_token * n_max)()
            n = lib.llama_tokenize(self._vocab, text, len(text), buf, n_max, add_bos, True)
            if n < 0:
                raise EngineError(f"llama.cpp could not tokenize the prompt ({n})")
        return list(buf[:n])

    def piece(self, token: int) -> bytes:
        """A token's bytes with special tokens kept (control tokens become their text)."""
        cached = self._pieces.get(token)
        if cached is not None:
            return cached
        buf = self._piece_buffer
        n = self._lib.llama_token_to_piece(self._vocab, token, buf, len(buf), 0, True)
        if n < 0:  # longer than the buffer: llama.cpp says how much it needs
            buf = ctypes.create_string_buffer(-n)
            n = self._lib.llama_token_to_piece(self._vocab, token, buf, len(buf), 0, True)
        piece = buf.raw[: max(n, 0)]
        self._pieces[token] = piece
        return piece

    def is_eog(self, token: int) -> bool:
        """End of generation: EOS, EOT and the like."""
        return bool(self._lib.llama_vocab_is_eog(self._vocab, token))

    def adds_bos(self) -> bool:
        """Whether the model expects a BOS token at the start of the prompt."""
        return bool(self._lib.llama_vocab_get_add_bos(self._vocab))

    def is_special(self, token: int) -> bool:
        """A control or user-defined token (one the tokenizer never splits)."""
        special = self._lib.LLAMA_TOKEN_ATTR_CONTROL | self._lib.LLAMA_TOKEN_ATTR_USER_DEFINED
        return bool(self._lib.llama_vocab_get_attr(self._vocab, token) & special)


class TokenDecoder:
    """Token ids to text, special tokens kept. The bytes of one character may span tokens
    (byte-level BPE splits emoji and CJK): an incomplete UTF-8 sequence is held back until the
    rest arrives, and whatever is left at the end becomes U+FFFD rather than an exception."""

    def __init__(self, piece: Callable[[int], bytes]) -> None:
        self._piece = piece
        self._utf8 = codecs.getincrementaldecoder("utf-8")(errors="replace")

    def decode(self, token: int) -> str:
        return self._utf8.decode(self._piece(token))

    def flush(self) -> str:
        return self._utf8.decode(b"", final=True)


def sampling(params: GenerationParams) -> dict[str, Any]:
    """`Llama.generate`'s sampler settings: the caller's temperature and top-p; top-k, min-p
    and the repeat penalty are fixed."""
    return {
        "temp": params.temperature,
        "top_p": params.top_p,
        "top_k": 40,
        "min_p": 0.05,
        "repeat_penalty": 1.0,
    }


def random_seed() -> int:
    return int.from_bytes(os.urandom(4), "little") & 0x7FFFFFFF


_RPC_REGISTERED: set[str] = set()


def _loaded_ggml(lib_dir: Path) -> list[Path]:
    """The ggml library file llama.cpp itself has loaded (libggml.so.0 on Linux). Opening the
    same library under another name (libggml.so) maps a second copy with its own device
    registry, and servers registered there are never seen by the model loader."""
    try:
        with open("/proc/self/maps") as maps:
            paths = {line.split()[-1] for line in maps if "/libggml.so" in line}
    except OSError:  # not Linux
        return []
    return sorted(Path(p) for p in paths if Path(p).parent == lib_dir)


def _check_reachable(server: str) -> None:
    """A TCP connection to HOST:PORT first: ggml's RPC client answers a refused or unreachable
    server with GGML_ABORT (a core dump and a gdb backtrace), not an error we could report."""
    import socket

    host, _, port = server.rpartition(":")
    host = host.strip("[]")  # [::1]:50052
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ModelLoadError(f"--rpc takes HOST:PORT (e.g. 10.0.0.2:50052), not '{server}'")
    try:
        socket.create_connection((host, int(port)), timeout=5).close()
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise ModelLoadError(
            f"cannot reach the RPC server {server} ({reason.lower()}); is rpc-server running "
            "there, and is its port open?"
        ) from None


def register_rpc_servers(servers: tuple[str, ...]) -> None:
    """Make llama.cpp `rpc-server`s available as devices, as llama.cpp's own `--rpc` does:
    ggml's RPC backend creates a device per server, registered globally, and a model loaded
    afterwards spreads its layers over every registered device. llama-cpp-python has no
    parameter for it, so the ggml functions are called through ctypes."""
    import llama_cpp

    if not llama_cpp.llama_supports_rpc():
        raise ModelLoadError(
            "this llama-cpp-python was built without RPC support; rebuild it with "
            'CMAKE_ARGS="-DGGML_RPC=on" pip install --force-reinstall --no-cache-dir '
            "llama-cpp-python"
        )
    lib_dir = Path(llama_cpp.__file__).parent / "lib"
    candidates = (
        _loaded_ggml(lib_dir) + sorted(lib_dir.glob("libggml.*")) + sorted(lib_dir.glob("ggml.dll"))
    )
    if not candidates:
        raise ModelLoadError(f"cannot find ggml's library in {lib_dir} to register RPC servers")
    ggml = ctypes.CDLL(str(candidates[0]))
    ggml.ggml_backend_reg_by_name.restype = ctypes.c_void_p
    ggml.ggml_backend_reg_by_name.argtypes = [ctypes.c_char_p]
    ggml.ggml_backend_reg_get_proc_address.restype = ctypes.c_void_p
    ggml.ggml_backend_reg_get_proc_address.argtypes = [ctypes.c_void_p, ctypes.c_char_p]
    ggml.ggml_backend_register.argtypes = [ctypes.c_void_p]
    rpc = ggml.ggml_backend_reg_by_name(b"RPC")
    address = rpc and ggml.ggml_backend_reg_get_proc_address(rpc, b"ggml_backend_rpc_add_server")
    if not address:
        raise ModelLoadError(
            "this llama.cpp's RPC backend has no ggml_backend_rpc_add_server; "
            "upgrade llama-cpp-python"
        )
    add_server = ctypes.CFUNCTYPE(ctypes.c_void_p, ctypes.c_char_p)(address)
    for server in servers:
        if server in _RPC_REGISTERED:
            continue
        _check_reachable(server)  # ggml aborts the whole process on a refused connection
        reg = add_server(server.encode())
        if not reg:
            raise ModelLoadError(f"cannot reach the RPC server {server}; is rpc-server running?")
        ggml.ggml_backend_register(reg)
        _RPC_REGISTERED.add(server)


def extra_buffers_allowed() -> bool:
    """llama.cpp's AMX kernels crash (SIGSEGV in ggml_backend_amx_mul_mat on any multi-token
    batch) on Xeon VMs that advertise AMX — a native build on such a machine would take the
    whole process down on the first prompt. They are reached only through the "extra" weight
    buffer types, so a build with AMX loads without them (measured here: the same speed as a
    build without AMX). REFLECTCHAT_AMX=1 opts back in where AMX is known to work."""
    if os.environ.get("REFLECTCHAT_AMX", "").strip() in ("1", "true", "yes", "on"):
        return True
    return not amx_build()


@contextmanager
def model_params(
    progress: Callable[[float], bool | None] | None, *, extra_buffers: bool
) -> Iterator[None]:
    """Set model parameters that llama-cpp-python's `Llama` has no argument for (a load-progress
    callback, extra buffer types) by wrapping the params factory it calls, for this load only."""
    if progress is None and extra_buffers:
        yield
        return
    import llama_cpp.llama as llama_module

    raw = llama_module.llama_cpp
    callback = None
    if progress is not None:

        @raw.llama_progress_callback
        def callback(value: float, user_data: ctypes.c_void_p) -> bool:
            try:
                return progress(float(value)) is not False
            except Exception:  # never let a UI error abort or crash the load
                return True

    original = raw.llama_model_default_params

    def patched() -> Any:
        params = original()
        if callback is not None:
            params.progress_callback = callback
        if not extra_buffers:
            params.use_extra_bufts = False
        return params

    raw.llama_model_default_params = patched
    try:
        yield
    finally:
        raw.llama_model_default_params = original
