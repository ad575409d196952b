"""Where the tests find the repository, its test data, and the shared reference files next to
it (optional: tests that use them skip without them)."""

from __future__ import annotations

from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
# Replies and their expected splits, in the repository: see tests/core/reply/test_transcripts.py
TRANSCRIPTS = REPO / "tests" / "data" / "transcripts"
SHARED = REPO.parent / "shared"
SAMPLES = SHARED / "reference" / "samples"
SYNTH = SHARED / "tools" / "synth_gguf.py"
