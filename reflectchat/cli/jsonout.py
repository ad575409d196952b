"""JSON on stdout that is safe to print to a terminal."""

from __future__ import annotations

import json
import re
from typing import Any

# json escapes C0 controls itself. The rest of what a terminal could act on is escaped by
# hand: DEL and C1 controls (8-bit CSI/OSC), bidi embeddings/overrides/isolates, the Unicode
# line/paragraph separators, and lone surrogates (raw bytes under surrogateescape). They can
# only occur inside JSON strings, where \uXXXX means the same character: the data is unchanged.
_UNSAFE = re.compile("[\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069\ud800-\udfff]")


def to_json(data: dict[str, Any]) -> str:
    text = json.dumps(data, ensure_ascii=False)
    return _UNSAFE.sub(lambda m: f"\\u{ord(m.group()):04x}", text)
