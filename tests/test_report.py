"""conntrack-report from fixture trees: sections, degraded sections, text, colour and JSON."""

from __future__ import annotations

import json
import os
import sys
import types

import pytest
from conntrack_checks.errors import ProbeError
from conntrack_checks.kernel import sysctl
from conntrack_checks.report import report
from tuning_trees import kernel_tree, root, write_host


@pytest.fixture
def host(tmp_path, monkeypatch):
    """A fixture host; the other plugins' sections replaced by ``peers`` (none by default)."""
    monkeypatch.setattr(report, "PEER_SECTIONS", ())

    def make(changes=None, files=None):
        args = write_host(tmp_path, kernel_tree(**(changes or {})), root(files))
        return sysctl.Roots(args[1], args[3]), args[5]

    return make


def fixed(data: dict) -> dict:
    data.update(host="web1", kernel="6.18.0", generated="2026-11-23T15:00:00Z")
    return data


def test_sections_from_the_shared_library(host):
    roots, config = host({"count": 220000, "limit": 262144, "timeouts": {"udp_timeout": 600}})
    data = report.gather(roots, config, as_root=False)
    usage, hashes, tuning = (data["sections"][k] for k in ("usage", "hash", "tuning"))
    assert usage["namespaces"] == [{"namespace": "this namespace", "inode": None,
                                    "entries": 220000, "percent": 83.9, "status": "warning"}]
    assert (usage["status"], usage["max"], usage["available"]) == ("warning", 262144, True)
    assert hashes == {"status": "ok", "buckets": 262144, "max": 262144, "entries": 220000,
                      "namespaces": 1, "load_now": 0.839, "load_when_full": 1.0,
                      "available": True, "title": "Hash table"}
    assert [f["id"] for f in tuning["findings"]] == ["persist-udp", "timeout-udp"]
    assert report.worst_status(data) == "warning"
    json.dumps(data)  # JSON-able as it is


EXPECTED_TEXT = """\
conntrack report for web1, 2026-11-23T15:00:00Z, kernel 6.18.0, run as an unprivileged user \
(some sections need root)
overall: CRITICAL

== Usage per namespace == CRITICAL
  this namespace     250000 of 262144   95.4%  [###################.]  CRITICAL
  (only this process's namespace: reading the others needs root (see contrib/sudoers))

== Hash table == WARNING
  16384 buckets for max 262144: 16.00 entries per bucket when full, 15.26 now (250000 entries \
in 1 namespace)

== Tuning == WARNING
  a full table pins 64.1 MiB (0.8% of RAM, 256 B per entry)
  WARNING [persist-buckets] nf_conntrack_buckets 16384 is set at runtime only: the next boot \
gives 262144
      running value 16384
      next boot: 262144 (no file sets it: the kernel's default for this RAM)
      now: sysctl -w net.netfilter.nf_conntrack_buckets=262144 (back to what the next boot gives)
      persist: to keep 16384: add 'options nf_conntrack hashsize=16384' to \
/etc/modprobe.d/nf_conntrack.conf (and rebuild the initramfs if nf_conntrack loads from it)
  WARNING [hash-size] 16384 buckets for max 262144: 16.00 entries per bucket when full (above 8)
      every lookup walks one chain; 5.15+ kernels size 1 entry per bucket, older ones 4, \
kube-proxy 4; from 5.15 chains longer than about 64 refuse inserts (chaintoolong)
      now: sysctl -w net.netfilter.nf_conntrack_buckets=262144
      persist: add 'options nf_conntrack hashsize=262144' to /etc/modprobe.d/nf_conntrack.conf \
(and rebuild the initramfs if nf_conntrack loads from it)
"""


def test_text_for_a_terminal_without_colour(host):
    roots, config = host({"count": 250000, "buckets": 16384})
    data = fixed(report.gather(roots, config, as_root=False))
    assert report.render_text(data, report.Paint(False)) == EXPECTED_TEXT


def test_colour_marks_states_and_headings(host):
    roots, config = host({"count": 250000})
    text = report.render_text(fixed(report.gather(roots, config, as_root=False)),
                              report.Paint(True))
    assert "overall: \033[31mCRITICAL\033[0m" in text
    assert "\033[1m== Usage per namespace ==\033[0m \033[31mCRITICAL\033[0m" in text


@pytest.mark.parametrize("choice, tty, no_color, colour", [
    ("auto", True, None, True), ("auto", True, "1", False), ("auto", True, "", True),
    ("auto", False, None, False), ("always", False, "1", True), ("never", True, None, False),
])
def test_colour_only_on_a_terminal(monkeypatch, choice, tty, no_color, colour):
    if no_color is None:
        monkeypatch.delenv("NO_COLOR", raising=False)
    else:
        monkeypatch.setenv("NO_COLOR", no_color)
    stream = types.SimpleNamespace(isatty=lambda: tty)
    assert report.use_colour(choice, stream) is colour


def peer(monkeypatch, name, function):
    module = types.ModuleType(f"conntrack_checks.checks.{name}")
    if function is not None:
        module.report_section = function
    monkeypatch.setitem(sys.modules, f"conntrack_checks.checks.{name}", module)


def test_each_section_stands_alone(host, monkeypatch):
    roots, config = host()

    def broken(roots):
        raise ProbeError("cannot read /proc/net/nf_conntrack: permission denied; run as root")

    def crashing(roots, top):
        raise ZeroDivisionError("division by zero")

    peer(monkeypatch, "fake_denied", broken)
    peer(monkeypatch, "fake_crash", crashing)
    peer(monkeypatch, "fake_old", None)
    monkeypatch.setattr(report, "PEER_SECTIONS", (
        ("denied", "fake_denied", "Denied", {}),
        ("crash", "fake_crash", "Crash", {"top": 5}),
        ("old", "fake_old", "Old", {}),
        ("absent", "fake_absent_module", "Absent", {}),
        ("data", "fake_data", "Data", {}),
    ))
    peer(monkeypatch, "fake_data", lambda roots: {"status": "warning", "summary": "2 events",
                                                  "per_cpu": [{"cpu": 0, "drop": 1}],
                                                  "last": None})
    data = report.gather(roots, config, as_root=False)
    text = report.render_text(fixed(data), report.Paint(False))
    assert ("== Denied ==\n  not available: cannot read /proc/net/nf_conntrack: permission "
            "denied; run as root\n") in text
    assert "== Crash ==\n  not available: failed: ZeroDivisionError: division by zero\n" in text
    assert "== Old ==\n  not available: fake_old has no report_section() in this version\n" \
        in text
    assert "== Absent ==\n  not available: fake_absent_module is not part of this installation" \
        in text
    assert "== Data == WARNING\n  2 events\n  per cpu:\n    - cpu 0, drop 1\n  last: -\n" in text
    assert "== Tuning == OK\n" in text and "== Usage per namespace == OK" in text
    assert data["sections"]["denied"] == {
        "available": False, "title": "Denied",
        "reason": "cannot read /proc/net/nf_conntrack: permission denied; run as root"}


def test_not_loaded_is_said_once_and_sections_degrade(tmp_path, monkeypatch):
    monkeypatch.setattr(report, "PEER_SECTIONS", ())
    args = write_host(tmp_path, {"proc": {"meminfo": "MemTotal: 1 kB\n"}, "sys": {}}, root())
    data = report.gather(sysctl.Roots(args[1], args[3]), args[5], as_root=False)
    text = report.render_text(fixed(data), report.Paint(False))
    assert text.splitlines()[1].startswith("nf_conntrack is not loaded: no connections are "
                                           "tracked")
    assert "overall: OK" in text
    assert "== Hash table ==\n  not available: nf_conntrack is not loaded" in text


def test_main_json_and_exit_status(host, capsys, monkeypatch):
    roots, config = host({"count": 220000})
    monkeypatch.setattr(report.os, "geteuid", lambda: 1000)
    with pytest.raises(SystemExit) as done:
        report.main(["--json", "--proc-root", roots.proc, "--sys-root", roots.sys,
                     "--config-root", config])
    assert done.value.code == 1
    data = json.loads(capsys.readouterr().out)
    assert data["sections"]["usage"]["namespaces"][0]["entries"] == 220000
    assert data["as_root"] is False


def test_argument_mistake_exits_3_not_critical(capsys):
    with pytest.raises(SystemExit) as done:
        report.main(["--bogus"])
    assert done.value.code == 3
    assert "conntrack-report: error: unrecognized arguments: --bogus" in capsys.readouterr().err


@pytest.mark.parametrize("entries, max_, status", [(50, 50, "ok"), (50, 100, "warning"),
                                                   (90, 90, "warning"), (400, 400, "critical")])
def test_hash_section_uses_the_plugin_defaults_without_parsing_a_command_line(
        monkeypatch, entries, max_, status):
    monkeypatch.setattr(os.path, "isdir", lambda path: False)  # a parse would fail on /sys
    table = types.SimpleNamespace(counts=[types.SimpleNamespace(count=entries)], buckets=10,
                                  max=max_)
    assert report.hash_section(table)["status"] == status
