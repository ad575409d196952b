"""Where the tests find the repository and the shared reference files next to it."""

from __future__ import annotations

from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SHARED = REPO.parent / "shared"
SAMPLES = SHARED / "reference" / "samples"
SYNTH = SHARED / "tools" / "synth_gguf.py"
