"""The Hub settings, read at call time: huggingface_hub reads its own once, at import, and
importing it costs ~0.2 s that commands which never download should not pay."""

from __future__ import annotations

import os
import warnings
from typing import Any

DEFAULT_ENDPOINT = "https://huggingface.co"
CONNECT_TIMEOUT = 5.0  # seconds to open a connection: a dead network fails fast
REQUEST_TIMEOUT = 10.0  # seconds to wait for an API answer; HF_HUB_ETAG_TIMEOUT overrides
# seconds a download may go without a single byte before it counts as stalled;
# HF_HUB_DOWNLOAD_TIMEOUT overrides (huggingface-hub's own 10 s gives up on slow links)
DOWNLOAD_TIMEOUT = 60.0
_TRUE = {"1", "ON", "YES", "TRUE"}


def hub_endpoint() -> str:
    return (os.environ.get("HF_ENDPOINT") or DEFAULT_ENDPOINT).rstrip("/")


def offline_mode() -> bool:
    value = os.environ.get("HF_HUB_OFFLINE") or os.environ.get("TRANSFORMERS_OFFLINE") or ""
    return value.strip().upper() in _TRUE


def token() -> str | None:
    """HF_TOKEN; None lets huggingface_hub use the token saved by `hf auth login`."""
    return os.environ.get("HF_TOKEN") or os.environ.get("HUGGING_FACE_HUB_TOKEN") or None


def has_token() -> bool:
    if token():
        return True
    try:
        return bool(import_huggingface_hub().get_token())
    except Exception:  # a broken token file or OIDC set-up is "no token" here
        return False


def import_huggingface_hub() -> Any:
    """Import huggingface_hub, first turning off its telemetry unless the user chose: it would
    otherwise fetch an agent registry from the Hub on first use (3 s when the network is dead).
    Its other settings are read at import time, so reflectchat passes them explicitly.

    Its log lines and warnings are silenced too (unless HF_HUB_VERBOSITY asks for them):
    reflectchat says what went wrong in one line of its own, and huggingface-hub's retry
    messages on stderr would only bury it."""
    os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
    import huggingface_hub
    from huggingface_hub.utils import logging as hf_logging

    if not os.environ.get("HF_HUB_VERBOSITY"):
        hf_logging.set_verbosity(hf_logging.CRITICAL + 1)
        warnings.filterwarnings("ignore", module=r"huggingface_hub(\.|$)")
    return huggingface_hub


def download_timeout() -> float:
    """Seconds without a byte after which a download stops: HF_HUB_DOWNLOAD_TIMEOUT, else 60."""
    try:
        value = float(os.environ.get("HF_HUB_DOWNLOAD_TIMEOUT") or DOWNLOAD_TIMEOUT)
    except ValueError:
        return DOWNLOAD_TIMEOUT
    return value if value > 0 else DOWNLOAD_TIMEOUT


def request_timeout() -> Any:
    import httpx2

    try:
        read = float(os.environ.get("HF_HUB_ETAG_TIMEOUT") or REQUEST_TIMEOUT)
    except ValueError:
        read = REQUEST_TIMEOUT
    return httpx2.Timeout(read, connect=min(CONNECT_TIMEOUT, read))
