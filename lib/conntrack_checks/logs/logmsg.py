"""The kernel's conntrack log messages in every generation, and their times.

The file scan (blocks.py) finds the interesting lines of a block without
looking at every line: ``bytes.find`` (or, in a large read, memmem) jumps
to each ``SEARCH_KEY`` (or, where a count can be conntrack's,
``CALLBACKS_KEY`` or ``SUPPRESSED_KEY``), and ``classify`` reads only those
lines.

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

import time

TABLE_FULL = "table_full"
EXPECT_FULL = "expectation_full"
SUPPRESSED = "suppressed"

# The all-era pattern, for `grep -E` (the tests check it against the variants).
TABLE_FULL_PATTERN = (r"(ip|nf)_conntrack: (nf_conntrack: )?table (or zone )?full"
                      r"( in netns [0-9]+)?, dropping packet")
# Every table-full and expectation line holds CONNTRACK_KEY. The search over
# every byte looks for SEARCH_KEY, its start: CPython's bytes.find searches a
# needle of up to 5 bytes another way (a bloom filter of its bytes, jumps of
# 6), which measured 1.5-2.7 x faster on logs than "_conntrack" or any other
# needle the lines share (docs/benchmarks.rst); a line that holds it but not
# CONNTRACK_KEY costs one comparison. In a large read, where lines found are
# kilobytes apart, the C library's memmem searches for CONNTRACK_KEY itself,
# faster still (logs/memsearch.py).
CONNTRACK_KEY = b"_conntrack"
SEARCH_KEY = CONNTRACK_KEY[:5]
# ... and, only where a table-full line came shortly before, "callbacks" or
# "messages suppressed" lines: SUPPRESSED_KEY finds both. Only kernels before
# 2.6.32 write "messages suppressed", and all of those end the table-full line
# with a period (OLD_WORDING): after any other table-full line the search is
# for CALLBACKS_KEY, a needle of 5 bytes (see SEARCH_KEY), about half the time
# of SUPPRESSED_KEY (docs/benchmarks.rst).
SUPPRESSED_KEY = b"s suppressed"
CALLBACKS_KEY = b"callb"
# memmem's needle for CALLBACKS_KEY's lines: a longer needle is faster for it.
CALLBACKS_WORDS = b"callbacks suppressed"
OLD_WORDING = b"dropping packet."
# The lines are recognised with bytes methods, not regexes: the plugin runs in
# a fresh process every minute, and compiling the patterns cost more than
# the rest of reading a megabyte (tests check these against the regexes).
_PREFIX = b"_conntrack: "  # after "ip" or "nf"
_INNER = b"nf_conntrack: "  # doubled prefix, 4.9 - 6.16
_TABLE_FULL = (b"table full", b"table or zone full")
_IN_NETNS = b" in netns "
_DROPPING = b", dropping packet"
_EXPECT_FULL = b"expectation table full"
_SUPPRESSED = ((b"net_ratelimit: ", b"callbacks suppressed"),
               (b"__ratelimit: ", b"callbacks suppressed"),
               (b"printk: ", b"messages suppressed"))


class LogLine:
    """One kernel line the check counts: what it says and when it was logged."""

    __slots__ = ("count", "kind", "line", "netns", "when")

    def __init__(self, kind: str, line: str, netns: int | None = None, count: int = 1,
                 when: float | None = None):
        self.kind = kind
        self.line = line
        self.netns = netns  # namespace inode (6.17+ lines from other namespaces)
        self.count = count  # suppressed: the kernel's N
        self.when = when

    def __repr__(self) -> str:
        return f"LogLine({self.kind!r}, netns={self.netns}, count={self.count}, when={self.when})"


def classify(line: bytes) -> LogLine | None:
    """What one line says, or None when it says nothing the check counts."""
    for message in _conntrack_messages(line):
        full = _table_full(message)
        if full:
            return LogLine(TABLE_FULL, line_text(line), full[0])
    count = suppressed_count(line)
    if count is not None:
        return LogLine(SUPPRESSED, line_text(line), count=count)
    for message in _conntrack_messages(line):
        if message.startswith(_EXPECT_FULL):
            return LogLine(EXPECT_FULL, line_text(line))
    return None


def _conntrack_messages(line: bytes):
    """What follows each "ip_conntrack: " or "nf_conntrack: " (and a doubled prefix)."""
    at = line.find(_PREFIX, 2)
    while at >= 0:
        if line[at - 2:at] in (b"nf", b"ip"):
            message = line[at + len(_PREFIX):]
            yield message[len(_INNER):] if message.startswith(_INNER) else message
        at = line.find(_PREFIX, at + 1)


def _table_full(message: bytes) -> tuple[int | None] | None:
    """(N,) for "table [or zone ]full[ in netns N], dropping packet" ((None,) without N)."""
    for words in _TABLE_FULL:
        if message.startswith(words):
            rest = message[len(words):]
            netns = None
            if rest.startswith(_IN_NETNS):
                digits, comma, rest = rest[len(_IN_NETNS):].partition(b",")
                if not digits.isdigit():
                    return None
                netns, rest = int(digits), comma + rest
            return (netns,) if rest.startswith(_DROPPING) else None
    return None


def suppressed_count(line: bytes) -> int | None:
    """N of the first "net_ratelimit: N callbacks suppressed" (or older spelling), else None."""
    at = line.find(_SUPPRESSED[0][0])  # the spelling of every kernel since 2.6.33, alone
    if at >= 0 and b"ratelimit: " not in line[:at] and b"printk: " not in line[:at]:
        digits, _, rest = line[at + len(_SUPPRESSED[0][0]):].partition(b" ")
        if digits.isdigit() and rest.startswith(_SUPPRESSED[0][1]):
            return int(digits)
    first = None
    for prefix, words in _SUPPRESSED:
        at = line.find(prefix)
        while at >= 0 and (first is None or at < first[0]):
            digits, _, rest = line[at + len(prefix):].partition(b" ")
            if digits.isdigit() and rest.startswith(words):
                first = (at, int(digits))
                break
            at = line.find(prefix, at + 1)
    return None if first is None else first[1]


def line_text(line: bytes) -> str:
    """A line as text (the bytes the kernel or syslog wrote, whatever their encoding)."""
    return line.decode("utf-8", "replace").rstrip("\r\n")


# --- times of syslog lines -----------------------------------------------------

_MONTHS = {m: i for i, m in enumerate(
    ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"), 1)}
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

    RFC 3339 (rsyslog's default since Debian 12, also after an RFC 5424
    ``<PRI>1 ``) with its offset; the traditional ``Mmm dd HH:MM:SS`` in
    local time, in the year that puts it no more than a day after ``now``.
    """
    if line[:1] == "<":  # <PRI>, then RFC 5424's version 1
        end = line.find(">", 1, 6)
        if end > 1 and _digits(line[1:end]):
            text = line[end + 1:]
            for version in ("1 ", "1", " ", ""):
                if text.startswith(version):
                    stamp = _rfc3339(text[len(version):])
                    if stamp is not None:
                        return stamp
            return _rfc3164(text, now)
    if line[:1].isdigit():
        return _rfc3339(line)
    return _rfc3164(line, now)


def _digits(text: str) -> bool:
    return text.isdigit() and text.isascii()


def _plausible(month: int, day: int, hour: int, minute: int, second: int) -> bool:
    """A time of day on some day of a month (60 seconds: a leap second)."""
    return 1 <= month <= 12 and 1 <= day <= 31 and hour < 24 and minute < 60 and second <= 60


def _rfc3339(text: str) -> float | None:
    """``2026-11-23T15:08:00[.123456][Z|+01:00|+0100]`` (also with a space for the T)."""
    if len(text) < 19 or text[4] + text[7] + text[13] + text[16] != "--::" \
            or text[10] not in ("T", " "):
        return None
    fields = (text[0:4], text[5:7], text[8:10], text[11:13], text[14:16], text[17:19])
    if not all(_digits(f) for f in fields):
        return None
    y, mo, d, h, mi, s = (int(f) for f in fields)
    if not _plausible(mo, d, h, mi, s):
        return None
    rest = text[19:]
    frac = 0.0
    if rest[:1] == ".":
        end = 1
        while _digits(rest[end:end + 1]):
            end += 1
        if end > 1:
            frac = float(rest[:end])
            rest = rest[end:]
    zone = rest[:1]
    # whole seconds first, the fraction last (as the log reader adds each line's own)
    utc = _days(y, mo, d) * 86400 + h * 3600 + mi * 60 + s
    if zone == "Z":
        return utc + frac
    digits = rest[1:3] + rest[4:6] if rest[3:4] == ":" else rest[1:5]
    if zone in ("+", "-") and len(digits) == 4 and _digits(digits):
        offset = int(digits[:2]) * 3600 + int(digits[2:]) * 60
        return (utc - offset if zone == "+" else utc + offset) + frac
    try:
        return time.mktime((y, mo, d, h, mi, s, 0, 0, -1)) + frac
    except (OverflowError, ValueError):
        return None


def _rfc3164(text: str, now: float) -> float | None:
    """``Mmm dd HH:MM:SS`` (the day padded with a space) in local time."""
    month = _MONTHS.get(text[:3])
    rest = text[3:].lstrip(" ")
    if month is None or len(rest) == len(text) - 3:
        return None
    day, _, clock = rest.partition(" ")
    fields = (clock[0:2], clock[3:5], clock[6:8])
    if not (len(day) <= 2 and _digits(day) and clock[2:3] + clock[5:6] == "::"
            and all(_digits(f) and len(f) == 2 for f in fields)):
        return None
    d = int(day)
    h, mi, s = (int(f) for f in fields)
    if not _plausible(month, d, h, mi, s):
        return None
    year = time.localtime(now).tm_year
    try:
        stamp = time.mktime((year, month, d, h, mi, s, 0, 0, -1))
        if stamp > now + 86400:
            stamp = time.mktime((year - 1, month, d, h, mi, s, 0, 0, -1))
    except (OverflowError, ValueError):
        return None
    return stamp
