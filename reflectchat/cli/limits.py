"""argparse types for numeric flags, checked against core.config.LIMITS: the same table the
config file and REFLECTCHAT_* variables are checked against, so a flag and a setting accept
exactly the same values."""

from __future__ import annotations

import argparse
from collections.abc import Callable

from reflectchat.core.config import gpu_layers_value, ranged_number, whole_number


def whole_number_flag(key: str) -> Callable[[str], int]:
    def parse(text: str) -> int:
        try:
            return whole_number(key, text)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(f"must be {exc}, got '{text}'") from None

    return parse


def number_flag(key: str) -> Callable[[str], float]:
    def parse(text: str) -> float:
        try:
            return ranged_number(key, text)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(f"must be {exc}, got '{text}'") from None

    return parse


def gpu_layers_flag(text: str) -> str:
    try:
        return gpu_layers_value(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"expected {exc}, got '{text}'") from None
