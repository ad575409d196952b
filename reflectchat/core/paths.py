"""Where reflectchat keeps its files.

platformdirs gives each OS its usual folders; REFLECTCHAT_HOME=DIR puts config, data and cache
under DIR instead (tests use it so they never touch the real home).
"""

from __future__ import annotations

import os
from pathlib import Path

APP_NAME = "reflectchat"


def _home_override() -> Path | None:
    home = os.environ.get("REFLECTCHAT_HOME")
    return Path(home).expanduser() if home else None


def config_dir() -> Path:
    if (home := _home_override()) is not None:
        return home / "config"
    import platformdirs

    return Path(platformdirs.user_config_dir(APP_NAME))


def data_dir() -> Path:
    if (home := _home_override()) is not None:
        return home / "data"
    import platformdirs

    return Path(platformdirs.user_data_dir(APP_NAME))


def cache_dir() -> Path:
    if (home := _home_override()) is not None:
        return home / "cache"
    import platformdirs

    return Path(platformdirs.user_cache_dir(APP_NAME))
