"""journal: kernel entries through journalctl."""

from __future__ import annotations

from conntrack_checks.logs import journal
from conntrack_checks.logs.result import ReadResult


def test_journald_missed_messages_are_a_gap():
    seen = ReadResult()
    journal._driver(b"Missed 42 kernel messages", seen)
    journal._driver(b"Journal started", seen)
    assert seen.lost == 42 and seen.gaps == ["journald: Missed 42 kernel messages"]
