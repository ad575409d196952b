"""Downloading models from the Hugging Face Hub into the standard Hugging Face cache.

`plan_pull(spec)` asks the Hub what a spec means (which files, their sizes and sha256; module
``plan``); `pull(plan)` downloads them (``transfer``: bounded, resumable, checked against the
sha256 and the GGUF header); `remove(spec)` deletes a model from the cache again (``removal``).

Files land where huggingface-hub puts them (``models--owner--repo/blobs/<sha256>`` with a link
in ``snapshots/<commit>/<path>``), so `models.resolve_model`, `hf_hub_download` and other tools
all find them. huggingface_hub is imported inside the functions (``settings``): importing it
costs ~0.2 s, which commands that never download should not pay. Its settings (HF_ENDPOINT,
HF_HUB_OFFLINE, HF_HUB_CACHE) are read at call time, not at its import time.
"""

from reflectchat.core.models.hub.errors import HubError
from reflectchat.core.models.hub.plan import PullPlan, RemoteFile, cached_paths, plan_pull
from reflectchat.core.models.hub.removal import remove
from reflectchat.core.models.hub.settings import (
    DEFAULT_ENDPOINT,
    download_timeout,
    hub_endpoint,
    import_huggingface_hub,
    offline_mode,
)
from reflectchat.core.models.hub.transfer import Progress, pull

__all__ = [
    "DEFAULT_ENDPOINT",
    "HubError",
    "Progress",
    "PullPlan",
    "RemoteFile",
    "cached_paths",
    "download_timeout",
    "hub_endpoint",
    "import_huggingface_hub",
    "offline_mode",
    "plan_pull",
    "pull",
    "remove",
]
