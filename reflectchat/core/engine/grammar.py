"""Strict format: a llama.cpp GBNF grammar that makes every reply
`<thinking>…(<reflection>…</reflection>…)*</thinking><output>…</output>`.

A 135M model only produces the structure this way; mid-size models that drift from it benefit
too. Where a tag is a single special token in the model's vocabulary (Reflection 70B), the
grammar names that token (`<[id]>`) so decoding emits the real control token, exactly as the
model was trained to; elsewhere it spells the tag as text.
"""

from __future__ import annotations

TAGS = ("<thinking>", "</thinking>", "<reflection>", "</reflection>", "<output>", "</output>")

# Bodies may not contain "<", so a small model can't wander into half-written tags, and the
# answer must say something: "\n" then `</output>` is an empty answer (a 135M model does it
# when "answer now" cuts its thinking at the wrong moment; 8 + 1 + 391 keeps 400). The caps
# (characters per body, at most three reflections) make even a 135M model, which never wants
# to close a tag on its own, reach `</output>` and EOS within ~700 tokens.
_TEMPLATE = """\
root       ::= {thinking} "\\n" thought reflected{{0,3}} {end_thinking} "\\n\\n" answered
reflected  ::= {reflection} "\\n" reflbody {end_reflection} "\\n" thought
answered   ::= {output} "\\n" answer {end_output}
thought    ::= [^<]{{1,400}}
reflbody   ::= [^<]{{1,200}}
answer     ::= [ \\t\\r\\n]{{0,8}} [^< \\t\\r\\n] [^<]{{0,391}}
"""


def strict_format_grammar(special_token_ids: dict[str, int] | None = None) -> str:
    """The GBNF text; `special_token_ids` maps tags that are single special tokens to their id."""
    ids = special_token_ids or {}

    def ref(tag: str) -> str:
        return f"<[{ids[tag]}]>" if tag in ids else f'"{tag}"'

    return _TEMPLATE.format(
        thinking=ref("<thinking>"),
        end_thinking=ref("</thinking>"),
        reflection=ref("<reflection>"),
        end_reflection=ref("</reflection>"),
        output=ref("<output>"),
        end_output=ref("</output>"),
    )
