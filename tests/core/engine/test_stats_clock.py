"""The one speed bookkeeping every backend uses."""

from __future__ import annotations

import time

import pytest

from reflectchat.core.engine.base import StatsClock


def test_no_tokens_is_no_speed() -> None:
    stats = StatsClock().stats(prompt_tokens=7, cached_tokens=3)
    assert (stats.prompt_tokens, stats.cached_tokens, stats.completion_tokens) == (7, 3, 0)
    assert stats.tokens_per_second == 0.0
    assert 0 <= stats.ttft_s <= stats.total_s  # no first token: the whole wait


def test_one_token_has_a_ttft_but_no_speed() -> None:
    clock = StatsClock()
    time.sleep(0.01)
    clock.token()
    stats = clock.stats()
    assert stats.completion_tokens == 1 and stats.tokens_per_second == 0.0
    assert 0.01 <= stats.ttft_s <= stats.total_s


def test_speed_counts_from_the_first_token() -> None:
    clock = StatsClock()
    time.sleep(0.02)  # prompt processing: not part of the speed
    clock.first_token()  # e.g. an uncounted end-of-generation token
    first = clock.first_at
    for _ in range(5):
        clock.token()
        time.sleep(0.002)
    assert clock.first_at == first and clock.tokens == 5
    stats = clock.stats()
    decode = stats.total_s - stats.ttft_s
    assert stats.ttft_s >= 0.02
    assert stats.tokens_per_second == pytest.approx(5 / decode)


def test_a_servers_count_overrides_the_chunks() -> None:
    clock = StatsClock()
    clock.token()
    time.sleep(0.005)
    stats = clock.stats(completion_tokens=40)
    assert stats.completion_tokens == 40 and stats.tokens_per_second > 0
