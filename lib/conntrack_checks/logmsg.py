"""The kernel's conntrack log messages in every generation, and their times.

``scan(buffer)`` finds the interesting lines of a block of complete lines
without looking at every line: ``bytes.find`` jumps to each ``conntrack``
and ``suppressed`` and only those lines are matched with the regexes.

Wordings (see kernel-conntrack.md, section 3):

- ``ip_conntrack: table full, dropping packet.``              2.4 - 2.6.22
- ``nf_conntrack: table full, dropping packet.``              2.6.15 - ~3.4
- ``nf_conntrack: table full, dropping packet``               ~3.5 - 4.8
- ``nf_conntrack: nf_conntrack: table full, dropping packet`` 4.9 - 6.16
- ``nf_conntrack: nf_conntrack: table full in netns N, dropping packet`` 6.17+
  (other namespaces; N is the namespace inode)
- ``nf_conntrack: expectation table full``  (helpers; a separate finding)
- ``net_ratelimit: N callbacks suppressed`` (``__ratelimit:`` on 2.6.32,
  ``printk: N messages suppressed.`` on 2.6.18): the global net rate
  limit, conntrack's only when a conntrack line came shortly before.
"""

from __future__ import annotations

import re
import time

TABLE_FULL = "table_full"
EXPECT_FULL = "expectation_full"
SUPPRESSED = "suppressed"

# The all-era pattern (also what bench_log.py gives `grep -c -E`).
TABLE_FULL_PATTERN = (r"(ip|nf)_conntrack: (nf_conntrack: )?table (or zone )?full"
                      r"( in netns [0-9]+)?, dropping packet")
# Every line scan() reports, for `grep -c -E` in tests/bench/bench_log.py.
GREP_PATTERN = (TABLE_FULL_PATTERN + "|conntrack: (nf_conntrack: )?expectation table full"
                "|(net_ratelimit|__ratelimit): [0-9]+ callbacks suppressed"
                "|printk: [0-9]+ messages suppressed")
_TABLE_FULL = (rb"(?:ip|nf)_conntrack: (?:nf_conntrack: )?table (?:or zone )?full"
                         rb"(?: in netns (\d+))?, dropping packet")
_EXPECT_FULL = rb"(?:ip|nf)_conntrack: (?:nf_conntrack: )?expectation table full"
_SUPPRESSED = (rb"(?:net_ratelimit|__ratelimit): (\d+) callbacks suppressed"
                         rb"|printk: (\d+) messages suppressed")
# Needles ending in rarer bytes are found faster ("callbacks"/"messages suppressed").
CONNTRACK_KEYS = (b"_conntrack:",)
ALL_KEYS = (b"_conntrack:", b"s suppressed")
# Patterns compile on first use (re caches them): most runs find nothing.


class Finding:
    """One interesting kernel line: what it says and when it was logged."""

    __slots__ = ("count", "kind", "line", "netns", "when")

    def __init__(self, kind: str, line: str, netns: int | None = None, count: int = 1,
                 when: float | None = None):
        self.kind = kind
        self.line = line
        self.netns = netns  # namespace inode (6.17+ lines from other namespaces)
        self.count = count  # suppressed: the kernel's N
        self.when = when

    def __repr__(self) -> str:
        return f"Finding({self.kind!r}, netns={self.netns}, count={self.count}, when={self.when})"


def classify(line: bytes) -> Finding | None:
    """The finding in one line, or None."""
    match = re.search(_TABLE_FULL, line)
    if match:
        ns = match.group(1)
        return Finding(TABLE_FULL, _text(line), int(ns) if ns else None)
    match = re.search(_SUPPRESSED, line)
    if match:
        return Finding(SUPPRESSED, _text(line), count=int(match.group(1) or match.group(2)))
    if re.search(_EXPECT_FULL, line):
        return Finding(EXPECT_FULL, _text(line))
    return None


def scan(buffer, size: int | None = None, keys=ALL_KEYS) -> list[tuple[int, bytes]]:
    """(start offset, line) of each line of ``buffer[:size]`` holding a key word, in order.

    ``buffer`` (bytes or a reused bytearray) holds complete lines up to
    ``size``; the lines found still need ``classify``.
    """
    size = len(buffer) if size is None else size
    starts: dict[int, int] = {}
    for key in keys:
        pos = buffer.find(key, 0, size)
        while pos >= 0:
            start = buffer.rfind(b"\n", 0, pos) + 1
            end = buffer.find(b"\n", pos, size)
            if end < 0:
                end = size
            starts[start] = end
            pos = buffer.find(key, end, size)
    return [(start, bytes(buffer[start:starts[start]])) for start in sorted(starts)]


def _text(line: bytes) -> str:
    return line.decode("utf-8", "replace").rstrip("\r\n")


# --- times of syslog lines -----------------------------------------------------

_MONTHS = {m: i for i, m in enumerate(
    ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"), 1)}
_RFC3164 = (r"(?:<\d+>)?([A-Z][a-z]{2}) +(\d{1,2}) (\d\d):(\d\d):(\d\d)")
_RFC3339 = (r"(?:<\d+>1? ?)?(\d{4})-(\d\d)-(\d\d)[T ](\d\d):(\d\d):(\d\d)(\.\d+)?"
                      r"(Z|[+-]\d\d:?\d\d)?")


def _days(year: int, month: int, day: int) -> int:
    """Days since 1970-01-01 (proleptic Gregorian; Hinnant's days_from_civil)."""
    year -= month <= 2
    era = year // 400
    yoe = year - era * 400
    doy = (153 * (month + (-3 if month > 2 else 9)) + 2) // 5 + day - 1
    doe = yoe * 365 + yoe // 4 - yoe // 100 + doy
    return era * 146097 + doe - 719468


def syslog_time(line: str, now: float) -> float | None:
    """The epoch time at the start of a syslog line, or None.

    RFC 3339 (rsyslog's default since Debian 12) with its offset; the
    traditional ``Mmm dd HH:MM:SS`` in local time, in the year that puts it
    no more than a day after ``now``.
    """
    # Only the pattern that can match is compiled (a fresh process per run).
    match = re.match(_RFC3339, line) if line[:1].isdigit() or line[:1] == "<" else None
    if match:
        y, mo, d, h, mi, s = (int(g) for g in match.groups()[:6])
        frac = float(match.group(7) or 0)
        zone = match.group(8)
        stamp = (_days(y, mo, d) * 86400 + h * 3600 + mi * 60 + s) + frac
        if zone is None:
            return time.mktime((y, mo, d, h, mi, s, 0, 0, -1)) + frac
        if zone != "Z":
            sign = -1 if zone[0] == "-" else 1
            digits = zone[1:].replace(":", "")
            stamp -= sign * (int(digits[:2]) * 3600 + int(digits[2:]) * 60)
        return stamp
    match = re.match(_RFC3164, line) if not line[:1].isdigit() else None
    if match and match.group(1) in _MONTHS:
        mo = _MONTHS[match.group(1)]
        d, h, mi, s = (int(g) for g in match.groups()[1:])
        year = time.localtime(now).tm_year
        try:
            stamp = time.mktime((year, mo, d, h, mi, s, 0, 0, -1))
            if stamp > now + 86400:
                stamp = time.mktime((year - 1, mo, d, h, mi, s, 0, 0, -1))
        except (OverflowError, ValueError):
            return None
        return stamp
    return None
