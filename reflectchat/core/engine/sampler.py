"""Choosing the next token, one at a time, through llama.cpp's sampler API — with the strict-format
grammar applied lazily, as llama.cpp's own common sampler does.

Why not `Llama.generate(grammar=…)`: it puts the grammar in the sampler chain, so every step
checks all candidates (49,152 for the demo model, 128,262 for Reflection 70B) against the
grammar before top-k even runs — measured at 0.45x the unconstrained decode rate. Here a token
is drawn from the unconstrained chain first and only that one token is checked; only when the
grammar rejects it are all candidates masked and the chain applied again. Most tokens of a
reply are prose the grammar accepts, so the full check runs at the few structural points.

Same chain as `Llama._init_sampler` (penalties, top-k, typical, top-p, min-p, temperature,
dist seeded by the caller), so without a grammar the tokens are exactly `Llama.generate`'s for
the same seed. With one they are a pure function of the seed too, and the output is always
valid under the grammar: a token is only ever returned after the grammar accepted it.

llama_cpp and numpy are imported inside, so importing this module stays cheap.
"""

from __future__ import annotations

import ctypes
import math
from typing import Any

from reflectchat.core.engine.base import EngineError


class TokenSampler:
    """The sampler for one generation: `sample()` the next token from the logits of the last
    evaluated position, `accept(token)` it (sampled or forced) to advance the chain's and the
    grammar's state. Not thread-safe; `close()` frees the llama.cpp samplers."""

    def __init__(
        self,
        llm: Any,
        settings: dict[str, Any],
        seed: int,
        grammar: str | None = None,
    ) -> None:
        import llama_cpp
        import numpy as np

        self._lib = llama_cpp
        self._ctx = llm.ctx
        self._n_vocab = int(llm.n_vocab())
        self._chain, self._chain_has_state = _make_chain(llama_cpp, self._n_vocab, settings, seed)
        self._grammar: Any = None
        if grammar is not None:
            self._grammar = llama_cpp.llama_sampler_init_grammar(
                llm._model.vocab, grammar.encode("utf-8"), b"root"
            )
            if not self._grammar:
                self.close()
                raise EngineError("llama.cpp could not parse the strict-format grammar")

        # All candidates, laid out as llama_token_data (id, logit, p), refilled at every step
        # because the samplers reorder and shrink the array in place.
        self._np = np
        self._ids = np.arange(self._n_vocab, dtype=np.int32)
        dtype = np.dtype([("id", np.int32), ("logit", np.float32), ("p", np.float32)])
        assert dtype.itemsize == ctypes.sizeof(llama_cpp.llama_token_data)
        self._cur = np.zeros(self._n_vocab, dtype=dtype)
        self._cur_data = self._cur.ctypes.data_as(llama_cpp.llama_token_data_p)
        self._cur_p: Any = llama_cpp.llama_token_data_array(
            self._cur_data, self._n_vocab, -1, False
        )
        # One candidate: the grammar's check of the token the chain chose.
        self._one: Any = llama_cpp.llama_token_data(0, 1.0, 0.0)
        self._one_p = llama_cpp.llama_token_data_array(ctypes.pointer(self._one), 1, -1, False)
        self.grammar_rejections = 0  # how often the full check ran (the benchmark reports it)

    # -- one step ------------------------------------------------------------------------------

    def sample(self) -> int:
        """The next token: drawn unconstrained, then checked alone against the grammar; if the
        grammar rejects it, drawn again from the candidates the grammar allows."""
        token = self._draw(masked=False)
        if self._grammar is None or self.allows(token):
            return token
        self.grammar_rejections += 1
        return self._draw(masked=True)

    def allows(self, token: int) -> bool:
        """Whether the grammar, in its current state, accepts `token` next."""
        if self._grammar is None:
            return True
        one = self._one
        one.id, one.logit, one.p = token, 1.0, 0.0
        p = self._one_p
        p.size, p.selected, p.sorted = 1, -1, False
        self._lib.llama_sampler_apply(self._grammar, ctypes.byref(p))
        return one.logit != -math.inf

    def accept(self, token: int) -> None:
        """Advance the state with `token`: the chain's (penalties' history) and the grammar's.
        A forced token must be one the grammar `allows`, or llama.cpp aborts."""
        if self._chain_has_state:
            self._lib.llama_sampler_accept(self._chain, token)
        if self._grammar is not None:
            self._lib.llama_sampler_accept(self._grammar, token)

    def _draw(self, *, masked: bool) -> int:
        lib = self._lib
        if not masked and not self._chain_has_state:
            # llama.cpp's own loop (fills the candidates in C, as Llama.generate does); the token
            # it accepts into the chain is harmless, as nothing in the chain keeps state.
            return int(lib.llama_sampler_sample(self._chain, self._ctx, -1))
        logits = lib.llama_get_logits_ith(self._ctx, -1)
        if not logits:
            raise EngineError("llama.cpp has no logits to sample from (nothing was evaluated)")
        cur = self._cur
        cur["id"] = self._ids
        cur["logit"] = self._np.ctypeslib.as_array(logits, shape=(self._n_vocab,))
        cur["p"] = 0.0
        p = self._cur_p
        p.data, p.size, p.selected, p.sorted = self._cur_data, self._n_vocab, -1, False
        if masked:
            lib.llama_sampler_apply(self._grammar, ctypes.byref(p))
        lib.llama_sampler_apply(self._chain, ctypes.byref(p))
        if not 0 <= p.selected < p.size:
            # Every candidate masked: the grammar has no continuation for this model's vocab.
            raise EngineError("the strict-format grammar allows no next token here")
        return int(p.data[p.selected].id)

    def close(self) -> None:
        lib = self._lib
        for name in ("_chain", "_grammar"):
            sampler = getattr(self, name, None)
            if sampler:
                lib.llama_sampler_free(sampler)
            setattr(self, name, None)

    def __del__(self) -> None:
        self.close()


def _make_chain(lib: Any, n_vocab: int, settings: dict[str, Any], seed: int) -> tuple[Any, bool]:
    """`Llama._init_sampler`'s chain, grammar left out (it is applied apart, lazily), and whether
    any of it keeps state between tokens (only the penalties' history does)."""
    chain = lib.llama_sampler_chain_init(lib.llama_sampler_chain_default_params())

    def add(sampler: Any) -> None:
        lib.llama_sampler_chain_add(chain, sampler)  # the chain owns and frees it

    temp = float(settings["temp"])
    repeat = float(settings["repeat_penalty"])
    has_state = repeat != 1.0
    if has_state:  # neutral penalties are a no-op in llama.cpp: left out
        # over the last 64 tokens, llama-cpp-python's default
        add(lib.llama_sampler_init_penalties(n_vocab, 64, repeat, 0.0, 0.0))
    if temp < 0.0:
        add(lib.llama_sampler_init_dist(seed))
    elif temp == 0.0:
        add(lib.llama_sampler_init_greedy())
    else:
        add(lib.llama_sampler_init_top_k(int(settings["top_k"])))
        add(lib.llama_sampler_init_typical(1.0, 1))
        add(lib.llama_sampler_init_top_p(float(settings["top_p"]), 1))
        add(lib.llama_sampler_init_min_p(float(settings["min_p"]), 1))
        add(lib.llama_sampler_init_temp(temp))
        add(lib.llama_sampler_init_dist(seed))
    return chain, has_state
