"""The README's pictures stay honest: the replay is the real transcript, the pictures made
from it show no invented figures (no token count, no speed), the committed pictures are what
the script makes now, and the real-run picture says which model and machine it came from.
The replay part of benchmarks/make_screenshots.py runs here (no model needed)."""

from __future__ import annotations

import hashlib
import html
import importlib.util
import re
import sys
from pathlib import Path
from types import ModuleType

import pytest

from tests.support.paths import REPO, SHARED

SCRIPT = REPO / "benchmarks" / "make_screenshots.py"
ASSETS = REPO / "assets"
REPLAY = REPO / "tests" / "data" / "replays" / "reflection70b-ollama6689.txt"
# The replay as copied from ../shared/reference/reflection-format.md: a plain clone (without
# ../shared) still notices an edit.
REPLAY_SHA256 = "719a1f48b883b76037caace1f54f84c1cd6f96c8ee44f23c859ce10e07d2ee18"
# Any figure a replay would have invented: speed, token counts, context use.
SPEED = re.compile(r"\d[\d,.]*\s*tok/s|\d[\d,]*\s+tokens\b|\bctx \d|\bthinking \d|\banswer \d")


def script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("make_screenshots", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def svg_text(path: Path) -> str:
    """The characters a picture shows, in order (Textual and Rich write one <text> per run)."""
    runs = re.findall(r"<text[^>]*>(.*?)</text>", path.read_text(encoding="utf-8"), re.S)
    return "".join(html.unescape(r) for r in runs).replace("\xa0", " ")


def test_the_replay_is_the_real_transcript() -> None:
    text = REPLAY.read_text(encoding="utf-8")
    assert hashlib.sha256(text.encode()).hexdigest() == REPLAY_SHA256
    assert script().REFLECTION_HELLO.text == text
    reference = SHARED / "reference" / "reflection-format.md"
    if not reference.exists():
        pytest.skip("../shared is not next to this checkout; the pinned hash checked it")
    quoted = reference.read_text(encoding="utf-8")
    block = quoted[quoted.index("      <thinking>") : quoted.index("      </output>") + 15]
    assert "\n".join(line.removeprefix("      ") for line in block.split("\n")) + "\n" == text


def test_replay_pictures_show_the_transcript_and_no_figures(tmp_path: Path) -> None:
    made = script().replay_pictures(tmp_path)
    for path in made:
        shown = svg_text(path)
        assert "Replay of a real Reflection-Llama-3.1-70B reply" in shown
        assert "No model ran here" in shown and "(replay)" in shown
        assert "Hello!" in shown
        assert not SPEED.search(shown), SPEED.search(shown)
        # What is committed is what the script makes now: no hand-edited picture.
        assert svg_text(ASSETS / path.name) == shown, f"regenerate {path.name}: {SCRIPT}"
    thinking = svg_text(tmp_path / "chat-thinking.svg")
    for line in REPLAY.read_text(encoding="utf-8").splitlines():
        words = re.sub(r"</?\w+>", "", line).strip()
        if words:
            assert words.split(" …")[0] in " ".join(thinking.split()), words


def test_the_real_run_picture_names_its_model_and_machine() -> None:
    shown = svg_text(ASSETS / "ask-demo.svg")
    assert shown.startswith("reflectchat ask# a real run: the demo model (SmolLM2-135M")
    assert re.search(r"on .+, \d+ threads\s*\$ reflectchat ask --seed \d+ ", shown)
    # measured, so shown
    assert re.search(r"smollm2 · \d+ tokens · (thinking \d+ · )?[\d.]+ tok/s", shown)


def test_the_readme_says_what_each_picture_is() -> None:
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    pictures = re.findall(r"!\[([^\]]*)\]\(assets/([\w.-]+\.svg)\)", readme)
    assert {name for _, name in pictures} == {
        "ask-demo.svg",
        "chat-thinking.svg",
        "chat-answer.svg",
    }
    for caption, name in pictures:
        if name == "ask-demo.svg":
            assert "real run" in caption and "SmolLM2" in caption
        else:
            assert "replay" in caption and "Reflection" in caption
        assert not SPEED.search(caption)
    assert not (REPO / "benchmarks" / "make_tui_screenshots.py").exists()  # one script
