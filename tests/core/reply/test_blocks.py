"""Markdown split into finished blocks and the one being written; nesting flattened, not lost."""

from __future__ import annotations

from markdown_it import MarkdownIt

from reflectchat.core.reply.blocks import BlockSplitter, cap_nesting, split_complete_blocks

REPLY = (
    "<thinking>\nCount the r's in [bold]strawberry[/bold].\n"
    "<reflection>\nI missed one: there are three [/INST].\n</reflection>\n"
    "So three.\n</thinking>\n\n<output>\nThere are **3** r's.\n\n"
    "```python\nprint('strawberry'.count('r'))\n```\n</output>"
)
DEEP_QUOTE = (
    "".join("> " * (i + 1) + f"quote{i}\n" + "> " * (i + 1) + "\n" for i in range(30))
    + "\nafter the quotes\n"
)


def test_split_complete_blocks_respects_code_fences() -> None:
    md = "para one\n\n```\ncode\n\nstill code\n"
    done, rest = split_complete_blocks(md)
    assert done == "para one\n\n"
    assert rest == "```\ncode\n\nstill code\n"
    done, rest = split_complete_blocks(md + "```\n\nafter")
    assert rest == "after"


def test_block_splitter_streamed_matches_whole() -> None:
    text = REPLY + "\n\n" + DEEP_QUOTE + "```\ncode\n\nmore\n```\n\ntail para"
    for size in (1, 2, 5, 13):
        splitter = BlockSplitter()
        done = "".join(splitter.feed(text[i : i + size]) for i in range(0, len(text), size))
        assert (done, splitter.pending) == split_complete_blocks(text)


def _inline_text(md: MarkdownIt, source: str) -> str:
    return "".join(t.content for t in md.parse(source) if t.type == "inline")


def test_cap_nesting_keeps_every_word_past_the_budget() -> None:
    # Plain markdown-it drops the rest of the block past 20 levels; capped, deeper quote
    # markers stay as text and nothing is lost.
    plain = _inline_text(MarkdownIt("commonmark"), DEEP_QUOTE)
    capped_md = cap_nesting(MarkdownIt("commonmark"), 16)  # 4 quotes deep at 4 columns each
    capped = _inline_text(capped_md, DEEP_QUOTE)
    assert "quote29" not in plain
    for i in range(30):
        assert f"quote{i}" in capped
    assert "after the quotes" in capped
    depth = max(t.level for t in capped_md.parse(DEEP_QUOTE) if t.type == "blockquote_open")
    assert depth < 4
