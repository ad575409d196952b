"""Scripted replies and helpers for the chat app's tests, snapshots, screenshots and benchmark.

The transcripts are Reflection-style (`<thinking>` with `<reflection>`s inside, then
`<output>`), cut into token-sized chunks the way a model streams them.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterator, Sequence

from reflectchat.core.engine.base import (
    CancelToken,
    Finished,
    GenerationParams,
    GenerationStats,
    Message,
    StreamEvent,
)
from reflectchat.testing.scripted_backend import ScriptedBackend

STRAWBERRY_PROMPT = 'How many r\'s are in the word "strawberry"?'

# Two reflections, Markdown and a code block in the answer.
STRAWBERRY_REPLY = """<thinking>
The question asks how many times the letter "r" appears in "strawberry".

1. Spell the word out: s-t-r-a-w-b-e-r-r-y.
2. Look for the letter r: there is one after the "t", and then "rr" near the end.
3. "rr" is one double letter, so I count it once: 1 + 1 = 2.

<reflection>
Wait — a double letter is two letters, not one. "berry" is b-e-r-r-y: that is two r's on
their own. Counting "rr" once was the classic mistake. The total is 1 + 2 = 3.
</reflection>

4. Recount letter by letter with positions: s(1) t(2) **r(3)** a(4) w(5) b(6) e(7) **r(8)**
   **r(9)** y(10). Three r's, at positions 3, 8 and 9.

<reflection>
Let me make sure I am not now over-counting: positions 3, 8, 9 are three distinct letters, and
there is no r anywhere else. The count of 3 stands.
</reflection>

So the answer is 3.
</thinking>
<output>
There are **3** r's in "strawberry":

- one in **str**aw…
- two in …be**rr**y

A quick way to check:

```python
>>> "strawberry".count("r")
3
```
</output>"""

# Model text that looks like markup or carries terminal escapes: it must show as written.
MARKUP_PROMPT = "Show me some tricky text"
MARKUP_REPLY = (
    "<thinking>\n"
    "The user wants [bold]tricky[/bold] text. Llama prompts use [INST] and [/INST]; Rich uses"
    " [link=https://example.com]links[/link] and [red]colours[/]. \x1b[31mThis was red\x1b[0m"
    " and this \x1b]52;c;aGFja2Vk\x07 tried to write the clipboard.\n"
    "<reflection>\n"
    "[/INST] is not a closing tag here — it is plain text. So is [/].\n"
    "</reflection>\n"
    "</thinking>\n"
    "<output>\n"
    "Here it is, verbatim: `[bold]` [/INST] [link=x]click[/link] [@click=app.quit]quit[/]"
    " <div>html</div> a < b > c \x1b]0;pwned title\x07and \x1b[2Jno screen clearing.\n"
    "</output>"
)

UNTAGGED_REPLY = "Paris is the capital of France."
INCOMPLETE_REPLY = "<thinking>\nLet me think about this step by step.\n\n1. First, the premise"


def chunked(text: str, size: int = 4) -> list[str]:
    """Token-like chunks: words and spaces, long runs split every `size` characters, and each
    tag on its own (as a Reflection GGUF emits it: one special token)."""
    out: list[str] = []
    for piece in re.split(r"(</?(?:thinking|reflection|output)>)", text):
        if not piece:
            continue
        if piece.startswith("<") and piece.endswith(">"):
            out.append(piece)
            continue
        for word in re.findall(r"\s+|\S+", piece):
            out.extend(word[i : i + size] for i in range(0, len(word), size))
    return out


FROZEN_STATS = GenerationStats(
    prompt_tokens=88,
    completion_tokens=212,
    cached_tokens=0,
    ttft_s=0.21,
    tokens_per_second=42.0,
    total_s=5.25,
)


class FrozenStatsBackend(ScriptedBackend):
    """A ScriptedBackend whose final stats are fixed, for snapshots that must not change."""

    def stream(
        self, messages: list[Message], params: GenerationParams, cancel: CancelToken | None = None
    ) -> Iterator[StreamEvent]:
        for event in super().stream(messages, params, cancel):
            if isinstance(event, Finished):
                n = event.stats.completion_tokens
                yield Finished(event.reason, _frozen(n))
            else:
                yield event


def _frozen(completion_tokens: int) -> GenerationStats:
    return GenerationStats(
        prompt_tokens=FROZEN_STATS.prompt_tokens,
        completion_tokens=completion_tokens,
        cached_tokens=0,
        ttft_s=FROZEN_STATS.ttft_s,
        tokens_per_second=FROZEN_STATS.tokens_per_second,
        total_s=FROZEN_STATS.total_s,
    )


def scripted(*replies: str, frozen: bool = True, **kwargs: object) -> ScriptedBackend:
    chunks: Sequence[Sequence[str]] = [chunked(r) for r in replies]
    cls = FrozenStatsBackend if frozen else ScriptedBackend
    return cls(chunks, **kwargs)  # type: ignore[arg-type]


async def wait_for_reply(app: object, pilot: object, timeout: float = 30.0) -> None:
    """Until the app has finished the reply it is writing (and drawn it)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    await pilot.pause()  # type: ignore[attr-defined]
    while getattr(app, "generating", False):
        if loop.time() > deadline:
            raise TimeoutError("the reply did not finish")
        await pilot.pause(0.02)  # type: ignore[attr-defined]
    await pilot.pause()  # type: ignore[attr-defined]


async def wait_until(pilot: object, predicate: object, timeout: float = 30.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not predicate():  # type: ignore[operator]
        if loop.time() > deadline:
            raise TimeoutError("condition not met")
        await pilot.pause(0.02)  # type: ignore[attr-defined]


# -- long transcripts (benchmark) -----------------------------------------------------------

_THOUGHT = (
    "{n}. Consider the case where the input has {k} elements. The straightforward approach "
    "scans every pair, which costs O(n^2) comparisons; with {k} elements that is about "
    "{kk} steps. A hash map brings it down to one pass, trading memory for time.\n\n"
)
_REFLECTION = (
    "<reflection>\nWait, I assumed the keys are hashable. If they are lists, the hash map "
    "approach fails; converting each key to a tuple first fixes that. Step {n} still holds "
    "with that change.\n</reflection>\n\n"
)
_ANSWER_SECTION = """## Part {n}: handling {k} items

The approach for this part, in short:

- build an index of the items first, keyed by a tuple of their fields;
- walk the input once, looking each item up in the index;
- collect the matches in order, so the output is stable.

```python
def find_pairs_{n}(items, target):
    seen = {{}}
    pairs = []
    for i, item in enumerate(items):
        key = tuple(item) if isinstance(item, list) else item
        if target - key in seen:
            pairs.append((seen[target - key], i))
        seen[key] = i
    return pairs
```

| input size | pairwise scan | one pass |
|---:|---:|---:|
| {k} | {kk} | {k} |
| {k2} | {kk2} | {k2} |

1. The pairwise scan is simple but grows with the square of the input.
2. The single pass needs memory for the index, which is usually fine.
3. For very large inputs, sort first and use two pointers instead.

"""


def long_transcript(target_tokens: int, reflections: int = 6) -> list[str]:
    """A Reflection-style reply of about `target_tokens` chunks: thinking with `reflections`
    reflections (about 40% of the tokens), then a long Markdown answer with headings, lists,
    code blocks and tables."""
    thinking_tokens = int(target_tokens * 0.4)
    chunks: list[str] = ["<thinking>", "\n"]
    n = 1
    every = max(1, 8)  # a reflection after every 8 steps, up to `reflections`
    made = 0
    while len(chunks) < thinking_tokens:
        k = 10 * n
        chunks += chunked(_THOUGHT.format(n=n, k=k, kk=k * k))
        if n % every == 0 and made < reflections:
            chunks += chunked(_REFLECTION.format(n=n))
            made += 1
        n += 1
    chunks += ["</thinking>", "\n", "<output>", "\n"]
    n = 1
    while len(chunks) < target_tokens - 1:
        k = 100 * n
        chunks += chunked(_ANSWER_SECTION.format(n=n, k=k, kk=k * k, k2=2 * k, kk2=4 * k * k))
        n += 1
    chunks = chunks[: target_tokens - 1]
    chunks.append("</output>")
    return chunks
