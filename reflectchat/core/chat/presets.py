"""Writing presets: `--preset NAME`, `/preset NAME`, the palette, `reflectchat presets`.

A preset is a *part* of the system prompt, added after the model's own (for Reflection models,
the model card's thinking/reflection/output instructions), never instead of it: the model keeps
reasoning in its format and the preset says what the answer should be. It may also set the
sampling (a summary wants a low temperature, an essay a higher one); flags still win.

Built-in presets are below; `[presets.NAME]` tables in the config file add more or replace one
(core/config.py validates them).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from reflectchat.core.errors import UsageError


@dataclass(frozen=True)
class Preset:
    name: str
    system: str  # the part added to the system prompt
    description: str = ""
    temperature: float | None = None
    top_p: float | None = None
    source: str = "built-in"  # or "config"


BUILTIN: dict[str, Preset] = {
    p.name: p
    for p in (
        Preset(
            "email",
            "Task: write an email for the user. In your answer give only the finished email: a "
            'subject line ("Subject: …"), a greeting, short paragraphs and a closing. Match the '
            "tone the user asks for (by default friendly and professional) and keep it concise. "
            "Do not invent facts, names, dates or figures the user did not give: leave "
            "[placeholders] for them.",
            "an email, ready to send",
            temperature=0.7,
        ),
        Preset(
            "essay",
            "Task: write an essay. Plan its structure while thinking and check the argument for "
            "gaps or unsupported claims before answering. In your answer give a title, an "
            "introduction that states the thesis, body paragraphs that each make one point "
            "with support, and a conclusion. Write in clear prose, not bullet points.",
            "a structured essay with a thesis",
            temperature=0.8,
        ),
        Preset(
            "summary",
            "Task: summarize the text the user gives. In your answer put a one-sentence summary "
            "first, then the key points as a short bulleted list, in the text's own terms. Add "
            "nothing the text does not say; if it is unclear or incomplete, say so.",
            "a faithful summary: one sentence, then key points",
            temperature=0.3,
        ),
        Preset(
            "proofread",
            "Task: proofread the user's text. Fix spelling, grammar, punctuation and clumsy "
            "wording while keeping the author's meaning, voice and formatting. While thinking, "
            "check every correction: one that changes the meaning is a mistake to reflect on "
            "and undo. In your answer give the corrected text first, then a short list of the "
            "changes that matter.",
            "corrected text, then the changes that matter",
            temperature=0.2,
        ),
        Preset(
            "explain",
            "Task: explain the topic to a curious non-expert. In your answer start with a "
            "plain-language explanation in one paragraph, then an example or an analogy, then "
            "the finer points. Define each technical term where it first appears, and say "
            "where something is uncertain or debated.",
            "a plain explanation with an example",
            temperature=0.5,
        ),
    )
}


def presets_from_config(tables: Mapping[str, Mapping[str, Any]]) -> dict[str, Preset]:
    """The config's [presets.NAME] tables (already validated by core/config.py) as presets."""
    return {
        name: Preset(
            name,
            table["system"],
            table.get("description", ""),
            table.get("temperature"),
            table.get("top_p"),
            source="config",
        )
        for name, table in tables.items()
    }


def all_presets(config_tables: Mapping[str, Mapping[str, Any]] | None = None) -> dict[str, Preset]:
    """Built-in presets, then the config's (a config preset of the same name replaces one)."""
    return {**BUILTIN, **presets_from_config(config_tables or {})}


def find_preset(name: str, config_tables: Mapping[str, Mapping[str, Any]] | None = None) -> Preset:
    presets = all_presets(config_tables)
    preset = presets.get(name.strip()) or presets.get(name.strip().lower())
    if preset is None:
        known = ", ".join(presets)
        raise UsageError(
            f"no preset '{name}' (known: {known}); add your own as [presets.NAME] in the "
            "config file (reflectchat config edit)"
        )
    return preset


def with_preset(base: str | None, preset: Preset | None) -> str | None:
    """The system prompt: the model's (or the chosen) prompt, then the preset's part."""
    if preset is None:
        return base
    if not base:
        return preset.system
    return f"{base.rstrip()}\n\n{preset.system}"
