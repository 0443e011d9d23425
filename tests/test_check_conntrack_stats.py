"""check_conntrack_stats: fixture kernels in, exact state and output out."""

from __future__ import annotations

import json
import os
import re
import stat
from pathlib import Path

import pyfakefs.helpers
import pytest
import stats_fixtures as fx
from conntrack_checks import deltas, state
from conntrack_checks.checks import check_conntrack_stats as ccs
from conntrack_checks.kernel import ctnetlink
from kernel_trees import write_tree

main = ccs.main
TOP = 2**32 - 100
# 5.15+: new, ignore and delete are printed as a constant 0, so not shown.
IDLE = ("chaintoolong=0c;;;0 clash_resolve=0c;;;0 drop=0c;;;0 early_drop=0c;;;0 "
        "error=0c;;;0 expect_create=0c;;;0 expect_delete=0c;;;0 expect_new=0c;;;0 found=0c;;;0 "
        "insert=0c;;;0 insert_failed=0c;;;0 invalid=0c;;;0 search_restart=0c;;;0")


class Kernel:
    """A fixture kernel whose counters a test moves between runs."""

    def __init__(self, base: Path):
        self.base = base
        self.state_dir = str(base / "state")
        self.set([{}, {}])

    def set(self, rows, generation="5.15-chainlength", boot_id=fx.BOOT_ID):
        self.proc, self.sys = write_tree(self.base, fx.tree(generation, rows, boot_id))

    def args(self, *more):
        return ["--proc-root", self.proc, "--sys-root", self.sys,
                "--state-dir", self.state_dir, *more]

    @property
    def state_file(self) -> Path:
        files = [p for p in Path(self.state_dir).glob("*.json")]
        assert len(files) == 1, files
        return files[0]


@pytest.fixture
def kern(tmp_path):
    return Kernel(tmp_path)


@pytest.fixture
def clock(monkeypatch):
    """The boot-time clock, moved by the test."""
    now = {"t": 1000.0}
    monkeypatch.setattr(deltas, "clock", lambda: now["t"])
    return now


def first_line(out: str) -> str:
    return out.split(" | ")[0]


def perf(out: str) -> dict[str, str]:
    return dict(item.split("=", 1) for item in out.split(" | ")[1].split())


def test_first_run_stores_a_baseline_and_is_ok(kern, clock, run_main):
    kern.set([{"drop": 5, "insert_failed": 1}, {"drop": 2}])
    code, out = run_main(main, *kern.args())
    assert code == 0
    assert out == ("CONNTRACK STATS OK - baseline stored (drop 7, early_drop 0, insert_failed 1 "
                   "since the counters started); deltas from the next run | "
                   + IDLE.replace("drop=0c", "drop=7c", 1).replace("insert_failed=0c",
                                                                   "insert_failed=1c")
                   + "\n")
    doc = json.loads(kern.state_file.read_text())
    entry = doc["data"]["namespaces"]["this namespace"]
    assert doc["data"]["boot_id"] == fx.BOOT_ID
    assert entry["cpus"]["0"]["drop"] == 5 and entry["cpus"]["1"]["drop"] == 2
    assert entry["source"] == "proc" and entry["clock"] == 1000.0
    assert stat.S_IMODE(kern.state_file.stat().st_mode) == 0o600


OTHER_BOOT = "5f0c0a7e-0000-4000-8000-000000000001"

# Two runs: (before rows, after rows, seconds between, after's boot id or None,
# generation, argv) in; exit code, first line and some perfdata out.
SCENARIOS = {
    "new drops are critical, in words": (
        [{}, {}], [{"drop": 600}, {"drop": 85}], 300, None, "5.15-chainlength", [],
        2, "CRITICAL - 685 packets dropped (2.283/s) since the last check 5m ago: table full "
           "(critical above 0)",
        {"drop": "685c;;;0", "drop_delta": "685;;;0", "drop_rate": "2.283;;;0",
         "table_full_delta": "685;;0;0", "clash_drop_delta": "0;0;;0",
         "early_drop_delta": "0;0;;0",
         "insert_failed_rate": "0;0.017;;0"}),
    "only early_drop moved: warning": (
        [{}, {}], [{"early_drop": 12}, {}], 60, None, "5.15-chainlength", [],
        1, "WARNING - 12 entries evicted early (0.2/s) since the last check 60s ago: the "
           "table is at its limit (warning above 0)",
        {"early_drop_delta": "12;0;;0", "drop_delta": "0;;;0", "table_full_delta": "0;;0;0"}),
    # 10 failed inserts, 3 for chain length; 7 clashes dropped a packet each, 5 drops
    # more were for a full table.
    "insert_failed rate warns, clash drops are not table full": (
        [{}, {}], [{"insert_failed": 10, "chainlength": 3, "drop": 12}, {}], 120, None,
        "5.15-chainlength", [],
        2, "CRITICAL - 12 packets dropped (0.1/s) since the last check 2m ago: 5 table full "
           "(critical above 0), 7 failed inserts (clashes) (warning above 0); 10 inserts "
           "failed (0.083/s) (warning above 0.017/s)",
        {"table_full_delta": "5;;0;0", "clash_drop_delta": "7;0;;0",
         "chaintoolong_delta": "3;;;0"}),
    # A healthy host (20,000 of 262,144 entries) with 10 clash drops: not a page.
    "clash drops alone warn, a full table is critical": (
        [{"entries": 20000}, {"entries": 20000}],
        [{"entries": 20000, "insert_failed": 10, "drop": 10}, {"entries": 20000}], 600, None,
        "5.15-chainlength", [],
        1, "WARNING - 10 packets dropped (0.017/s) since the last check 10m ago: failed "
           "inserts (clashes), not a full table (warning above 0)",
        {"table_full_delta": "0;;0;0", "clash_drop_delta": "10;0;;0", "drop_delta": "10;;;0",
         "insert_failed_rate": "0.017;0.017;;0"}),
    "the clash drop threshold is settable": (
        [{}, {}], [{"insert_failed": 10, "drop": 10}, {}], 600, None, "5.15-chainlength",
        ["-c", "clash_drop_delta=5"],
        2, "CRITICAL - 10 packets dropped (0.017/s) since the last check 10m ago: failed "
           "inserts (clashes), not a full table (critical above 5)",
        {"clash_drop_delta": "10;;5;0"}),
    "the table full threshold is settable": (
        [{}, {}], [{"drop": 4}, {}], 600, None, "5.15-chainlength",
        ["-w", "table_full_delta=5"],
        0, "OK - 4 packets dropped, no early drops, no failed inserts since the last check "
           "10m ago",
        {"table_full_delta": "4;5;;0"}),
    "5.10 has clashres but no chaintoolong": (
        [{}, {}], [{"insert_failed": 2, "drop": 2, "clashres": 4}, {}], 60, None,
        "5.10-clashres", [],
        1, "WARNING - 2 packets dropped (0.033/s) since the last check 60s ago: failed "
           "inserts (clashes), not a full table (warning above 0); 2 inserts failed "
           "(0.033/s) (warning above 0.017/s)",
        {"table_full_delta": "0;;0;0", "clash_resolve_delta": "4;;;0",
         "delete_list_delta": None, "new": None, "ignore": None, "delete": None}),
    # Before clashres, insert_failed counts resolved clashes too: no default warning.
    "before 5.10 failed inserts are said with the resolved clashes, not alerted": (
        [{}, {}], [{"insert_failed": 600, "ignore": 5}, {}], 60, None, "3.10-17col", [],
        0, "OK - no packets dropped, no early drops, 600 failed inserts (10/s, including "
           "resolved clashes) since the last check 60s ago",
        {"insert_failed_rate": "10;;;0", "ignore_delta": "5;;;0", "table_full_delta": None,
         "searched": None, "new_delta": None, "delete": None, "delete_list": None}),
    "before 5.10 a threshold on insert_failed still alerts, in words": (
        [{}, {}], [{"insert_failed": 6}, {}], 60, None, "3.10-17col",
        ["-w", "insert_failed_delta=5"],
        1, "WARNING - 6 inserts failed (0.1/s, including resolved clashes) since the last "
           "check 60s ago (warning above 5)",
        {"insert_failed_delta": "6;5;;0"}),
    # 2.6.3x to 4.9 count searched/new/delete/delete_list; 4.10 to 5.9 print 0 under
    # the same header: they count as kept once a CPU shows a value.
    "before 4.10 the lookup counters are kept": (
        [{"searched": 7, "new": 2}, {}], [{"searched": 90, "new": 3, "delete": 1}, {}], 60,
        None, "3.10-17col", [],
        0, "OK - no packets dropped, no early drops, no failed inserts since the last check "
           "60s ago",
        {"searched": "90c;;;0", "searched_delta": "83;;;0", "new_delta": "1;;;0",
         "delete": "1c;;;0", "delete_list": None}),
    "before 5.10 drops have no cause": (
        [{}, {}], [{"drop": 3}, {}], 30, None, "3.10-17col", [],
        2, "CRITICAL - 3 packets dropped (0.1/s) since the last check 30s ago "
           "(critical above 0)",
        {"searched": None, "search_restart_delta": "0;;;0", "ignore": "0c;;;0"}),
    "the 16 columns of 2.6": (
        [{"drop": 1}], [{"drop": 5, "icmp_error": 2}], 10, None, "2.6-16col", [],
        2, "CRITICAL - 4 packets dropped (0.4/s) since the last check 10s ago "
           "(critical above 0)",
        {"error_delta": "2;;;0", "expect_delete": "0c;;;0"}),
    "one drop allowed by the thresholds is said in the singular": (
        [{}, {}], [{"drop": 1}, {}], 60, None, "3.10-17col", ["-c", "drop_delta=none"],
        0, "OK - 1 packet dropped, no early drops, no failed inserts since the last check "
           "60s ago",
        {"drop_delta": "1;;;0"}),
    "quiet counters are ok with their numbers": (
        [{}, {}], [{"found": 40, "search_restart": 9, "insert_failed": 1}, {}], 600, None,
        "5.15-chainlength", [],
        0, "OK - no packets dropped, no early drops, 1 failed insert (0.002/s) since the "
           "last check 10m ago",
        {"found_delta": "40;;;0", "search_restart_rate": "0.015;;;0"}),
    "wrap at 2^32 is counted across": (
        [{"drop": TOP}, {}], [{"drop": 20}, {}], 60, None, "5.15-chainlength", [],
        2, "CRITICAL - 120 packets dropped (2/s) since the last check 60s ago: table full "
           "(critical above 0); drop on cpu0 wrapped at 2^32",
        {"drop_delta": "120;;;0", "table_full_delta": "120;;0;0", "drop": "20c;;;0"}),
    "a reset counts from zero, with a note": (
        [{"drop": 5000, "found": 90}, {"drop": 10}], [{"found": 2}, {"drop": 3}], 60, None,
        "5.15-chainlength", [],
        2, "CRITICAL - 3 packets dropped (0.05/s) since the last check 60s ago: table full "
           "(critical above 0); found on cpu0 went back from 90 to 2 (nf_conntrack "
           "reloaded?): counted from 0",
        {"table_full_delta": "3;;0;0", "found_delta": "2;;;0"}),
    "a reboot counts from zero, without rates": (
        [{"drop": 5000}, {}], [{"early_drop": 1}, {}], -970, OTHER_BOOT, "5.15-chainlength",
        [],
        1, "WARNING - 1 entry evicted early since the last check: the table is at its limit "
           "(warning above 0); the machine rebooted since the last check: counted from 0",
        {"early_drop_delta": "1;0;;0"}),
    "the clock went back: deltas without rates": (
        [{}, {}], [{"insert_failed": 2}, {}], -50, None, "5.15-chainlength", [],
        0, "OK - no packets dropped, no early drops, 2 failed inserts since the last check; "
           "the clock went back 50s since the last check: no rates this time",
        {"insert_failed_delta": "2;;;0"}),
    "runs less than a second apart: no rates": (
        [{}, {}], [{"drop": 1}, {}], 0.5, None, "5.15-chainlength", [],
        2, "CRITICAL - 1 packet dropped since the last check 0.5s ago: table full "
           "(critical above 0)",
        {"table_full_delta": "1;;0;0"}),
    # Kernels without clashres: drop_delta carries the default.
    "thresholds replace the defaults of their label": (
        [{}, {}], [{"drop": 50, "invalid": 4}, {}], 600, None, "3.10-17col",
        ["-w", "drop_delta=100"],
        0, "OK - 50 packets dropped, no early drops, no failed inserts since the last check "
           "10m ago",
        {"drop_delta": "50;100;;0"}),
    "warning on a delta": (
        [{}, {}], [{"drop": 50}, {}], 600, None, "3.10-17col",
        ["-c", "drop_delta=none", "-w", "drop_delta=10"],
        1, "WARNING - 50 packets dropped (0.083/s) since the last check 10m ago "
           "(warning above 10)",
        {"drop_delta": "50;10;;0"}),
    "critical on a rate per minute": (
        [{}, {}], [{"drop": 50}, {}], 600, None, "3.10-17col",
        ["-c", "drop_delta=none", "-c", "drop_rate=1", "--rate-per", "minute"],
        2, "CRITICAL - 50 packets dropped (5/min) since the last check 10m ago "
           "(critical above 1/min)",
        {"drop_rate": "5;;1;0", "insert_failed_rate": "0;;;0"}),
    "a rate per minute on 5.10+ kernels": (
        [{}, {}], [{"drop": 50}, {}], 600, None, "5.15-chainlength",
        ["-c", "table_full_delta=none", "--rate-per", "minute"],
        0, "OK - 50 packets dropped, no early drops, no failed inserts since the last check "
           "10m ago",
        {"drop_rate": "5;;;0", "insert_failed_rate": "0;1;;0"}),
    "two thresholds on one counter": (
        [{}, {}], [{"drop": 50}, {}], 600, None, "3.10-17col",
        ["-c", "drop_rate=1", "--rate-per", "minute"],
        2, "CRITICAL - 50 packets dropped (5/min) since the last check 10m ago "
           "(critical above 0, critical above 1/min)",
        {"drop_rate": "5;;1;0"}),
    "a threshold on any counter": (
        [{}, {}], [{"invalid": 4}, {}], 600, None, "5.15-chainlength",
        ["-w", "invalid_delta=0"],
        1, "WARNING - invalid +4 (0.007/s) since the last check 10m ago (warning above 0)",
        {"invalid_delta": "4;0;;0"}),
    "rates per check are the deltas": (
        [{}, {}], [{"insert_failed": 2}, {}], 600, None, "5.15-chainlength",
        ["--rate-per", "check"],
        1, "WARNING - 2 inserts failed since the last check 10m ago (warning above 1/check)",
        {"insert_failed_rate": "2;1;;0", "insert_failed_delta": "2;;;0"}),
}


@pytest.mark.parametrize("scenario", sorted(SCENARIOS))
def test_two_runs(kern, clock, run_main, scenario):
    before, after, seconds, boot, generation, argv, code, line, values = SCENARIOS[scenario]
    kern.set(before, generation)
    got, out = run_main(main, *kern.args(*argv))
    assert got == 0 and "baseline stored" in out
    kern.set(after, generation, boot_id=boot or fx.BOOT_ID)
    clock["t"] += seconds
    got, out = run_main(main, *kern.args(*argv))
    assert (got, first_line(out)) == (code, "CONNTRACK STATS " + line)
    shown = perf(out)
    assert {label: shown.get(label) for label in values} == values


def test_state_is_repaired_after_a_reset(kern, clock, run_main):
    kern.set([{"drop": 5000}, {}])
    run_main(main, *kern.args())
    kern.set([{"drop": 3}, {}])
    clock["t"] += 60
    run_main(main, *kern.args())
    clock["t"] += 60
    code, out = run_main(main, *kern.args())
    assert code == 0 and perf(out)["table_full_delta"] == "0;;0;0"


def test_user_thresholds_show_in_the_perfdata(kern, clock, run_main):
    argv = ["-w", "drop_delta=5", "-c", "drop_delta=50", "-w", "search_restart_rate=10"]
    run_main(main, *kern.args(*argv))
    clock["t"] += 10
    _, out = run_main(main, *kern.args(*argv))
    assert perf(out)["drop_delta"] == "0;5;50;0"
    assert perf(out)["search_restart_rate"] == "0;10;;0"


@pytest.mark.parametrize("argv, words", [
    (["-w", "drop=5"], "'drop=5' is not NAME=RANGE"),
    (["-c", "drop_delta"], "'drop_delta' is not NAME=RANGE"),
    (["-c", "drop_delta=1e3"], "'1e3' is not a Nagios range"),
    (["--rate-per", "hour"], "invalid choice: 'hour'"),
    (["--counters", "drop;early"], "is not a comma-separated list"),
])
def test_bad_arguments_are_unknown(kern, run_main, argv, words):
    code, out = run_main(main, *kern.args(*argv))
    assert code == 3
    assert out.startswith("CONNTRACK STATS UNKNOWN - ") and words in out
    assert out.count("\n") == 1


def test_counters_option_trims_the_perfdata(kern, clock, run_main):
    argv = ["--counters", "drop,table_full"]
    run_main(main, *kern.args(*argv))
    clock["t"] += 10
    _, out = run_main(main, *kern.args(*argv))
    # thresholds are always evaluated, so their labels stay
    assert sorted(perf(out)) == ["clash_drop_delta", "drop", "drop_delta", "drop_rate",
                                 "early_drop_delta", "insert_failed_rate", "table_full_delta",
                                 "table_full_rate"]


def test_a_threshold_for_a_counter_this_kernel_lacks_is_said(kern, clock, run_main):
    kern.set([{}], "3.10-17col")
    run_main(main, *kern.args("-w", "chaintoolong_delta=0"))
    clock["t"] += 10
    _, out = run_main(main, *kern.args("-w", "chaintoolong_delta=0", "-v"))
    assert ("threshold on chaintoolong_delta not evaluated: this kernel has no chaintoolong "
            "counter") in out.splitlines()


@pytest.mark.parametrize("content, note", [
    (b"{garbage", "was corrupt: baseline reset"),
    ({"plugin": "check_conntrack_log", "data": {}},
     "belonged to another check (check_conntrack_log)"),
    ({"data": {"namespaces": 5}}, "held no namespaces: baseline reset"),
    ({"data": {"namespaces": {"this namespace": {"cpus": "x"}}}},
     "stored baseline of this namespace was unusable: baseline reset"),
])
def test_corrupt_or_foreign_state_is_repaired(kern, clock, run_main, content, note):
    run_main(main, *kern.args())
    if isinstance(content, dict):
        doc = json.loads(kern.state_file.read_text())
        doc.update(content)
        content = json.dumps(doc).encode()
    kern.state_file.write_bytes(content)
    kern.set([{"drop": 9}, {}])
    code, out = run_main(main, *kern.args())
    assert code == 0, out
    assert first_line(out).startswith("CONNTRACK STATS OK - baseline stored (drop 9, ")
    assert note in first_line(out)
    kern.set([{"drop": 10}, {}])
    clock["t"] += 60
    code, out = run_main(main, *kern.args())
    assert code == 2 and perf(out)["table_full_delta"] == "1;;0;0"


def test_missing_state_starts_again(kern, clock, run_main):
    run_main(main, *kern.args())
    kern.state_file.unlink()
    kern.set([{"drop": 9}, {}])
    code, out = run_main(main, *kern.args())
    assert code == 0 and "baseline stored (drop 9, " in out


def test_unwritable_state_directory_is_unknown_and_shows_the_values(fs, monkeypatch, run_main):
    proc, sys_root = write_tree("/k", fx.tree(rows=[{"drop": 4}, {"drop": 3}]))
    fs.create_dir("/st", perm_bits=0o500)
    os.chown("/st", 1000, 1000)
    pyfakefs.helpers.set_uid(1000)
    monkeypatch.setattr(state.os, "geteuid", lambda: 1000)
    try:
        code, out = run_main(main, "--proc-root", proc, "--sys-root", sys_root,
                             "--state-dir", "/st")
    finally:
        pyfakefs.helpers.reset_ids()
    assert code == 3
    assert re.fullmatch(
        r"CONNTRACK STATS UNKNOWN - cannot write state /st/check_conntrack_stats_proc_k-proc_"
        r"sys_k-sys_[0-9a-f]{8}\.json\.lock: Permission denied; give the monitoring user a "
        r"writable --state-dir; read \(totals since the counters started\): drop 7, "
        r"early_drop 0, insert_failed 0", first_line(out)), out
    assert perf(out)["drop"] == "7c;;;0"


def test_unreadable_state_file_is_unknown_and_shows_the_values(fs, monkeypatch, run_main):
    proc, sys_root = write_tree("/k", fx.tree(rows=[{"drop": 4}, {"drop": 3}]))
    fs.create_dir("/st", perm_bits=0o700)
    os.chown("/st", 1000, 1000)
    pyfakefs.helpers.set_uid(1000)
    monkeypatch.setattr(state.os, "geteuid", lambda: 1000)
    argv = ["--proc-root", proc, "--sys-root", sys_root, "--state-file", "/st/s.json"]
    try:
        run_main(main, *argv)
        os.chmod("/st/s.json", 0)
        code, out = run_main(main, *argv)
    finally:
        pyfakefs.helpers.reset_ids()
    assert code == 3
    assert first_line(out) == (
        "CONNTRACK STATS UNKNOWN - cannot read state /st/s.json: Permission denied; read "
        "(totals since the counters started): drop 7, early_drop 0, insert_failed 0")


@pytest.mark.parametrize("missing, code", [("ok", 0), ("critical", 2), ("unknown", 3)])
def test_module_not_loaded_follows_missing(tmp_path, run_main, missing, code):
    proc, sys_root = write_tree(tmp_path, {"proc": {}, "sys": {}})
    got, out = run_main(main, "--proc-root", proc, "--sys-root", sys_root, "--state-dir",
                        str(tmp_path / "st"), "--missing", missing)
    assert got == code
    assert out.startswith(f"CONNTRACK STATS {missing.upper()} - nf_conntrack is not loaded")


def test_verbose_names_the_source_and_breaks_down_per_cpu(kern, clock, run_main):
    kern.set([{"drop": 1}, {"drop": 2, "found": 5}])
    run_main(main, *kern.args())
    kern.set([{"drop": 1}, {"drop": 12, "found": 5}])
    clock["t"] += 100
    code, out = run_main(main, *kern.args("-v"))
    assert code == 2
    lines = out.splitlines()
    assert lines[1:] == [
        "critical: table_full_delta: critical above 0",
        f"counters from {kern.proc}/net/stat/nf_conntrack (procfs)",
        f"state in {kern.state_file}",
        "per CPU (total, +delta; 100.0s since the last check, rates per second):",
        "  cpu0: insert_failed 0, drop 1, early_drop 0",
        "  cpu1: found 5, insert_failed 0, drop 12 (+10), early_drop 0",
        lines[-1],
    ]
    assert lines[-1].startswith("| chaintoolong=0c")


def test_without_procfs_the_netlink_source_is_used_and_said(fs, monkeypatch, clock, run_main):
    rows = [[(0, {"drop": 1, "early_drop": 0, "insert_failed": 0, "clash_resolve": 0,
                  "chaintoolong": 0})],
            [(0, {"drop": 9, "early_drop": 0, "insert_failed": 0, "clash_resolve": 0,
                  "chaintoolong": 0})]]
    monkeypatch.setattr(ctnetlink, "read_stats_cpu", lambda where, timeout=5.0: rows.pop(0))
    tree = {"proc": {"sys/kernel/random/boot_id": fx.BOOT_ID},
            "sys": {"module/nf_conntrack/refcnt": 1}}
    proc, sys_root = write_tree("/k", tree)
    argv = ["--proc-root", proc, "--sys-root", sys_root, "--state-dir", "/st"]
    run_main(main, *argv)
    clock["t"] += 10
    code, out = run_main(main, *argv, "-v")
    assert code == 2
    assert out.splitlines()[0] == ("CONNTRACK STATS CRITICAL - 8 packets dropped (0.8/s) since "
                                   "the last check 10s ago: table full (critical above 0)")
    assert ("counters from ctnetlink (IPCTNL_MSG_CT_GET_STATS_CPU, as conntrack -S); "
            "no /k/proc/net/stat/nf_conntrack") in out.splitlines()


def test_state_file_names_follow_the_instance(kern, run_main):
    run_main(main, *kern.args())
    run_main(main, *kern.args("--source", "proc"))
    names = sorted(p.name for p in Path(kern.state_dir).glob("*.json"))
    assert len(names) == 2 and all(n.startswith("check_conntrack_stats_proc_") for n in names)
    explicit = kern.base / "mine.json"
    run_main(main, *kern.args("--state-file", str(explicit)))
    assert json.loads(explicit.read_text())["plugin"] == "check_conntrack_stats"


def test_verbose_puts_idle_cpus_on_one_line(kern, clock, run_main):
    kern.set([{}, {"drop": 2}, {}, {}, {}, {"early_drop": 1}, {}])
    run_main(main, *kern.args())
    clock["t"] += 10
    _, out = run_main(main, *kern.args("-v"))
    lines = out.splitlines()
    start = lines.index("per CPU (total, +delta; 10.0s since the last check, rates per second):")
    assert lines[start + 1:start + 4] == [
        "  cpu1: insert_failed 0, drop 2, early_drop 0",
        "  cpu5: insert_failed 0, drop 0, early_drop 1",
        "  cpu0,2-4,6: every counter 0",
    ]


@pytest.mark.parametrize("cpus, text", [
    ([0], "0"), ([0, 1, 2], "0-2"), ([0, 2, 3, 4, 7], "0,2-4,7"), ([5, 9], "5,9"),
])
def test_cpu_ranges(cpus, text):
    assert ccs.cpu_ranges(cpus) == text


def test_a_threshold_on_a_column_printed_as_zero_is_said(kern, clock, run_main):
    run_main(main, *kern.args("-w", "new_delta=0"))
    clock["t"] += 10
    _, out = run_main(main, *kern.args("-w", "new_delta=0", "-v"))
    assert ("threshold on new_delta not evaluated: this kernel prints new as a constant 0"
            in out.splitlines())
    assert " new_delta=" not in out


def test_verbose_says_insert_failed_includes_resolved_clashes_before_clashres(
        kern, clock, run_main):
    kern.set([{}], "3.10-17col")
    run_main(main, *kern.args())
    clock["t"] += 10
    code, out = run_main(main, *kern.args("-v"))
    assert code == 0
    assert ("insert_failed also counts the clashes this kernel resolved (no clashres "
            "column): no default threshold on it") in out.splitlines()
    assert "insert_failed_rate=0;;;0" in out
