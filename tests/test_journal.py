"""journal: kernel entries through journalctl."""

from __future__ import annotations

import json

from conntrack_checks.logs import journal
from conntrack_checks.logs.result import ReadResult


def test_journald_missed_messages_are_a_gap():
    seen = ReadResult()
    journal._driver(b"Missed 42 kernel messages", seen)
    journal._driver(b"Journal started", seen)
    assert seen.lost == 42 and seen.gaps == ["journald: Missed 42 kernel messages"]


def test_only_the_kernel_s_own_entries_are_passed_on(tmp_path, monkeypatch):
    line = "nf_conntrack: nf_conntrack: table full, dropping packet"
    entries = [{"__CURSOR": f"c{i}", "__REALTIME_TIMESTAMP": "1795442880000000",
                "_TRANSPORT": "kernel", "MESSAGE": line, **facility}
               for i, facility in enumerate([{"SYSLOG_FACILITY": "0"},
                                             {"SYSLOG_FACILITY": "1"}, {}])]
    (tmp_path / "out.json").write_text("".join(json.dumps(e) + "\n" for e in entries))
    fake = tmp_path / "journalctl"
    fake.write_text(f"#!/bin/sh\necho \"$@\" > {tmp_path / 'argv'}\n"
                    f"exec cat {tmp_path / 'out.json'}\n")
    fake.chmod(0o755)
    monkeypatch.setattr(journal, "JOURNALCTL", (str(fake),))
    got = []
    seen = journal.read("c", lambda when, text: got.append((when, text)))
    assert got == [(1795442880.0, line.encode())]
    assert seen.records == 1 and seen.cursor == "c2"
    # journalctl itself is asked for them only (and for journald's own notes)
    assert (tmp_path / "argv").read_text().split()[-4:] == \
        ["_TRANSPORT=kernel", "SYSLOG_FACILITY=0", "+", "_TRANSPORT=driver"]
