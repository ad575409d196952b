"""The config file (TOML, in the platformdirs config folder) and REFLECTCHAT_* variables.

Precedence: the file < command-line flags < REFLECTCHAT_* environment variables. Unknown keys and
wrong types are errors that name the key and its line, so a typo never silently does nothing.
"""

from __future__ import annotations

import os
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from reflectchat.core.errors import UsageError
from reflectchat.core.paths import config_dir

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

CONFIG_FILENAME = "config.toml"


class ConfigError(UsageError):
    """One line: the file (or variable), the key, its line and what is wrong."""


# The one table of numeric limits, name -> (lowest, highest): argparse (cli/main.py, bench) and
# the config file / REFLECTCHAT_* variables check against it, so a value means the same everywhere.
# Past these, llama.cpp crashes (a segfault at 5,000,000 threads, an abort at 10^20) instead of
# failing.
LIMITS: dict[str, tuple[int | float, int | float]] = {
    # n_ctx is an int32 of tokens; 2^24 is past every model's trained context (beyond the
    # model's own is the engine's business)
    "context": (1, 2**24),
    "max_tokens": (1, 2**24),
    "think_budget": (0, 2**24),  # thinking tokens; 0: answer without thinking
    # ggml sizes its thread pool for GGML_MAX_N_THREADS = 512. A fixed bound rather than a
    # multiple of this machine's cores, so one config file is valid on every machine.
    "threads": (1, 512),
    "gpu_layers": (0, 9999),  # besides "all" and "auto"; 999 and 9999 are common for "all"
    "seed": (-1, 2**32 - 1),  # llama.cpp seeds are uint32; -1 means a random one
    "temperature": (0.0, 5.0),
    "top_p": (0.0, 1.0),
    "bench_tokens": (1, 2**20),  # bench -p/-n: the context is sized to fit them
    "repetitions": (1, 1000),
    "kv_cache_mb": (0, 2**22),  # saved conversation KV caches, MiB; 0 turns them off
}


def _shown(limit: float) -> str:
    return str(limit) if isinstance(limit, int) else f"{limit:g}"


def whole_number(key: str, value: object) -> int:
    """`value` (an int, or text from a flag or a variable) as an int within LIMITS[key]."""
    low, high = LIMITS[key]
    what = f"a whole number from {_shown(low)} to {_shown(high)}"
    number: int | None = None
    if isinstance(value, int) and not isinstance(value, bool):
        number = value
    elif isinstance(value, str):
        try:
            number = int(value.strip())
        except ValueError:  # also a string of thousands of digits
            raise ValueError(what) from None
    if number is None or not low <= number <= high:
        raise ValueError(what)
    return number


def ranged_number(key: str, value: object) -> float:
    """`value` as a float within LIMITS[key] (nan and inf never are)."""
    low, high = LIMITS[key]
    what = f"a number from {_shown(low)} to {_shown(high)}"
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise ValueError(what)
    try:
        number = float(value)
    except (ValueError, OverflowError):  # not a number; an int past float's range
        raise ValueError(what) from None
    if not low <= number <= high:
        raise ValueError(what)
    return number


def gpu_layers_value(value: object) -> str:
    """A number of layers (within LIMITS), "all" or "auto", as text."""
    text = str(value).strip().lower()
    if text in ("auto", "all") and isinstance(value, str):
        return text
    try:
        return str(whole_number("gpu_layers", value))
    except ValueError:
        low, high = LIMITS["gpu_layers"]
        raise ValueError(f'a number of layers from {low} to {high}, "all" or "auto"') from None


def _choice(*options: str) -> Any:
    def check(value: object) -> str:
        if isinstance(value, str) and value in options:
            return value
        raise ValueError(" or ".join(f'"{o}"' for o in options))

    return check


def _in_range(key: str, check: Any) -> Any:
    def validate(value: object) -> Any:
        return check(key, value)

    return validate


def _text(value: object) -> str:
    if isinstance(value, str) and value.strip():
        return value.strip()
    raise ValueError("a non-empty string")


def _bool(value: object) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in (
        "1",
        "true",
        "yes",
        "on",
        "0",
        "false",
        "no",
        "off",
    ):
        return value.lower() in ("1", "true", "yes", "on")
    raise ValueError("true or false")


# key -> (validator, what it does). The same names, upper-cased, are the environment variables.
SETTINGS: dict[str, tuple[Any, str]] = {
    "model": (_text, "default model: an alias, alias:QUANT, a .gguf path or owner/repo:QUANT"),
    "gpu_layers": (gpu_layers_value, 'layers to offload: a number, "all" or "auto"'),
    "context": (_in_range("context", whole_number), "context size in tokens"),
    "threads": (_in_range("threads", whole_number), "CPU threads"),
    "max_tokens": (_in_range("max_tokens", whole_number), "reply budget in tokens"),
    "temperature": (_in_range("temperature", ranged_number), "sampling temperature"),
    "top_p": (_in_range("top_p", ranged_number), "nucleus sampling"),
    "reasoning": (_choice("show", "hide"), 'show or hide thinking: "show" or "hide"'),
    "keep_reasoning": (_bool, "send earlier replies back whole, thinking included"),
    "think_budget": (
        _in_range("think_budget", whole_number),
        "end the thinking after this many tokens and answer (0: no thinking)",
    ),
    "think": (_choice("on", "off"), 'thinking on or off, where the model has a switch: "on"/"off"'),
    "effort": (_choice("low", "medium", "high"), 'thinking effort: "low", "medium" or "high"'),
    "theme": (_text, "the chat app's theme"),
    "endpoint": (_text, "default remote engine: a URL or the name of an [endpoints.NAME] table"),
    "kv_cache_mb": (
        _in_range("kv_cache_mb", whole_number),
        "disk for saved conversation KV caches, MiB (least recently used go first; 0: off)",
    ),
}
ENDPOINT_KEYS = {
    "url",
    "model",
    "api_key_env",
    "headers",
    "extra_body",
    "connect_timeout",
    "read_timeout",
    "thinking_fields",
}
PRESET_KEYS = ("system", "description", "temperature", "top_p")
PRESET_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")  # typed after --preset and /preset


@dataclass(frozen=True)
class Config:
    path: Path
    file_values: dict[str, Any]
    env_values: dict[str, Any]
    endpoints: dict[str, dict[str, Any]] = field(default_factory=dict)
    presets: dict[str, dict[str, Any]] = field(default_factory=dict)  # [presets.NAME]

    def get(self, key: str, flag: Any = None, default: Any = None) -> Any:
        """The effective value: environment, else the command-line flag, else the file."""
        if key in self.env_values:
            return self.env_values[key]
        if flag is not None:
            return flag
        return self.file_values.get(key, default)


def config_path() -> Path:
    return config_dir() / CONFIG_FILENAME


def load_config(path: Path | None = None) -> Config:
    path = path or config_path()
    values = read_file(path)
    endpoints = values.pop("endpoints", {})
    presets = values.pop("presets", {})
    return Config(path, values, read_env(), endpoints, presets)


def read_file(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return {}
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read the config file {path}: {exc}") from None
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}; fix it or delete the file") from None
    values = {}
    for key, value in raw.items():
        line = _line_of(text, key)
        where = f"{path}" + (f" line {line}" if line else "")
        if key == "endpoints":
            values[key] = _endpoints(value, text, path)
            continue
        if key == "presets":
            values[key] = _presets(value, text, path)
            continue
        if key not in SETTINGS:
            known = ", ".join(SETTINGS)
            raise ConfigError(f"{where}: '{key}' is not a setting (known: {known})")
        check, _ = SETTINGS[key]
        try:
            values[key] = check(value)
        except ValueError as exc:
            raise ConfigError(f"{where}: '{key}' must be {exc}, not {value!r}") from None
    return values


def _endpoints(value: object, text: str, path: Path) -> dict[str, dict[str, Any]]:
    """[endpoints.NAME] tables: url (required), model, api_key_env, headers, extra_body,
    connect_timeout and read_timeout (seconds)."""
    where = f"{path} [endpoints]"
    if not isinstance(value, dict):
        raise ConfigError(f"{where}: must be tables like [endpoints.vllm] with a url")
    profiles = {}
    for name, table in value.items():
        line = _line_of_table(text, f"endpoints.{name}")
        here = f"{path}" + (f" line {line}" if line else "") + f" [endpoints.{name}]"
        if not isinstance(table, dict):
            raise ConfigError(f"{here}: must be a table with a url")
        unknown = set(table) - ENDPOINT_KEYS
        if unknown:
            raise ConfigError(
                f"{here}: '{sorted(unknown)[0]}' is not an endpoint setting "
                f"(known: {', '.join(sorted(ENDPOINT_KEYS))})"
            )
        if not isinstance(table.get("url"), str) or not table["url"].strip():
            raise ConfigError(f"{here}: 'url' is required, e.g. url = \"http://127.0.0.1:8000/v1\"")
        for key in ("model", "api_key_env"):
            if key in table and not isinstance(table[key], str):
                raise ConfigError(f"{here}: '{key}' must be a string")
        headers = table.get("headers", {})
        if not isinstance(headers, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in headers.items()
        ):
            raise ConfigError(f"{here}: 'headers' must be a table of strings")
        if not isinstance(table.get("extra_body", {}), dict):
            raise ConfigError(f"{here}: 'extra_body' must be a table")
        fields = table.get("thinking_fields", [])
        from reflectchat.core.chat.thinking import REMOTE_THINKING_FIELDS as known

        if not isinstance(fields, list) or any(f not in known for f in fields):
            raise ConfigError(
                f"{here}: 'thinking_fields' must be a list of {', '.join(map(repr, known))}"
            )
        for key in ("connect_timeout", "read_timeout"):
            seconds = table.get(key, 1)
            if (
                isinstance(seconds, bool)
                or not isinstance(seconds, (int, float))
                or not (0 < seconds < float("inf"))
            ):
                raise ConfigError(f"{here}: '{key}' must be a number of seconds above 0")
        profiles[name] = dict(table, headers=dict(headers))
    return profiles


def _presets(value: object, text: str, path: Path) -> dict[str, dict[str, Any]]:
    """[presets.NAME] tables: system (required: the part added to the system prompt),
    description, temperature and top_p (within LIMITS, as everywhere)."""
    if not isinstance(value, dict):
        raise ConfigError(f"{path} [presets]: must be tables like [presets.letter] with a system")
    presets = {}
    for name, table in value.items():
        line = _line_of_table(text, f"presets.{name}")
        here = f"{path}" + (f" line {line}" if line else "") + f" [presets.{name}]"
        if not PRESET_NAME.match(name):
            raise ConfigError(
                f"{here}: a preset name is letters, digits, '-' and '_' (up to 64), not {name!r}"
            )
        if not isinstance(table, dict):
            raise ConfigError(f'{here}: must be a table with a system, e.g. system = "…"')
        unknown = sorted(set(table) - set(PRESET_KEYS))
        if unknown:
            raise ConfigError(
                f"{here}: '{unknown[0]}' is not a preset setting (known: {', '.join(PRESET_KEYS)})"
            )
        preset: dict[str, Any] = {}
        checks = {
            "system": _text,
            "description": _any_text,
            "temperature": _in_range("temperature", ranged_number),
            "top_p": _in_range("top_p", ranged_number),
        }
        if "system" not in table:
            raise ConfigError(
                f"{here}: 'system' is required: the text added to the system prompt, e.g. "
                'system = "Task: write a cover letter."'
            )
        for key, item in table.items():
            try:
                preset[key] = checks[key](item)
            except ValueError as exc:
                raise ConfigError(f"{here}: '{key}' must be {exc}, not {item!r}") from None
        presets[name] = preset
    return presets


def _any_text(value: object) -> str:
    if isinstance(value, str):
        return value
    raise ValueError("a string")


def _line_of_table(text: str, name: str) -> int | None:
    match = re.search(rf"^\s*\[\s*{re.escape(name)}\s*\]", text, re.MULTILINE)
    return text.count("\n", 0, match.start()) + 1 if match else None


def read_env() -> dict[str, Any]:
    values = {}
    for key, (check, _) in SETTINGS.items():
        name = f"REFLECTCHAT_{key.upper()}"
        if name in os.environ:
            try:
                values[key] = check(os.environ[name])
            except ValueError as exc:
                raise ConfigError(f"{name} must be {exc}, not {os.environ[name]!r}") from None
    return values


def _line_of(text: str, key: str) -> int | None:
    pattern = re.compile(rf"^\s*[\"']?{re.escape(key)}[\"']?\s*=", re.MULTILINE)
    match = pattern.search(text)
    return text.count("\n", 0, match.start()) + 1 if match else None


def set_value(key: str, value: str, path: Path | None = None) -> Path:
    """Write `key = value` into the file, keeping everything else in it as it is.

    The new text is checked before it replaces the old file (atomically): it must parse, pass
    the same validation as `read_file`, and give back exactly `value`. Anything else is a
    ConfigError that leaves the file as it was."""
    import contextlib
    import tempfile
    import unicodedata

    path = path or config_path()
    check, _ = SETTINGS[key]
    check(value)
    bad = next((c for c in value if unicodedata.category(c) == "Cc"), None)
    if bad is not None:  # a newline or terminal escape in a setting is never meant
        raise ConfigError(
            f"'{key}' cannot contain a control character (U+{ord(bad):04X}, e.g. a newline); "
            f"{path} is unchanged"
        )
    target = Path(os.path.realpath(path))  # a config file that is a link stays one
    try:
        text = target.read_text(encoding="utf-8")
    except FileNotFoundError:
        text = ""
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read the config file {path}: {exc}") from None
    text = _with_setting(text, key, f"{key} = {_toml_string(value)}")
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    tmp = Path(name)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as f:
            f.write(text)
        _check_written(tmp, path, key, value)
        with contextlib.suppress(OSError):  # a new file keeps mkstemp's private mode
            os.chmod(tmp, target.stat().st_mode & 0o777)  # keep the old file's permissions
        os.replace(tmp, target)  # never leave a half-written config
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


def _with_setting(text: str, key: str, line: str) -> str:
    """`text` with its top-level `key = …` line replaced by `line`, or `line` added among the
    top-level keys (before the first [table], where a key would belong to that table)."""
    table = re.search(r"^[ \t]*\[", text, re.MULTILINE)
    head, tail = (text[: table.start()], text[table.start() :]) if table else (text, "")
    name = re.escape(key)
    pattern = re.compile(rf"^[ \t]*(?:{name}|\"{name}\"|'{name}')[ \t]*=.*$", re.MULTILINE)
    if pattern.search(head):
        # a function, not a replacement string: backslashes in the value stay as they are
        return pattern.sub(lambda _: line, head, count=1) + tail
    if head and not head.endswith("\n"):
        head += "\n"
    return head + line + "\n" + ("\n" if tail else "") + tail


def _check_written(tmp: Path, path: Path, key: str, value: str) -> None:
    """The file about to replace the config must read back, with `key` exactly `value`."""
    try:
        read_file(tmp)
        raw = tomllib.loads(tmp.read_text(encoding="utf-8"))
    except ConfigError as exc:
        message = str(exc).replace(str(tmp), str(path))
        raise ConfigError(f"cannot set '{key}': {message}; {path} is unchanged") from None
    if raw.get(key) != value:
        raise ConfigError(
            f"cannot set '{key}' in {path}: the file would not read it back as written "
            "(is the key there twice, or inside a multi-line value?); it is unchanged"
        )


_TOML_ESCAPES = {
    "\\": "\\\\",
    '"': '\\"',
    "\b": "\\b",
    "\t": "\\t",
    "\n": "\\n",
    "\f": "\\f",
    "\r": "\\r",
}


def _toml_string(value: str) -> str:
    """A TOML basic string holding exactly `value`: backslash, quote and every control
    character escaped (TOML allows none of them raw)."""
    out = []
    for c in value:
        if c in _TOML_ESCAPES:
            out.append(_TOML_ESCAPES[c])
        elif ord(c) < 0x20 or ord(c) == 0x7F:
            out.append(f"\\u{ord(c):04X}")
        else:
            out.append(c)
    return '"' + "".join(out) + '"'


TEMPLATE = """\
# reflectchat settings. Command-line flags override these; REFLECTCHAT_<KEY> variables override
# both (e.g. REFLECTCHAT_MODEL=reflection-70b:q4_k_m). Uncomment what you want to change.
{body}
"""


def template() -> str:
    body = "\n".join(f"# {key} = …    # {help_}" for key, (_, help_) in SETTINGS.items())
    body += (
        "\n\n# A writing preset for --preset NAME (reflectchat presets lists them all):\n"
        "# [presets.letter]\n"
        '# system = "Task: write a cover letter."    # added after the system prompt\n'
        '# description = "a cover letter"\n'
        "# temperature = 0.6"
    )
    return TEMPLATE.format(body=body)
