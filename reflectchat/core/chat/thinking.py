"""Thinking control mapped per format: `--think on|off`, `--effort low|medium|high` and the
budget, turned into what each model family understands — chat-template variables (Qwen3's
`enable_thinking`, gpt-oss's `reasoning_effort`, Seed-OSS's `thinking_budget`), an empty
pre-filled `<think></think>` for R1-style templates, or dropping Reflection's prompt. Where a
model has no such switch, it says so. (Ending a thinking early: core/reply/closing.py.)"""

from __future__ import annotations

from dataclasses import dataclass, field

from reflectchat.core.reply.formats import ReasoningFormat

EFFORTS = ("low", "medium", "high")
# Seed-OSS's thinking_budget per effort (its card recommends multiples of 512).
_SEED_BUDGETS = {"low": 512, "medium": 2048, "high": 8192}


@dataclass(frozen=True)
class ThinkingSwitch:
    """What a thinking request does to the prompt of one model."""

    variables: dict[str, object] = field(default_factory=dict)  # chat-template variables
    prompt_suffix: str = ""  # written after the generation prompt (an empty thinking)
    drop_reasoning_prompt: bool = False  # Reflection: no reflection system prompt, no grammar
    notes: tuple[str, ...] = ()  # for the user: what could not be done, in words


def thinking_switch(
    fmt: ReasoningFormat,
    template: str | None,
    *,
    think: bool | None = None,
    effort: str | None = None,
    budget: int | None = None,
) -> ThinkingSwitch:
    template = template or ""
    off = think is False or budget == 0
    variables: dict[str, object] = {}
    notes: list[str] = []
    suffix = ""
    drop = False
    # Qwen3, GLM-4.5 and Seed-style templates
    if "enable_thinking" in template and (think is not None or budget == 0):
        variables["enable_thinking"] = not off
    if "reasoning_effort" in template:  # gpt-oss harmony: "Reasoning: low|medium|high"
        if effort:
            variables["reasoning_effort"] = effort
        elif off:
            variables["reasoning_effort"] = "low"
            notes.append("gpt-oss always thinks; --think off asks for the lowest effort")
    elif effort:
        notes.append(f"{fmt.title} has no effort switch; --effort {effort} is not applied")
    if "thinking_budget" in template:  # Seed-OSS
        if off:
            variables["thinking_budget"] = 0
        elif budget is not None:
            variables["thinking_budget"] = budget
        elif effort:
            variables["thinking_budget"] = _SEED_BUDGETS[effort]
    if off and not variables:
        if fmt.name == "think":
            suffix = "<think>\n\n</think>\n\n"  # R1-style: an empty thinking, pre-filled
        elif fmt.name in ("reflection", "auto"):
            drop = True
        elif budget != 0:
            notes.append(
                f"{fmt.title} has no thinking switch; --think off is not applied "
                "(--think-budget 0 ends its thinking as soon as it starts)"
            )
    return ThinkingSwitch(variables, suffix, drop, tuple(notes))


# Request fields a remote engine may take for thinking control, by what servers accept:
# `reasoning_effort` (OpenAI, vLLM for gpt-oss), `chat_template_kwargs` (vLLM, SGLang,
# llama-server: enable_thinking, thinking_budget), llama-server's `reasoning_budget`.
REMOTE_THINKING_FIELDS = ("reasoning_effort", "chat_template_kwargs", "reasoning_budget")


def remote_thinking_body(
    *,
    think: bool | None,
    effort: str | None,
    budget: int | None,
    allowed: tuple[str, ...] = REMOTE_THINKING_FIELDS,
) -> dict[str, object]:
    """The extra request body that asks a server for this thinking (only `allowed` fields,
    per endpoint profile: a hosted API may refuse fields it does not know)."""
    body: dict[str, object] = {}
    off = think is False or budget == 0
    if effort and "reasoning_effort" in allowed:
        body["reasoning_effort"] = effort
    elif off and "reasoning_effort" in allowed:
        body["reasoning_effort"] = "low"
    if "chat_template_kwargs" in allowed:
        kwargs: dict[str, object] = {}
        if think is not None or budget == 0:
            kwargs["enable_thinking"] = not off
        if budget is not None:
            kwargs["thinking_budget"] = budget
        if kwargs:
            body["chat_template_kwargs"] = kwargs
    if budget is not None and "reasoning_budget" in allowed:
        body["reasoning_budget"] = budget
    return body
