"""memsearch: memmem finds what bytes.find finds, within the bounds it is given."""

from __future__ import annotations

import random

import pytest
from conntrack_checks.logs import memsearch

NEEDLES = [b"_conntrack", b"callbacks suppressed", b"s suppressed", b"ab", b"a"]


def test_memmem_is_there_on_this_machine():
    # glibc has it; the suite must test it, not the fallback alone
    assert memsearch.finder(bytearray(b"x")) is not None


@pytest.mark.parametrize("seed", range(20))
def test_it_finds_what_bytes_find_finds_in_any_bounds(seed):
    rnd = random.Random(seed)
    text = bytearray(b"".join(rnd.choice([b"ab", b"_conntrack", b"x", b"s suppressed", b"\n"])
                              for _ in range(rnd.randrange(1, 400))))
    find = memsearch.finder(text)
    for _ in range(200):
        needle = rnd.choice(NEEDLES)
        lo = rnd.randrange(-5, len(text) + 5)
        hi = rnd.randrange(-5, len(text) + 30)
        expected = text.find(needle, max(lo, 0), hi) if hi >= 0 else -1
        assert find(needle, lo, hi) == expected, (needle, lo, hi)


def test_what_it_cannot_search_is_left_to_bytes_find(monkeypatch):
    assert memsearch.finder(b"read-only bytes") is None
    assert memsearch.finder(bytearray()) is None
    monkeypatch.setattr(memsearch, "_loaded", False)  # no ctypes or no memmem
    assert memsearch.finder(bytearray(b"x")) is None


def test_the_buffer_may_grow_again_once_the_function_is_dropped():
    buffer = bytearray(b"nf_conntrack: table full")
    find = memsearch.finder(buffer)
    assert find(b"_conntrack", 0, len(buffer)) == 2
    with pytest.raises(BufferError):  # it holds the buffer's memory while kept
        buffer += b", dropping packet"
    del find
    buffer += b", dropping packet"
    assert buffer.endswith(b"dropping packet")
