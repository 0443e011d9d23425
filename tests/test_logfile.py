"""logfile: following one syslog file across rotations, by content, each line once."""

from __future__ import annotations

import time

import pytest
from conntrack_checks.logs import logfile
from log_fixtures import Log


@pytest.fixture
def log(tmp_path):
    return Log(tmp_path)


def follow(log: Log, pos: dict | None, max_bytes: int = 1 << 30):
    """Follow ``log`` from ``pos``; returns (new position, the lines read, the result)."""
    blocks: list[bytes] = []
    budget = logfile.Budget(max_bytes, time.monotonic() + 60)
    new, result = logfile.follow(str(log.path), pos, budget,
                                 lambda buf, size: blocks.append(bytes(buf[:size])))
    return new, b"".join(blocks).splitlines(), result


def test_a_baseline_ends_after_the_last_complete_line(log):
    log.append(b"half a line")
    pos = logfile.baseline(str(log.path))
    assert pos["off"] == log.path.stat().st_size - len(b"half a line")
    log.append(b" ends here\n")
    _, lines, _ = follow(log, pos)
    assert lines == [b"half a line ends here"]


def test_each_line_is_passed_once_across_a_rename_and_create(log):
    pos = logfile.baseline(str(log.path))
    log.text("before the rotation")
    log.rotate()
    log.text("after the rotation")
    pos, lines, result = follow(log, pos)
    assert [line.split(b"] ", 1)[1] for line in lines] == [b"before the rotation",
                                                          b"after the rotation"]
    assert result.gaps == [] and result.complete
    assert follow(log, pos)[1] == []


def test_a_spent_budget_leaves_the_rest_for_the_next_call(log):
    pos = logfile.baseline(str(log.path))
    log.noise(200)
    pos, first, result = follow(log, pos, max_bytes=4096)
    assert not result.complete and result.unread > 0
    _, rest, _ = follow(log, pos)
    assert len(first) + len(rest) == 200


def test_rotated_copies_are_listed_oldest_first(tmp_path):
    for name in ("kern.log", "kern.log.1", "kern.log.2.gz", "kern.log.10.gz", "kern.log-x",
                 "kern.log.old"):
        (tmp_path / name).write_bytes(b"")
    assert [p.rsplit("/", 1)[1] for p in logfile.archives(str(tmp_path / "kern.log"))] == \
        ["kern.log.10.gz", "kern.log.2.gz", "kern.log.1"]
