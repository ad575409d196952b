"""Reuse the KV cache across a tokenization that differs but spells the same text.

A model's reply goes back into the next prompt as text, and tokenizing that text again does
not always give the tokens the model chose: it may have written `"` `o` `ol` `ong` where the
tokenizer makes `"o` `olong`. Compared token by token, the cache would stop being usable there
and the rest of the reply — hundreds of tokens of a long answer, seconds to minutes for a 70B
model — would be evaluated again. Compared by the bytes the tokens spell, the cached tokens
still say exactly what the prompt says, so the prompt can take them in place of its own: the
model reads the same text, in the very tokens it wrote.

Pure Python, no llama_cpp: `piece` gives a token's bytes (special tokens as their text).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

Piece = Callable[[int], bytes]


def reusable_prefix(held: Sequence[int], tokens: Sequence[int], piece: Piece) -> tuple[int, int]:
    """(j, k), as long as possible: held[:j] and tokens[:k] spell the same bytes, and both
    end on a token boundary. Equal tokens are taken as they come; after the first difference
    the two are walked byte by byte, and the walk ends at the first byte that differs."""
    n = min(len(held), len(tokens))
    i = 0
    while i < n and held[i] == tokens[i]:
        i += 1
    best = (i, i)
    if i == len(held) or i == len(tokens):
        return best
    j = k = i
    a = b = b""  # bytes of one side not yet matched by the other (one of them is empty)
    while True:
        if not a and not b:  # both sides end on a token boundary here
            best = (j, k)
            if j == len(held) or k == len(tokens):
                return best
            if held[j] == tokens[k]:
                j, k = j + 1, k + 1
                continue
            a, b = piece(held[j]), piece(tokens[k])
            j, k = j + 1, k + 1
        elif not a:
            if j == len(held):
                return best
            a = piece(held[j])
            j += 1
        else:
            if k == len(tokens):
                return best
            b = piece(tokens[k])
            k += 1
        if not a and not b:
            return best  # two different tokens that spell nothing: no way to tell them apart
        common = min(len(a), len(b))
        if a[:common] != b[:common]:
            return best
        a, b = a[common:], b[common:]


def reuse_held_tokens(held: Sequence[int], tokens: list[int], piece: Piece) -> list[int]:
    """The prompt with the part the cache already spells taken in the cache's own tokens."""
    j, k = reusable_prefix(held, tokens, piece)
    if j == k and list(held[:j]) == tokens[:k]:
        return tokens
    return [*held[:j], *tokens[k:]]
