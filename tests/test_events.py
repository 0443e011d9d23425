"""events: the store of counted messages, its per-minute merge and conntrack-report's section."""

from __future__ import annotations

import json
import time

import pytest
from conntrack_checks.errors import ProbeError
from conntrack_checks.kernel.sysctl import Roots
from conntrack_checks.logs import events, journal
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
