"""Markdown the way both front ends stream it: split into blocks that are finished (printed
once, never redrawn) and the one still being written; and a parser guard against nesting that
would otherwise make markdown-it drop text.

Plain Python plus markdown-it (the parser Rich and Textual both use): no UI library here.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from markdown_it import MarkdownIt
from markdown_it.rules_block import StateBlock

_FENCE = re.compile(r"^\s*(```|~~~)", re.MULTILINE)


def split_complete_blocks(markdown: str) -> tuple[str, str]:
    """Split Markdown into (complete blocks, the block still being written).

    A block is complete once a blank line follows it outside a code fence; printing only
    complete blocks means nothing already on screen ever has to be redrawn.
    """
    splitter = BlockSplitter()
    done = splitter.feed(markdown)
    return done, splitter.pending


class BlockSplitter:
    """`split_complete_blocks` for a stream: each line is looked at once, however long the
    block being written grows (rescanning it at every token made a long code fence quadratic)."""

    __slots__ = ("_in_fence", "_scanned", "pending")

    def __init__(self) -> None:
        self.pending = ""  # the block still being written
        self._scanned = 0  # offset in `pending` of the first line not yet looked at
        self._in_fence = False

    def feed(self, text: str) -> str:
        """Add text; return the blocks it completed (may be empty)."""
        self.pending += text
        pending, pos, cut = self.pending, self._scanned, 0
        while (end := pending.find("\n", pos)) >= 0:
            line = pending[pos : end + 1]
            if _FENCE.match(line):
                self._in_fence = not self._in_fence
            elif not self._in_fence and not line.strip():
                cut = end + 1
            pos = end + 1
        self._scanned = pos - cut
        if not cut:
            return ""
        self.pending = pending[cut:]
        return pending[:cut]


# markdown-it silently drops the rest of a block once quotes and lists nest past its
# `maxNesting` (20), and Rich narrows each quote by 4 columns and each list by 3 until the text
# has no width left. So quotes and lists nest only while they leave the text room; deeper
# markers stay as the text they are, inside the deepest one, and no word is lost.
NESTING_COST = {"blockquote": 4, "list": 3}  # columns each level takes (Rich's figures)
_ENV_KEY = "reflectchat_nesting_columns"

BlockRule = Callable[[StateBlock, int, int, bool], bool]


def cap_nesting(md: MarkdownIt, budget: int) -> MarkdownIt:
    """Make `md` flatten quotes and lists nested past `budget` columns instead of dropping
    them (its recursion then stays bounded too, whatever the input)."""
    rules = {rule.name: rule for rule in md.block.ruler.__rules__}

    def capped(rule: BlockRule, cost: int) -> BlockRule:
        def run(state: StateBlock, start: int, end: int, silent: bool) -> bool:
            used = state.env.get(_ENV_KEY, 0)
            if used + cost > budget:
                return False
            state.env[_ENV_KEY] = used + cost
            try:
                return rule(state, start, end, silent)
            finally:
                state.env[_ENV_KEY] = used

        return run

    for name, cost in NESTING_COST.items():
        if name in rules:
            fn = capped(rules[name].fn, cost)
            md.block.ruler.at(name, fn, {"alt": list(rules[name].alt)})
    # Never reached now (each quote or list costs at least one level): no text dropped.
    md.options["maxNesting"] = max(md.options["maxNesting"], budget + 8)
    return md
