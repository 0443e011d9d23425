"""conntrack-report from fixture trees: sections, degraded sections, text, colour and JSON."""

from __future__ import annotations

import json
import os
import time
import types

import pytest
from conntrack_checks.errors import ProbeError
from conntrack_checks.kernel import sysctl
from conntrack_checks.report import render, report, sections
from tuning_trees import kernel_tree, root, write_host

# The sections a fixture tree can give without the host's own kernel log and table.
OWN = ("usage", "hash", "tuning")


def own_sections(monkeypatch, *extra):
    monkeypatch.setattr(sections, "SECTIONS",
                        [s for s in sections.SECTIONS if s[0] in OWN] + list(extra))


@pytest.fixture
def host(tmp_path, monkeypatch):
    """A fixture host; only the sections that read nothing but the fixture tree."""
    own_sections(monkeypatch)

    def make(changes=None, files=None):
        args = write_host(tmp_path, kernel_tree(**(changes or {})), root(files))
        return sysctl.Roots(args[1], args[3]), args[5]

    return make


def fixed(data: dict) -> dict:
    data.update(host="web1", kernel="6.18.0", generated="2026-11-23T15:00:00Z")
    return data


def test_sections_from_the_shared_library(host):
    roots, config = host({"count": 220000, "limit": 262144, "timeouts": {"udp_timeout": 600}})
    data = sections.gather(roots, config, as_root=False)
    usage, hashes, tuning = (data["sections"][k] for k in ("usage", "hash", "tuning"))
    assert usage["namespaces"] == [{"namespace": "this namespace", "inode": None,
                                    "entries": 220000, "percent": 83.9, "status": "warning"}]
    assert (usage["status"], usage["max"], usage["available"]) == ("warning", 262144, True)
    assert hashes == {"status": "ok", "buckets": 262144, "max": 262144, "entries": 220000,
                      "namespaces": 1, "load_now": 0.839, "load_when_full": 1.0,
                      "available": True, "title": "Hash table"}
    assert [f["id"] for f in tuning["findings"]] == ["persist-udp", "timeout-udp"]
    assert sections.worst_status(data) == "warning"
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
    data = fixed(sections.gather(roots, config, as_root=False))
    assert render.render_text(data, render.Paint(False)) == EXPECTED_TEXT


def test_colour_marks_states_and_headings(host):
    roots, config = host({"count": 250000})
    text = render.render_text(fixed(sections.gather(roots, config, as_root=False)),
                              render.Paint(True))
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
    assert render.use_colour(choice, stream) is colour


def test_each_section_stands_alone(tmp_path, monkeypatch):
    def broken(host):
        raise ProbeError("cannot read /proc/net/nf_conntrack: permission denied; run as root")

    def crashing(host):
        raise ZeroDivisionError("division by zero")

    own_sections(monkeypatch, ("denied", "Denied", broken), ("crash", "Crash", crashing))
    args = write_host(tmp_path, kernel_tree(), root())
    data = sections.gather(sysctl.Roots(args[1], args[3]), args[5], as_root=False)
    text = render.render_text(fixed(data), render.Paint(False))
    assert ("== Denied ==\n  not available: cannot read /proc/net/nf_conntrack: permission "
            "denied; run as root\n") in text
    assert "== Crash ==\n  not available: failed: ZeroDivisionError: division by zero\n" in text
    assert "== Tuning == OK\n" in text and "== Usage per namespace == OK" in text
    assert data["sections"]["denied"] == {
        "available": False, "title": "Denied",
        "reason": "cannot read /proc/net/nf_conntrack: permission denied; run as root"}


def test_not_loaded_is_said_once_and_sections_degrade(tmp_path, monkeypatch):
    own_sections(monkeypatch)
    args = write_host(tmp_path, {"proc": {"meminfo": "MemTotal: 1 kB\n"}, "sys": {}}, root())
    data = sections.gather(sysctl.Roots(args[1], args[3]), args[5], as_root=False)
    text = render.render_text(fixed(data), render.Paint(False))
    assert text.splitlines()[1].startswith("nf_conntrack is not loaded: no connections are "
                                           "tracked")
    assert "overall: OK" in text
    assert "== Hash table ==\n  not available: nf_conntrack is not loaded" in text


def test_main_json_and_exit_status(host, capsys, monkeypatch):
    roots, config = host({"count": 220000})
    monkeypatch.setattr(sections.os, "geteuid", lambda: 1000)
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
    assert sections.hash_section(table)["status"] == status


# --- the renderers read only what the sections produce --------------------------------


class Reads(dict):
    """A report, or a part of it, that notes each key a renderer reads (``seen``)."""

    def __init__(self, data: dict, seen: set, path: str = ""):
        super().__init__({key: wrapped(value, seen, f"{path}{key}")
                          for key, value in data.items()})
        self.seen, self.path = seen, path

    def __getitem__(self, key):
        self.seen.add(self.path + key)
        return super().__getitem__(key)

    def get(self, key, default=None):
        self.seen.add(self.path + key)
        return super().get(key, default)


def wrapped(value, seen: set, path: str):
    if isinstance(value, dict):
        return Reads(value, seen, path + ".")
    if isinstance(value, list):
        return [wrapped(item, seen, path + "[]") for item in value]
    return value


def produced(value, path: str = "") -> set:
    """Every key path in the data, list items merged: sections.usage.namespaces[].entries."""
    if isinstance(value, dict):
        keys = set()
        for key, item in value.items():
            keys |= {path + key} | produced(item, f"{path}{key}.")
        return keys
    if isinstance(value, list):
        return set().union(*(produced(item, path[:-1] + "[].") for item in value))
    return set()


def log_events(tmp_path):
    """The events section read from a syslog file (the host's own log is not a fixture)."""
    from conntrack_checks.logs import events

    path = tmp_path / "kern.log"
    stamp = time.strftime("%b %d %H:%M:%S")
    path.write_text(
        f"{stamp} fw kernel: [1.0] nf_conntrack: nf_conntrack: table full in netns 4026532111, "
        "dropping packet\n"
        f"{stamp} fw kernel: [2.0] net_ratelimit: 7 callbacks suppressed\n"
        f"{stamp} fw kernel: [3.0] nf_conntrack: expectation table full\n")
    return lambda host: events.report_section(
        host.roots, sections.DAY, source="file", logfiles=[str(path)])


def test_every_key_a_renderer_reads_is_in_what_its_section_produces(tmp_path, monkeypatch):
    tree = kernel_tree(count=250000, buckets=16384)
    tree["proc"]["net/nf_conntrack"] = "".join(
        f"ipv4     2 udp      17 599 src=10.0.0.{i} dst=192.0.2.53 sport={3000 + i} dport=53 "
        f"[UNREPLIED] src=192.0.2.53 dst=10.0.0.{i} sport=53 dport={3000 + i} mark=0 zone=0 "
        "use=2\n" for i in range(1, 40))
    args = write_host(tmp_path / "full", tree, root())
    monkeypatch.setattr(sections, "SECTIONS", [
        (name, title, log_events(tmp_path) if name == "events" else function)
        for name, title, function in sections.SECTIONS])
    reports = [sections.gather(sysctl.Roots(args[1], args[3]), args[5], as_root=False)]
    assert all(s["available"] for s in reports[0]["sections"].values()), reports[0]
    assert set(reports[0]["sections"]) == {name for name, _, _ in sections.SECTIONS} - {
        "counters_fullest"}  # shown only when another namespace is fuller: as root
    empty = write_host(tmp_path / "empty", {"proc": {"meminfo": "MemTotal: 1 kB\n"},
                                            "sys": {}}, root())
    reports.append(sections.gather(sysctl.Roots(empty[1], empty[3]), empty[5], as_root=False))
    seen: set = set()
    for data in reports:
        render.render_text(Reads(data, seen), render.Paint(False))
    read_not_produced = seen - set().union(*(produced(data) for data in reports))
    # A status only where a section judges (usage, hash, tuning): the heading shows it if any.
    assert read_not_produced == {"sections.counters.status", "sections.events.status",
                                 "sections.talkers.status"}
    assert {"sections.usage.namespaces[].percent", "sections.hash.load_now",
            "sections.counters.totals", "sections.events.suppressed_estimate",
            "sections.talkers.top", "sections.tuning.findings", "not_loaded"} <= seen


def test_every_section_has_a_renderer():
    assert {name for name, _, _ in sections.SECTIONS} == set(render.RENDERERS)


def test_talkers_from_a_sample_are_shown_as_estimates_with_margins():
    data = {"source": "/proc/net/nf_conntrack", "entries": 1000000, "entries_read": 100000,
            "exact": False, "seconds": 0.4, "interrupted": False,
            "top": {"dst": [{"key": "127.0.9.9", "entries": 300700, "share_of_entries": 30.07,
                             "share_of_max": 28.6, "margin_of_entries": 0.284}]},
            "states": {}, "protocols": {"udp": 1000000}, "flags": {"assured": 0}}
    assert render.render_talkers(data, render.Paint(False)) == [
        "  a sample of 100000 of 1000000 entries read from /proc/net/nf_conntrack in 0.40 s; "
        "counts are estimates, shares +- their 95% margin",
        "  by dst: 127.0.9.9 about 300700 (30.1% +- 0.3%)",
        "  protocols: udp 1000000",
        "  assured 0",
    ]
