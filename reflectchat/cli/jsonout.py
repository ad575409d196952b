"""JSON on stdout that is safe to print to a terminal."""

from __future__ import annotations

import json
from typing import Any


def to_json(data: dict[str, Any]) -> str:
    # json escapes C0 controls itself; C1 controls (8-bit CSI/OSC) need escaping by hand.
    text = json.dumps(data, ensure_ascii=False)
    return "".join(f"\\u{ord(c):04x}" if 0x7F <= ord(c) <= 0x9F else c for c in text)
