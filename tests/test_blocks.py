"""blocks: the file scan's shortcuts (one search, a run's seconds, a minute's stamps) give
what reading every line would: random logs against a line-by-line model."""

from __future__ import annotations

import random
import time

import pytest
from conntrack_checks.logs import blocks, events, logmsg, memsearch

NOW = 1796040000.0  # 2026-11-30 11:20 UTC
WORDINGS = [  # (weight, text after "host ")
    (6, "kernel: [{k}.1] nf_conntrack: nf_conntrack: table full, dropping packet"),
    (3, "kernel: [{k}.1] nf_conntrack: nf_conntrack: table full in netns 4026532246, "
        "dropping packet"),
    (1, "kernel: [{k}.1] nf_conntrack: nf_conntrack: table full in netns 4026532999, "
        "dropping packet"),
    (1, "kernel: nf_conntrack: table full, dropping packet."),
    (1, "kernel: ip_conntrack: table full, dropping packet."),
    (1, "kernel: xt_connlimit: x nf_conntrack: table full, dropping packet"),
    (1, "kernel: nf_conntrack: expectation table full"),
    (3, "kernel: [{k}.5] net_ratelimit: {n} callbacks suppressed"),
    (1, "sshd[1]: tcp_connect failed _conn _conntrack _connx"),
    (1, "kernel: nf_conntrack: falling back to vmalloc."),
    (1, "app[1]: callback done: 5 callbacks suppressed, callb"),
    (8, "systemd[1]: Started session {n}.scope"),
    (4, "kernel: [{k}.2] IN=eth0 OUT= SRC=10.0.0.1 DST=10.0.0.2 LEN=60"),
]


def stamp(rnd: random.Random, when: float, style: str) -> str:
    if style == "traditional":
        return time.strftime("%b %d %H:%M:%S", time.localtime(when))
    second = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(int(when)))
    fraction = when - int(when)
    if style == "rfc3339":
        return second + "+00:00"
    if style == "rfc3339-micro":  # rsyslog's default since Debian 12
        return f"{second}.{int(fraction * 1e6):06d}+00:00"
    digits = rnd.choice([1, 3, 6, 6, 9])
    zone = rnd.choice(["+00:00", "Z", "-01:30", "+0000"])
    if zone == "-01:30":
        second = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(int(when) - 5400))
    return f"{second}.{int(fraction * 10 ** digits):0{digits}d}{zone}"


def random_log(rnd: random.Random) -> bytes:
    """Up to 400 lines: a dense incident or sparse lines, one stamp style (or mixed
    fractions and zones), times that jump, go back a little, and pass FINE."""
    style = rnd.choice(["traditional", "rfc3339", "rfc3339-micro", "rfc3339-micro", "mixed"])
    when = NOW - rnd.choice([100, 400, 3000, 90000])
    dense = rnd.random() < 0.5
    weights = [w for w, _ in WORDINGS]
    weights[rnd.randrange(7)] += 30  # the incident's own wording: runs of it
    lines = []
    for _ in range(rnd.randrange(1, 400)):
        draw = rnd.random()
        if draw < 0.05:
            when += rnd.choice([6, 30, 299, 301, 400, 1000])
        elif draw < 0.08:
            when -= rnd.choice([1, 3, 7])
        elif draw < (0.6 if dense else 0.3):
            when += rnd.random() * (0.4 if dense else 3)
        text = rnd.choices([t for _, t in WORDINGS], weights)[0]
        text = text.format(k=rnd.randrange(1, 99999), n=rnd.randrange(1, 999))
        host = rnd.choice(["fw", "fw", "host-with-a-long-name"])
        line = f"{stamp(rnd, when, style)} {host} {text}\n"
        lines.append(("garbage " if rnd.random() < 0.01 else "") + line)
    return "".join(lines).encode()


def line_by_line(data: bytes, since: float | None) -> tuple[dict, dict, list | None]:
    """What each line says at its own time: table-full counts per (row time, netns),
    expectation counts per row time, and the last table-full line counted."""
    store = events.Events({}, NOW, "/nonexistent")
    full: dict = {}
    expect: dict = {}
    last = None
    for line in data.splitlines(keepends=True):
        found = logmsg.classify(line)
        if found is None or found.kind == logmsg.SUPPRESSED:
            continue
        when = logmsg.syslog_time(line.decode(), NOW) or NOW
        if since is not None and when < since:
            continue
        if found.kind == logmsg.TABLE_FULL:
            key = (store.row_time(when), found.netns)
            full[key] = full.get(key, 0) + 1
            last = [when, found.netns, found.line]
        else:
            expect[store.row_time(when)] = expect.get(store.row_time(when), 0) + 1
    return full, expect, last


def scan(data: bytes, cuts: list, since: float | None) -> dict:
    """The store after the scan, fed as blocks ending at ``cuts`` (a reused buffer: bytes
    after each block's size belong to no line)."""
    store = events.Events({}, NOW, "/nonexistent", since=since)
    done = 0
    for cut in [*cuts, len(data)]:
        if cut > done:
            store.add_block(bytearray(data[done:cut]) + b"\nNov 30 11:19:59 x", cut - done)
            done = cut
    store.flush()
    return store.data


def scanned(data: bytes, cuts: list, since: float | None) -> tuple[dict, dict, list | None]:
    """What line_by_line says, from the scan."""
    data = scan(data, cuts, since)
    full: dict = {}
    for second, netns, count in data["events"]:
        full[second, netns] = full.get((second, netns), 0) + count
    expect: dict = {}
    for second, count in data["expect"]:
        expect[second] = expect.get(second, 0) + count
    return full, expect, data.get("last")


def cases(seed: int):
    """Ten random logs with where to cut them and a --lookback start."""
    for case in range(10):
        rnd = random.Random(seed * 100 + case)
        data = random_log(rnd)
        ends = [at + 1 for at, byte in enumerate(data) if byte == 10]
        cuts = sorted(rnd.sample(ends, min(len(ends), rnd.choice([0, 1, 3, 10]))))
        yield case, data, cuts, rnd.choice([None, None, NOW - 3000, NOW - 200.5])


@pytest.mark.parametrize("seed", range(40))
def test_the_scan_counts_what_each_line_says_at_its_own_time(seed):
    for case, data, cuts, since in cases(seed):
        assert scanned(data, cuts, since) == line_by_line(data, since), (seed, case)


@pytest.mark.parametrize("seed", range(40))
def test_runs_of_lines_like_the_last_change_nothing(seed, monkeypatch):
    """The shortcut of a run (the same text soon after) against every line worked out
    alone: the suppressed counts too, the last table-full time, the lines for -v."""
    for case, data, cuts, since in cases(seed):
        with_runs = scan(data, cuts, since)
        with monkeypatch.context() as patch:
            patch.setattr(blocks, "RUNS", ())
            assert scan(data, cuts, since) == with_runs, (seed, case)


@pytest.mark.parametrize("seed", range(40))
def test_searching_with_memmem_changes_nothing(seed, monkeypatch):
    """A large read's memmem searches (memsearch) against bytes.find's: in every block,
    and only in blocks after a sparse one."""
    assert memsearch.finder(bytearray(b"x")) is not None
    for case, data, cuts, since in cases(seed):
        with_find = scan(data, cuts, since)
        for dense in (10 ** 9, 3):
            with monkeypatch.context() as patch:
                patch.setattr(blocks, "MEMMEM_AFTER", -1)
                patch.setattr(blocks, "DENSE", dense)
                assert scan(data, cuts, since) == with_find, (seed, case, dense)


def test_rows_before_fine_are_per_minute_as_they_are_read():
    store = events.Events({}, NOW, "/nonexistent")
    full = "fw kernel: nf_conntrack: table full, dropping packet\n"
    times = [NOW - 3600 + 1, NOW - 3600 + 59, NOW - 60, NOW - 59]
    store.add_block("".join(f"{stamp(random.Random(), t, 'rfc3339')} {full}"
                            for t in times).encode())
    old_minute = int(NOW - 3600) - int(NOW - 3600) % 60
    assert store.data["events"] == [[old_minute, None, 2], [int(NOW - 60), None, 1],
                                    [int(NOW - 59), None, 1]]
