"""events: the store of counted messages, its per-minute merge and conntrack-report's section."""

from __future__ import annotations

import json
import time

import pytest
from conntrack_checks.errors import ProbeError
from conntrack_checks.kernel.sysctl import Roots
from conntrack_checks.logs import blocks, events, journal, logmsg
from log_fixtures import Log


@pytest.fixture
def log(tmp_path):
    (tmp_path / "log").mkdir()
    return Log(tmp_path / "log")


def test_per_minute_merge_keeps_every_count():
    rows = [[600, None, 1], [601, None, 2], [601, 7, 1], [659, 7, 3], [660, None, 1],
            [1000, None, 5]]
    assert events.per_minute_before(rows, 1000) == [
        [600, None, 3], [600, 7, 4], [660, None, 1], [1000, None, 5]]
    assert events.per_minute_before(events.per_minute_before(rows, 1000), 1000) == \
        events.per_minute_before(rows, 1000)


def test_report_section_reads_without_state(log, tmp_path, monkeypatch):
    log.ct(3, netns=4026532111)
    log.text("net_ratelimit: 7 callbacks suppressed")
    log.ct(2, when=time.time() - 3 * 86400)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    before = set(tmp_path.rglob("*"))
    out = events.report_section(Roots(), 86400, source="file", logfiles=[str(log.path)])
    json.dumps(out)
    assert out["source"] == "file"
    assert out["table_full"] == 3 and out["suppressed_estimate"] == 7
    assert out["namespaces"] == {"4026532111": 3}
    assert set(tmp_path.rglob("*")) == before
    with pytest.raises(ProbeError):
        events.report_section(Roots(), 60, source="file", logfiles=[str(tmp_path / "none")])


def test_report_section_keeps_the_journal_s_gaps(tmp_path, monkeypatch):
    usec = int(time.time() * 1e6)
    entries = [{"__CURSOR": "c1", "__REALTIME_TIMESTAMP": str(usec), "_TRANSPORT": "driver",
                "MESSAGE": "Missed 5 kernel messages"},
               {"__CURSOR": "c2", "__REALTIME_TIMESTAMP": str(usec), "_TRANSPORT": "kernel",
                "SYSLOG_FACILITY": "0",
                "MESSAGE": "nf_conntrack: nf_conntrack: table full, dropping packet"},
               {"__CURSOR": "c3", "__REALTIME_TIMESTAMP": str(usec), "_TRANSPORT": "kernel",
                "SYSLOG_FACILITY": "1",  # written to /dev/kmsg by a process: not counted
                "MESSAGE": "nf_conntrack: nf_conntrack: table full, dropping packet"}]
    (tmp_path / "out.json").write_text("".join(json.dumps(e) + "\n" for e in entries))
    fake = tmp_path / "journalctl"
    fake.write_text(f"#!/bin/sh\nexec cat {tmp_path / 'out.json'}\n")
    fake.chmod(0o755)
    monkeypatch.setattr(journal, "JOURNALCTL", (str(fake),))
    section = events.report_section(Roots(), source="journal")
    assert (section["source"], section["table_full"], section["lost_records"]) == \
        ("journal", 1, 5)
    assert section["gaps"] == ["journald: Missed 5 kernel messages"]


def syslog(when: float, text: str) -> bytes:
    return f"{time.strftime('%b %d %H:%M:%S', time.localtime(when))} fw kernel: {text}\n".encode()


def test_a_stretch_goes_on_in_the_next_block_and_ends_five_minutes_later():
    now = time.time()
    store = events.Events({}, now, "/nonexistent")
    store.add_block(syslog(now - 900, "nf_conntrack: table full, dropping packet"))
    store.add_block(syslog(now - 800, "net_ratelimit: 40 callbacks suppressed")
                    + b"".join(syslog(now - 700, f"eth0: noise {n}") for n in range(200))
                    + syslog(now - 200, "net_ratelimit: 50 callbacks suppressed"))
    assert [events.count(row) for row in store.data["supp"]] == [40]
    assert store.ignored_suppressed == 0  # the second one is past the stretch: not looked at


def test_a_line_found_by_both_searches_counts_once():
    now = time.time()
    store = events.Events({}, now, "/nonexistent")
    store.add_block(syslog(now - 60, "nf_conntrack: table full, dropping packet")
                    + syslog(now - 59, "nf_conntrack: net_ratelimit: 17 callbacks suppressed")
                    + syslog(now - 58, "printk: 3 messages suppressed. ip_conntrack: table full, "
                                       "dropping packet."))
    assert [events.count(row) for row in store.data["supp"]] == [17]
    assert sum(events.count(row) for row in store.data["events"]) == 2


@pytest.mark.parametrize("runs", [1, 2])
def test_counts_of_kernels_before_2_6_32_are_found_after_their_table_full_lines(runs):
    # "printk: N messages suppressed." only after the wording with a period (2.6.18):
    # after that the counts are searched for with the key that finds every spelling,
    # also in the next run (from the last line kept in the state)
    now = time.time()
    data: dict = {}
    lines = [syslog(now - 120, "ip_conntrack: table full, dropping packet."),
             syslog(now - 60, "printk: 7 messages suppressed."),
             syslog(now - 59, "martian source 10.0.0.1 from 10.0.0.2, on dev eth0")]
    for part in ([b"".join(lines)] if runs == 1 else [lines[0], b"".join(lines[1:])]):
        store = events.Events(data, now, "/nonexistent")
        store.add_block(part)
        store.flush()
    assert [events.count(row) for row in data["supp"]] == [7]
    # a newer kernel's line: its counts are "callbacks suppressed", found by a shorter key
    store = events.Events(data, now, "/nonexistent")
    store.add_block(syslog(now - 30, "nf_conntrack: nf_conntrack: table full, dropping packet")
                    + syslog(now - 20, "net_ratelimit: 5 callbacks suppressed"))
    assert [events.count(row) for row in data["supp"]] == [7, 5]


def test_a_stretch_full_of_other_callbacks_lines_is_searched_for_counts_only():
    # "callback" lines of another program where counts are looked for: after MISSES of
    # them the search is for SUPPRESSED_KEY, which they do not hold; counts still count
    now = time.time()
    store = events.Events({}, now, "/nonexistent")
    other = syslog(now - 100, "app[1]: callback done")
    store.add_block(syslog(now - 110, "nf_conntrack: nf_conntrack: table full, dropping packet")
                    + other * (blocks.MISSES + 10)
                    + syslog(now - 90, "net_ratelimit: 33 callbacks suppressed") + other * 10)
    store.flush()
    assert [events.count(row) for row in store.data["supp"]] == [33]
    assert store._blocks.stretch.key == logmsg.SUPPRESSED_KEY


def test_lines_that_say_the_same_are_worked_out_once_and_keep_their_own_times():
    now = time.time()
    store = events.Events({}, now, "/nonexistent")
    store.add_block(syslog(now - 3, "[1.0] nf_conntrack: table full in netns 7, dropping packet")
                    + syslog(now - 1, "[2.0] nf_conntrack: table full in netns 7, dropping packet")
                    + syslog(now - 1, "[3.0] nf_conntrack: table full in netns 8, dropping packet"))
    store.flush()  # the lines -v shows are worked out at the end
    assert [(events.netns(r), events.count(r)) for r in store.data["events"]] == \
        [(7, 1), (7, 1), (8, 1)]
    assert events.when(store.data["events"][1]) - events.when(store.data["events"][0]) == 2
    assert [line.split("] ")[1][:30] for _, line in store.data["lines"]] == \
        ["nf_conntrack: table full in ne"] * 3


def feed(store, data: bytes, blocks: int) -> None:
    """``data`` to ``store`` as about ``blocks`` blocks of whole lines, then the log's end."""
    step, at = len(data) // blocks + 1, 0
    while at < len(data):
        end = data.find(b"\n", at + step) + 1 or len(data)
        store.add_block(bytearray(data[at:end]) + b"reused buffer", end - at)
        at = end
    store.flush()


@pytest.mark.parametrize("blocks", [1, 3, 40])
def test_while_table_full_lines_keep_coming_a_count_is_looked_for_just_before_each(blocks):
    """The kernel prints the count right before the message of the call that opens the
    next rate-limit interval: while the table stays full, a table-full line."""
    now = time.time()
    full = "nf_conntrack: nf_conntrack: table full, dropping packet"
    noise = b"".join(syslog(now - 100, f"eth0: noise {n} " + "x" * 60) for n in range(40))
    data = (syslog(now - 100, full) + noise
            + syslog(now - 100, "net_ratelimit: 11 callbacks suppressed")  # before another
            + noise  # subsystem's message, far from the next table-full line: not looked at
            + syslog(now - 98, "net_ratelimit: 22 callbacks suppressed")
            + syslog(now - 98, "eth0: one line between")
            + syslog(now - 97, full) + noise
            + syslog(now - 80, "net_ratelimit: 33 callbacks suppressed")  # the incident's end
            + noise)
    store = events.Events({}, now, "/nonexistent")
    feed(store, data, blocks)
    assert [events.count(row) for row in store.data["supp"]] == [22, 33]
    assert sum(events.count(row) for row in store.data["events"]) == 2
    assert store.ignored_suppressed == 0


@pytest.mark.parametrize("blocks", [1, 3, 40])
def test_table_full_lines_more_than_the_interval_apart_have_every_count_between(blocks):
    now = time.time()
    full = "nf_conntrack: nf_conntrack: table full, dropping packet"
    noise = b"".join(syslog(now - 100, f"eth0: noise {n} " + "x" * 60) for n in range(40))
    data = (syslog(now - 100, full) + noise
            + syslog(now - 100, "net_ratelimit: 11 callbacks suppressed") + noise
            + syslog(now - 90, full) + noise
            + syslog(now - 90, "net_ratelimit: 33 callbacks suppressed") + noise)
    store = events.Events({}, now, "/nonexistent")
    feed(store, data, blocks)
    assert [events.count(row) for row in store.data["supp"]] == [11, 33]
    assert [line.split("kernel: ")[1][:18] for _, line in store.data["lines"]] == \
        ["nf_conntrack: nf_c", "net_ratelimit: 11 ", "nf_conntrack: nf_c", "net_ratelimit: 33 "]


def test_lines_stamped_in_rfc_3339_with_a_space_keep_their_own_times():
    now = time.time()
    store = events.Events({}, now, "/nonexistent")
    store.add_block(b"".join(
        time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(now - ago)).encode()
        + b" fw kernel: nf_conntrack: table full, dropping packet\n" for ago in (100, 50)))
    assert [events.when(row) for row in store.data["events"]] == [int(now - 100), int(now - 50)]


def test_rfc_3339_stamps_with_a_fraction_keep_it_and_their_offset():
    now = time.time()
    store = events.Events({}, now, "/nonexistent")
    base = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now - 3600 - 100)).encode()
    store.add_block(b"".join(
        base + fraction + b"-01:00 fw kernel: nf_conntrack: table full, dropping packet\n"
        for fraction in (b".25", b".750000", b".5")))
    store.flush()
    stamped = int(now - 100)
    assert store.data["events"] == [[stamped, None, 3]]
    assert [when - stamped for when, _ in store.data["lines"]] == [0.25, 0.75, 0.5]


def test_a_run_of_rfc_3339_stamps_gives_each_line_its_own_time():
    # each line's time is worked out from the last stamp's when only the fraction
    # differs: the second, the zone and the fraction's length change along the run
    now = time.time()
    second = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now - 200))
    later = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now - 199))
    stamps = [f"{second}.000001+00:00", f"{second}.999999+00:00", f"{second}.5+00:00",
              f"{second}.25+00:00", f"{second}.123456+00:00", f"{second}.123457-01:30",
              f"{second}.654321-01:30", f"{second}.654321+0000", f"{second}.1Z",
              f"{second}.7Z", f"{later}.7Z", f"{later}.000000Z", f"{later}.1234567+00:00",
              f"{later}.7654321+00:00", f"{second}.7654321+00:00", f"{second}.123456789+00:00",
              f"{second}.999999999+00:00", f"{later}.1",
              f"{later}.9", f"{second}.75+00:00"]
    full = b" fw kernel: [1.5] nf_conntrack: nf_conntrack: table full, dropping packet\n"
    noise = b" fw sshd[1]: noise\n"
    for count in range(1, len(stamps) + 1):
        for between in (b"", noise):
            data = b"".join(s.encode() + full + (s.encode() + between if between else b"")
                            for s in stamps[:count])
            store = events.Events({}, now, "/nonexistent")
            store.add_block(data)
            times = [logmsg.syslog_time(s + " fw", now) for s in stamps[:count]]
            assert store.data["last"][0] == times[-1], stamps[count - 1]
            expected: dict = {}
            for when in times:
                expected[int(when)] = expected.get(int(when), 0) + 1
            got: dict = {}
            for row in store.data["events"]:
                got[row[0]] = got.get(row[0], 0) + row[2]
            assert got == expected, stamps[count - 1]
