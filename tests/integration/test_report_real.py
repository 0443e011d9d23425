"""conntrack-report end to end on the real kernel: text and JSON, as root and as nobody.

A lab namespace holds 300 real UDP flows; the report must show it with the
count conntrack-tools sees, the tuning findings must be the plugin's, and
every section of the other plugins that is installed must be shown.
"""

from __future__ import annotations

import importlib.util
import json
import os
import pty
import re
import subprocess
import sys
from pathlib import Path

import pytest
from lab import Lab, need_root_tools, read_max
from unprivileged import as_nobody

PEERS = {"counters": "check_conntrack_stats", "events": "check_conntrack_log",
         "talkers": "check_conntrack_table"}
FLOWS = 300
REPORT = str(Path(sys.executable).parent / "conntrack-report")  # as run_plugin runs it


def installed(module: str) -> bool:
    return importlib.util.find_spec(f"conntrack_checks.checks.{module}") is not None


def buckets() -> int:
    with open("/proc/sys/net/netfilter/nf_conntrack_buckets") as handle:
        return int(handle.read())


@pytest.fixture(scope="module")
def lab():
    need_root_tools("ip", "nft", "conntrack")
    with Lab() as lab:
        lab.busy = lab.namespace("rep", flows=FLOWS)
        yield lab


def test_json_as_root(lab, run_plugin):
    code, out, err = run_plugin("conntrack-report", "--json", timeout=300)
    assert err == ""
    data = json.loads(out)
    assert data["as_root"] is True
    sections = data["sections"]
    usage = sections["usage"]
    rows = {row["namespace"]: row for row in usage["namespaces"]}
    assert rows[lab.busy]["entries"] == lab.count(lab.busy) == FLOWS
    assert "host" in rows and usage["max"] == read_max()
    assert sections["hash"]["buckets"] == buckets()
    assert sections["hash"]["entries"] >= FLOWS
    tuning = sections["tuning"]
    assert tuning["available"] and tuning["facts"]["max"] == read_max()
    _, verbose, _ = run_plugin("check_conntrack_tuning", "-v")
    assert [f["id"] for f in tuning["findings"]] == re.findall(
        r"^(?:warning|critical): \[([\w-]+)\]", verbose, re.M)
    for name, module in PEERS.items():
        if installed(module):
            assert sections[name]["available"], sections[name]
    if installed("check_conntrack_table"):
        talkers = sections["talkers"]
        assert talkers["title"] == f"Top talkers (netns {lab.busy}, the fullest)"
        assert talkers["entries"] == FLOWS
    if installed("check_conntrack_stats"):  # read inside the fullest namespace
        counters = sections["counters_fullest"]
        assert counters["title"] == f"Counters since boot (netns {lab.busy}, the fullest)"
        assert counters["entries"] == FLOWS
    assert code == {"ok": 0, "warning": 1, "critical": 2}[max(
        (s["status"] for s in sections.values() if s["available"] and "status" in s),
        key=["ok", "warning", "critical"].index)]


def test_text_as_root_without_a_terminal(lab, run_plugin):
    _, out, err = run_plugin("conntrack-report", timeout=300)
    assert err == "" and "\033[" not in out
    assert out.startswith(f"conntrack report for {os.uname().nodename}, ")
    headings = re.findall(r"^== (.+?) ==", out, re.M)
    assert headings[:2] == ["Usage per namespace", "Hash table"]
    assert headings[-1] == "Tuning"
    assert re.search(rf"^  {lab.busy} +{FLOWS} of {read_max()} ", out, re.M)
    for name, module in PEERS.items():
        if installed(module):
            assert "not available" not in section_text(out, name), out


def section_text(out: str, name: str) -> str:
    title = {"counters": "Counters since boot (this namespace)", "events": "Table full events",
             "talkers": "Top talkers"}[name]
    start = out.index(f"== {title}")
    end = out.find("\n== ", start + 1)
    return out[start:end]


@pytest.mark.parametrize("no_color, coloured", [(None, True), ("1", False)])
def test_colour_on_a_terminal_unless_no_color(lab, no_color, coloured):
    env = {k: v for k, v in os.environ.items() if k != "NO_COLOR"}
    if no_color:
        env["NO_COLOR"] = no_color
    leader, follower = pty.openpty()
    try:
        proc = subprocess.Popen([REPORT], stdout=follower,
                                stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL, env=env)
        os.close(follower)
        chunks = []
        while True:
            try:
                chunk = os.read(leader, 65536)
            except OSError:  # EIO: the report closed the terminal
                break
            if not chunk:
                break
            chunks.append(chunk)
        proc.wait(timeout=300)
    finally:
        os.close(leader)
    text = b"".join(chunks).decode()
    assert "== Tuning ==" in text
    assert ("\033[1m== Tuning ==\033[0m" in text) is coloured
    assert ("\033[" in text) is coloured


def test_as_nobody_degrades_clearly(lab):
    code, out, err = as_nobody("conntrack-report", "--json")
    assert err == "" and code in (0, 1, 2)
    data = json.loads(out)
    assert data["as_root"] is False
    usage = data["sections"]["usage"]
    assert [r["namespace"] for r in usage["namespaces"]] == ["this namespace"]
    assert "needs root" in usage["note"]
    assert data["sections"]["tuning"]["available"]
    assert data["sections"]["tuning"]["facts"]["entry_bytes_source"] is None  # no slabinfo
    if installed("check_conntrack_table"):
        talkers = data["sections"]["talkers"]
        assert not talkers["available"] and "root" in talkers["reason"]
    _, text, _ = as_nobody("conntrack-report")
    assert "run as an unprivileged user (some sections need root)" in text
    assert "typical size: the slab size needs root" in text
    if installed("check_conntrack_table"):
        assert re.search(r"== Top talkers ==\n  not available: .*root", text)
