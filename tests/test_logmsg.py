"""logmsg: every kernel wording, the chunk scanner and syslog times, against regex specs."""

from __future__ import annotations

import calendar
import random
import re
import time

import pytest
from conntrack_checks.logs import logmsg

VARIANTS = [
    # line, kind, netns, count
    ("ip_conntrack: table full, dropping packet.", "table_full", None, 1),
    ("nf_conntrack: table full, dropping packet.", "table_full", None, 1),
    ("nf_conntrack: table full, dropping packet", "table_full", None, 1),
    ("nf_conntrack: nf_conntrack: table full, dropping packet", "table_full", None, 1),
    ("nf_conntrack: nf_conntrack: table full in netns 4026532246, dropping packet",
     "table_full", 4026532246, 1),
    ("nf_conntrack: table or zone full, dropping packet", "table_full", None, 1),
    ("Mar 14 03:12:18 fw kernel: [1234567.890123] nf_conntrack: table full, dropping packet",
     "table_full", None, 1),
    ("2026-11-23T15:08:00.123456+00:00 fw kernel: nf_conntrack: nf_conntrack: table full in "
     "netns 7, dropping packet", "table_full", 7, 1),
    ("nf_conntrack: expectation table full", "expectation_full", None, 1),
    ("nf_conntrack: nf_conntrack: expectation table full", "expectation_full", None, 1),
    ("net_ratelimit: 4000 callbacks suppressed", "suppressed", None, 4000),
    ("__ratelimit: 12 callbacks suppressed", "suppressed", None, 12),
    ("printk: 7 messages suppressed.", "suppressed", None, 7),
    ("quiet_error: 3 callbacks suppressed", None, None, 0),
    ("nf_conntrack version 0.5.0 (65536 buckets, 262144 max)", None, None, 0),
    ("nf_conntrack: falling back to vmalloc.", None, None, 0),
    ("nf_conntrack: automatic helper assignment is deprecated", None, None, 0),
    ("systemd[1]: conntrackd.service: table full, dropping packet? no", None, None, 0),
]


@pytest.mark.parametrize("line, kind, netns, count", VARIANTS)
def test_every_message_variant(line, kind, netns, count):
    found = logmsg.classify(line.encode())
    if kind is None:
        assert found is None
        return
    assert (found.kind, found.netns, found.count) == (kind, netns, count)
    # the scan's searches find the same line among others
    block = f"noise one\n{line}\nnoise conntrackd two\n".encode()
    found = {ln for key in (logmsg.SEARCH_KEY, logmsg.SUPPRESSED_KEY)
             for ln in lines_holding(block, key)}
    assert [ln for ln in found if logmsg.classify(ln)] == [line.encode() + b"\n"]
    if count is not None and b"callbacks" in line.encode():  # and the kernels' since 2.6.32
        assert line.encode() + b"\n" in lines_holding(block, logmsg.CALLBACKS_KEY)


def lines_holding(block: bytes, key: bytes) -> list[bytes]:
    """The lines of ``block`` that hold ``key``, as the scan finds them."""
    lines = []
    at = block.find(key)
    while at >= 0:
        start, end = block.rfind(b"\n", 0, at) + 1, block.find(b"\n", at) + 1 or len(block)
        lines.append(block[start:end])
        at = block.find(key, end)
    return lines


def test_grep_pattern_matches_the_same_lines():
    regex = re.compile(logmsg.TABLE_FULL_PATTERN)
    for line, kind, _, _ in VARIANTS:
        assert bool(regex.search(line)) == (kind == "table_full"), line


@pytest.mark.parametrize("line, expected", [
    # calendar.timegm((2026, 11, 23, 14, 8, 0)) == 1795442880
    ("2026-11-23T15:08:00.5+01:00 h kernel: x", 1795442880.5),
    ("2026-11-23T14:08:00Z h kernel: x", 1795442880),
    ("2026-11-23T09:08:00.000000-05:00 h kernel: x", 1795442880),
    ("<4>1 2026-11-23T14:08:00.000000+00:00 h kernel - - x", 1795442880),
])
def test_rfc3339_times(line, expected):
    assert logmsg.syslog_time(line, time.time()) == pytest.approx(expected, abs=0.01)


def test_traditional_times_are_local_and_never_in_next_year():
    now = time.mktime((2027, 1, 1, 0, 30, 0, 0, 0, -1))
    assert logmsg.syslog_time("Dec 31 23:59:00 h kernel: x", now) == \
        time.mktime((2026, 12, 31, 23, 59, 0, 0, 0, -1))
    assert logmsg.syslog_time("Jan  1 00:10:00 h kernel: x", now) == \
        time.mktime((2027, 1, 1, 0, 10, 0, 0, 0, -1))
    assert logmsg.syslog_time("no time here", now) is None


# The parsers are written with bytes and str methods (compiling regexes cost more
# than reading a megabyte in a fresh process); these regexes are the specification
# they are checked against, on the variants above and on thousands of mutations.

SPEC_TABLE_FULL = re.compile(rb"(?:ip|nf)_conntrack: (?:nf_conntrack: )?table (?:or zone )?full"
                             rb"(?: in netns (\d+))?, dropping packet")

SPEC_EXPECT_FULL = re.compile(rb"(?:ip|nf)_conntrack: (?:nf_conntrack: )?expectation table full")

SPEC_SUPPRESSED = re.compile(rb"(?:net_ratelimit|__ratelimit): (\d+) callbacks suppressed"
                             rb"|printk: (\d+) messages suppressed")
SPEC_RFC3164 = re.compile(r"(?:<\d+>)?([A-Z][a-z]{2}) +(\d{1,2}) (\d\d):(\d\d):(\d\d)")
SPEC_RFC3339 = re.compile(r"(?:<\d+>1? ?)?(\d{4})-(\d\d)-(\d\d)[T ](\d\d):(\d\d):(\d\d)"
                          r"(\.\d+)?(Z|[+-]\d\d:?\d\d)?")

MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


def spec_classify(line: bytes):
    match = SPEC_TABLE_FULL.search(line)
    if match:
        return ("table_full", int(match.group(1)) if match.group(1) else None, 1)
    match = SPEC_SUPPRESSED.search(line)
    if match:
        return ("suppressed", None, int(match.group(1) or match.group(2)))
    if SPEC_EXPECT_FULL.search(line):
        return ("expectation_full", None, 1)
    return None


def spec_syslog_time(line: str, now: float):
    match = SPEC_RFC3339.match(line) if line[:1].isdigit() or line[:1] == "<" else None
    if match:
        y, mo, d, h, mi, s = (int(g) for g in match.groups()[:6])
        if not (1 <= mo <= 12 and 1 <= d <= 31 and h <= 23 and mi <= 59 and s <= 60):
            return None
        frac, zone = float(match.group(7) or 0), match.group(8)
        if zone is None:
            return time.mktime((y, mo, d, h, mi, s, 0, 0, -1)) + frac
        stamp = calendar.timegm((y, mo, d, h, mi, s, 0, 0, 0)) + frac
        if zone != "Z":
            sign = -1 if zone[0] == "-" else 1
            digits = zone[1:].replace(":", "")
            stamp -= sign * (int(digits[:2]) * 3600 + int(digits[2:]) * 60)
        return stamp
    match = SPEC_RFC3164.match(line) if not line[:1].isdigit() else None
    if match and match.group(1) in MONTHS:
        mo = MONTHS.index(match.group(1)) + 1
        d, h, mi, s = (int(g) for g in match.groups()[1:])
        if not (1 <= d <= 31 and h <= 23 and mi <= 59 and s <= 60):
            return None
        year = time.localtime(now).tm_year
        stamp = time.mktime((year, mo, d, h, mi, s, 0, 0, -1))
        if stamp > now + 86400:
            stamp = time.mktime((year - 1, mo, d, h, mi, s, 0, 0, -1))
        return stamp
    return None


def mutations(text: str, alphabet: str, count: int, seed: int):
    """``text`` and ``count`` variants of it with characters deleted, replaced or inserted."""
    rnd = random.Random(seed)
    yield text
    for _ in range(count):
        chars = list(text)
        for _ in range(rnd.randint(1, 3)):
            at = rnd.randrange(len(chars) + 1)
            what = rnd.random()
            if what < 0.4 and at < len(chars):
                del chars[at]
            elif what < 0.7 and at < len(chars):
                chars[at] = rnd.choice(alphabet)
            else:
                chars.insert(at, rnd.choice(alphabet))
        yield "".join(chars)


def test_classify_agrees_with_the_specification_on_mutations():
    lines = [line for line, *_ in VARIANTS] + [
        "kernel: [5.1] nf_conntrack: nf_conntrack: table or zone full in netns 12, dropping packet",
        "kernel: ip_conntrack: ip_conntrack: expectation table full",
        "kernel: nf_conntrack: net_ratelimit: 17 callbacks suppressed",
        "printk: 12 messages suppressed. __ratelimit: 3 callbacks suppressed",
    ]
    checked = 0
    for index, line in enumerate(lines):
        for variant in mutations(line, "nf_ipconntrack: ,0123456789.x", 400, index):
            raw = variant.encode()
            found = logmsg.classify(raw)
            got = found and (found.kind, found.netns, found.count)
            assert got == spec_classify(raw), variant
            checked += 1
    assert checked > 8000


def test_syslog_time_agrees_with_the_specification_on_mutations():
    now = time.time()
    stamps = ["2026-11-23T15:08:00.5+01:00 h kernel: x", "2026-11-23 14:08:00Z h",
              "2026-11-23T09:08:00.000000-0500 h", "<4>1 2026-11-23T14:08:00.25+00:00 h",
              "<13>2026-11-23T14:08:00 h", "<4> 2026-11-23T14:08:00+02:30 h",
              "Nov 23 14:08:00 h kernel: x", "Jan  1 00:10:00 h", "<13>Dec 31 23:59:59 h",
              "Mar 14 03:12:18 fw kernel: [1.0] nf_conntrack: x"]
    checked = 0
    for index, stamp in enumerate(stamps):
        for variant in mutations(stamp, "0123456789 :-+.TZ<>1Nov", 400, index):
            expected = spec_syslog_time(variant, now)
            got = logmsg.syslog_time(variant, now)
            assert (got is None) == (expected is None), variant
            if got is not None:
                assert got == pytest.approx(expected, abs=1e-6), variant
            checked += 1
    assert checked > 4000
