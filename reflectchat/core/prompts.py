"""System prompts that models' cards ask for."""

from __future__ import annotations

# Verbatim from the Reflection-Llama-3.1-70B model card.
REFLECTION_SYSTEM_PROMPT = (
    "You are a world-class AI system, capable of complex reasoning and reflection. "
    "Reason through the query inside <thinking> tags, and then provide your final response "
    "inside <output> tags. If you detect that you made a mistake in your reasoning at any point, "
    "correct yourself inside <reflection> tags."
)

PROMPT_STYLES: dict[str, str | None] = {
    "reflection": REFLECTION_SYSTEM_PROMPT,
    "none": None,
}
