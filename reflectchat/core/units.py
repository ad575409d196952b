"""Byte counts as people read them: one formatter for every size reflectchat prints."""

from __future__ import annotations

GB = 1e9  # decimal, as the Hub, the catalog and disk makers count
MiB = 1 << 20  # binary, as llama-bench counts

_DECIMAL = ("kB", "MB", "GB", "TB", "PB")
_FIXED = {"kB": 1e3, "MB": 1e6, "GB": GB, "TB": 1e12, "KiB": 1 << 10, "MiB": MiB, "GiB": 1 << 30}


def format_bytes(n: float, unit: str | None = None, *, digits: int = 1, small: str = "B") -> str:
    """``n`` bytes as text.

    Without ``unit``, the decimal unit that fits, as the Hub shows sizes: ``512 B``, ``2.8 kB``,
    ``98.4 MB``, ``42.5 GB`` (``small`` names the unit below 1 kB: prose says "bytes"). With
    ``unit`` ("GB", "MiB", …), always that unit with ``digits`` decimals: tables and memory
    reports compare better in one unit.
    """
    if unit is not None:
        return f"{n / _FIXED[unit]:.{digits}f} {unit}"
    if abs(n) < 1000:
        return f"{n:.0f} {small}"
    value = float(n)
    for name in _DECIMAL[:-1]:
        value /= 1000
        if abs(value) < 1000:
            return f"{value:.{digits}f} {name}"
    return f"{value / 1000:,.{digits}f} {_DECIMAL[-1]}"
