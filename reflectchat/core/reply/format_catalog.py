"""The known reasoning formats. One entry per family; `reflectchat formats` lists them.

Each entry is modelled on real replies (../shared/reference/samples/formats/ and the
Reflection model card); tests/core/reply/test_formats.py holds a vector per entry.
"""

from __future__ import annotations

import re

from reflectchat.core.reply.formats import (
    COMMON_TURN_ENDS,
    HeaderKind,
    Marker,
    ReasoningFormat,
    tags,
    turn_markers,
)

_TURNS = turn_markers(*COMMON_TURN_ENDS)
_ANSWER_WRAPPERS = tags({"answer": "output", "response": "output"})
_TOOL_TAGS = tags({"tool_call": "tool_call"})

REFLECTION = ReasoningFormat(
    name="reflection",
    title="Reflection",
    models="Reflection-Llama-3.1-70B (and models tuned on its format)",
    markers=tags({"thinking": "thinking", "reflection": "reflection", "output": "output"}) + _TURNS,
    case_insensitive=True,
    nested=frozenset({"reflection"}),
    special_tokens=True,
    template_hints=("<thinking>", "<reflection>"),
    vocab_hints=("<thinking>", "<reflection>", "<output>"),
    name_pattern=r"reflection",
    sniff=("<thinking>", "<reflection>", "<output>"),
    example="<thinking>…<reflection>…</reflection>…</thinking><output>…</output>",
    close_thinking="\n</thinking>\n\n<output>\n",  # as the strict grammar has it
    prefill=("<thinking>",),
)

THINK = ReasoningFormat(
    name="think",
    title="<think>",
    models="DeepSeek-R1 and distills, Qwen3, QwQ, GLM-4.x, Hunyuan, MiniMax, Phi-4-reasoning, "
    "ERNIE, Step, DeepCoder",
    markers=tags({"think": "thinking"})
    + _ANSWER_WRAPPERS
    + _TOOL_TAGS
    + turn_markers("<|end|>")  # Phi-4-reasoning
    + _TURNS,
    case_insensitive=True,
    template_hints=("<think>", "</think>"),
    vocab_hints=("<think>", "</think>"),
    name_pattern=r"deepseek-?r1|r1-distill|qwen3|qwq|glm-?4\.[15]|glm-z1|hunyuan|minimax-?m|"
    r"phi-?4.*reason|ernie.*thinking|step-?3|deepcoder|openthinker|skywork-or1|acereason",
    sniff=("<think>", "</think>"),
    example="<think>…</think> answer   (the template may pre-fill <think>; GLM adds <answer>)",
    close_thinking="\n</think>\n\n",
    prefill=("<think>",),
)

MARCO_O1 = ReasoningFormat(
    name="marco-o1",
    title="Marco-o1",
    models="AIDC-AI Marco-o1",
    markers=tags({"thought": "thinking", "output": "output"}) + _TURNS,
    case_insensitive=True,
    name_pattern=r"marco-?o1",
    example="<Thought>…</Thought><Output>…</Output>",
    close_thinking="\n</Thought>\n<Output>\n",
)

EXAONE = ReasoningFormat(
    name="exaone",
    title="EXAONE",
    models="LG EXAONE Deep, EXAONE 4.0 (reasoning mode)",
    markers=tags({"thought": "thinking"}) + turn_markers("[|endofturn|]") + _TURNS,
    case_insensitive=True,
    template_hints=("<thought>",),
    name_pattern=r"exaone",
    example="<thought>…</thought> answer",
    close_thinking="\n</thought>\n\n",
    prefill=("<thought>",),
)


def _harmony_header(header: str) -> HeaderKind:
    """The kind of a harmony message from its header, e.g.
    `<|start|>assistant<|channel|>commentary to=functions.get_weather <|constrain|>json`."""
    role, _, channel = header.partition("<|channel|>")
    role = role.replace("<|start|>", "").strip()
    if role and not role.startswith("assistant"):
        return "turn"  # a user, system or tool message: the next turn
    if "to=" in role or "to=" in channel:
        return "tool_call"  # also on the analysis channel, without "functions." (sample 06)
    name = channel.split("<|", 1)[0].strip().split(" ", 1)[0]
    if name == "final":
        return "output"
    if name == "commentary":
        return "output"  # a preamble: the user is meant to see it
    return "thinking"  # analysis, or a channel we don't know: not the answer


def harmony_label(header: str) -> str:
    """A tool call's recipient (`functions.get_weather`), for its block's label."""
    found = re.search(r"to=(\S+)", header.replace("<|", " <|"))
    return found.group(1) if found else ""


HARMONY = ReasoningFormat(
    name="harmony",
    title="gpt-oss harmony",
    models="gpt-oss-20b, gpt-oss-120b",
    markers=(
        Marker("<|start|>", "header"),
        Marker("<|channel|>", "header"),
        Marker("<|end|>", "end"),
        Marker("<|call|>", "end"),
        Marker("<|return|>", "turn"),
        *_TURNS,
    ),
    special_tokens=True,
    header_end="<|message|>",
    classify_header=_harmony_header,
    template_hints=("<|channel|>", "<|message|>"),
    vocab_hints=("<|channel|>", "<|message|>", "<|return|>"),
    name_pattern=r"gpt-?oss",
    sniff=("<|channel|>", "<|message|>"),
    example="<|channel|>analysis<|message|>…<|end|><|start|>assistant<|channel|>final"
    "<|message|>…<|return|>",
    close_thinking="<|end|><|start|>assistant<|channel|>final<|message|>",
)

# Some servers decode harmony's special tokens to nothing: only the words survive, glued to
# the text (sample 09). Recognised by `view`'s sniffing, never guessed mid-stream.
HARMONY_STRIPPED = ReasoningFormat(
    name="harmony-stripped",
    title="gpt-oss harmony, markers stripped",
    models="gpt-oss behind servers that drop special tokens (e.g. some MLX builds)",
    markers=(
        Marker("analysis", "open", "thinking", at_start=True),
        Marker("assistantfinal", "open", "output", after_thinking=True),
    ),
    example="analysis…assistantfinal…",
)

MAGISTRAL = ReasoningFormat(
    name="magistral",
    title="Magistral [THINK]",
    models="Mistral Magistral Small/Medium (2506, 2507, 2509)",
    markers=(
        Marker("[THINK]", "open", "thinking"),
        Marker("[/THINK]", "close", "thinking"),
        *turn_markers("</s>", "[INST]"),
        *_TURNS,
    ),
    special_tokens=True,
    template_hints=("[THINK]",),
    vocab_hints=("[THINK]", "[/THINK]"),
    name_pattern=r"magistral",
    sniff=("[THINK]", "[/THINK]"),
    example="[THINK]…[/THINK]answer",
    close_thinking="[/THINK]",
    prefill=("[THINK]",),
)

KIMI = ReasoningFormat(
    name="kimi",
    title="Kimi ◁think▷",
    models="Kimi-VL-A3B-Thinking, Kimi k1.5-style models",
    markers=(
        Marker("◁think▷", "open", "thinking"),
        Marker("◁/think▷", "close", "thinking"),
        *_TURNS,
    ),
    template_hints=("◁think▷",),
    vocab_hints=("◁think▷",),
    name_pattern=r"kimi",
    sniff=("◁think▷", "◁/think▷"),
    example="◁think▷…◁/think▷answer",
    close_thinking="◁/think▷",
)

SEED_OSS = ReasoningFormat(
    name="seed-oss",
    title="Seed-OSS <seed:think>",
    models="ByteDance Seed-OSS-36B",
    markers=(
        Marker("<seed:think>", "open", "thinking"),
        Marker("</seed:think>", "close", "thinking"),
        Marker("<seed:cot_budget_reflect>", "open", "note"),
        Marker("</seed:cot_budget_reflect>", "close", "note"),
        Marker("<seed:bos>", "drop"),
        *turn_markers("<seed:eos>"),
        *_TURNS,
    ),
    nested=frozenset({"note"}),
    special_tokens=True,
    template_hints=("<seed:think>",),
    vocab_hints=("<seed:think>", "<seed:cot_budget_reflect>"),
    name_pattern=r"seed-?oss",
    sniff=("<seed:think>", "</seed:think>"),
    example="<seed:think>…<seed:cot_budget_reflect>budget note</seed:cot_budget_reflect>…"
    "</seed:think>answer",
    close_thinking="</seed:think>",
    prefill=("<seed:think>",),
)

GEMMA4 = ReasoningFormat(
    name="gemma4",
    title="Gemma 4 thought channel",
    models="Google Gemma 4 (thinking on)",
    markers=(
        Marker("<|channel>thought", "open", "thinking"),
        Marker("<|channel>", "open", "thinking"),
        Marker("<channel|>", "close", "thinking"),
        *turn_markers("<turn|>", "<|turn>"),
        *_TURNS,
    ),
    special_tokens=True,
    template_hints=("<|channel>",),
    vocab_hints=("<|channel>", "<channel|>"),
    name_pattern=r"gemma-?4",
    sniff=("<|channel>", "<channel|>"),
    example="<|channel>thought\n…<channel|>answer",
    close_thinking="<channel|>",
)

APRIEL = ReasoningFormat(
    name="apriel",
    title="Apriel final response",
    models="ServiceNow Apriel-Nemotron / Apriel-1.5 Thinker",
    markers=(
        Marker("Here are my reasoning steps:", "open", "thinking", at_start=True),
        Marker("[BEGIN FINAL RESPONSE]", "open", "output", after_thinking=True),
        Marker("[END FINAL RESPONSE]", "close", "output"),
        *turn_markers("<|end|>"),
        *_TURNS,
    ),
    template_hints=("[BEGIN FINAL RESPONSE]",),
    name_pattern=r"apriel",
    sniff=("[BEGIN FINAL RESPONSE]",),
    example="Here are my reasoning steps:\n…[BEGIN FINAL RESPONSE]…[END FINAL RESPONSE]",
    close_thinking="\n[BEGIN FINAL RESPONSE]\n",
    prefill=("Here are my reasoning steps:",),
)

COMMAND_A = ReasoningFormat(
    name="command-a",
    title="Command A Reasoning",
    models="Cohere Command A Reasoning",
    markers=(
        Marker("<|START_THINKING|>", "open", "thinking"),
        Marker("<|END_THINKING|>", "close", "thinking"),
        Marker("<|START_RESPONSE|>", "open", "output"),
        Marker("<|END_RESPONSE|>", "close", "output"),
        Marker("<|START_ACTION|>", "open", "tool_call"),
        Marker("<|END_ACTION|>", "close", "tool_call"),
        Marker("<|START_OF_TURN_TOKEN|>", "drop"),
        Marker("<|CHATBOT_TOKEN|>", "drop"),
        *_TURNS,
    ),
    special_tokens=True,
    template_hints=("<|START_THINKING|>",),
    vocab_hints=("<|START_THINKING|>", "<|END_THINKING|>"),
    name_pattern=r"command-?a.*reason",
    sniff=("<|START_THINKING|>", "<|START_RESPONSE|>"),
    example="<|START_THINKING|>…<|END_THINKING|><|START_RESPONSE|>…<|END_RESPONSE|>",
    close_thinking="<|END_THINKING|><|START_RESPONSE|>",
    prefill=("<|START_THINKING|>",),
)

# What an unknown model gets: the XML-ish families together (their tags don't clash), and the
# other formats' distinctive openers, which switch the parser to that format when they come
# first. Reflection's own tags, so the demo model's constrained output parses as before.
_SPECIFIC = (HARMONY, MAGISTRAL, KIMI, SEED_OSS, GEMMA4, APRIEL, COMMAND_A)
_SWITCHES: tuple[Marker, ...] = tuple(
    Marker(text, "switch", target=fmt.name)
    for fmt in _SPECIFIC
    for text in dict.fromkeys(
        m.text for m in fmt.markers if m.action in ("open", "header") and not m.at_start
    )
)
AUTO = ReasoningFormat(
    name="auto",
    title="any tags (auto)",
    models="unknown models: the tag families below, switching on another format's marker",
    markers=tags(
        {
            "thinking": "thinking",
            "think": "thinking",
            "thought": "thinking",
            "reflection": "reflection",
            "output": "output",
        }
    )
    + _ANSWER_WRAPPERS
    + _TOOL_TAGS
    + _SWITCHES
    + turn_markers("<|end|>")  # Phi-4's end of turn; harmony's <|end|> only after a switch
    + _TURNS,
    case_insensitive=True,
    nested=frozenset({"reflection"}),
    example="any of the below, detected from the text",
    close_thinking="\n</thinking>\n\n<output>\n",  # as the strict grammar has it
    prefill=("<thinking>", "<think>", "<thought>"),
)

FORMATS: tuple[ReasoningFormat, ...] = (
    AUTO,
    REFLECTION,
    THINK,
    MARCO_O1,
    EXAONE,
    HARMONY,
    HARMONY_STRIPPED,
    MAGISTRAL,
    KIMI,
    SEED_OSS,
    GEMMA4,
    APRIEL,
    COMMAND_A,
)
BY_NAME = {fmt.name: fmt for fmt in FORMATS}
