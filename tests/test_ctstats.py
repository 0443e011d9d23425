"""Reading the kernel's conntrack counters: every header generation, both sources."""

from __future__ import annotations

import errno
import json
import os
import subprocess
import sys

import pytest
import stats_fixtures as fx
from conntrack_checks.errors import ModuleMissing, ProbeError
from conntrack_checks.kernel import ctnetlink, ctstats
from conntrack_checks.kernel.sysctl import Roots
from kernel_trees import write_tree


def need_root():
    """The real ctnetlink needs CAP_NET_ADMIN; under CI=true it must run."""
    if os.geteuid() != 0:
        if os.environ.get("CI") == "true":
            pytest.fail("CI=true: the real ctnetlink test needs root")
        pytest.skip("ctnetlink needs CAP_NET_ADMIN (root)")


ROWS = [
    {"entries": 7, "searched": 1, "clashres": 4, "drop": 0xFFFFFFFF, "early_drop": 2,
     "insert_failed": 5, "delete_list": 1, "chainlength": 1, "icmp_error": 9,
     "search_restart": 3, "expect_new": 1},
    {"entries": 7, "searched": 2, "clashres": 6, "drop": 10, "early_drop": 0,
     "insert_failed": 1, "delete_list": 2, "chainlength": 2, "icmp_error": 1,
     "search_restart": 0x10, "expect_create": 2},
]


def totals_of(generation: str) -> dict:
    """The sums each generation must give, written out by hand."""
    expected = dict.fromkeys(fx.NAMES[generation], 0)
    expected.update(drop=0xFFFFFFFF + 10, early_drop=2, insert_failed=6, error=10,
                    expect_new=1, expect_create=2)
    if "search_restart" in expected:
        expected["search_restart"] = 0x13
    if "searched" in expected:
        expected["searched"] = 3
    if "clash_resolve" in expected:
        expected["clash_resolve"] = 10
    if "delete_list" in expected:
        expected["delete_list"] = 3
    if "chaintoolong" in expected:
        expected["chaintoolong"] = 3
    return expected


@pytest.mark.parametrize("generation", sorted(fx.HEADERS))
def test_each_header_generation_is_read_by_name(tmp_path, generation):
    proc, sys_root = write_tree(tmp_path, fx.tree(generation, ROWS))
    snap = ctstats.read(Roots(proc, sys_root))
    assert snap.source == "proc"
    assert snap.origin == os.path.join(proc, "net/stat/nf_conntrack")
    assert snap.names == fx.NAMES[generation]
    assert snap.totals() == totals_of(generation)
    assert snap.entries == 7  # once, not 14: it is the count repeated per CPU
    assert [cpu for cpu, _ in snap.cpus] == [0, 1]
    assert snap.cpus[0][1]["drop"] == 0xFFFFFFFF
    assert snap.has_clash_resolve == ("clash_resolve" in fx.NAMES[generation])


def test_ip_conntrack_file_of_old_kernels(tmp_path):
    tree = fx.tree("2.6-16col", ROWS, name="ip_conntrack", module="ip_conntrack")
    proc, sys_root = write_tree(tmp_path, tree)
    snap = ctstats.read(Roots(proc, sys_root))
    assert snap.origin.endswith("net/stat/ip_conntrack")
    assert snap.totals()["drop"] == 0xFFFFFFFF + 10


def test_nf_conntrack_wins_over_the_compat_file(tmp_path):
    tree = fx.tree("3.10-17col", [{"drop": 1}])
    tree["proc"]["net/stat/ip_conntrack"] = fx.stat_file("3.10-17col", [{"drop": 99}])
    proc, sys_root = write_tree(tmp_path, tree)
    assert ctstats.read(Roots(proc, sys_root)).totals()["drop"] == 1


def test_this_kernels_file():
    snap = ctstats.read(Roots())
    assert snap.source == "proc"
    assert snap.names == fx.NAMES["5.15-chainlength"]  # a 6.x kernel
    with open("/sys/devices/system/cpu/possible") as handle:
        spans = handle.read().strip().split(",")
    possible = sum(int(s.split("-")[-1]) - int(s.split("-")[0]) + 1 for s in spans)
    assert len(snap.cpus) == possible


@pytest.mark.parametrize("text, words", [
    ("", "has no 'entries' header"),
    ("entries  found\n", "has a header but no per-CPU rows"),
    ("entries  found drop\n00000001  00000002\n", "row 1 has 2 values for 3 columns"),
    ("entries  found\n00000001  0000zz02\n", "holds '0000zz02' in column found, not a hex"),
    ("entries  found\n00000001  100000000\n", "more than a 32-bit kernel counter"),
    ("entries  fo-und\n00000001  00000002\n", "unreadable header"),
])
def test_a_file_that_is_not_a_stat_file(tmp_path, text, words):
    path = tmp_path / "stat"
    with pytest.raises(ProbeError, match=words):
        ctstats.parse_stat_file(text, str(path))


# --- ctnetlink ---------------------------------------------------------------

NETLINK_ROWS = [
    (0, {"found": 1, "invalid": 2, "insert": 0, "insert_failed": 3, "drop": 4,
         "early_drop": 5, "error": 6, "search_restart": 7, "clash_resolve": 8,
         "chaintoolong": 1}),
    (1, {"found": 0, "invalid": 0, "insert": 0, "insert_failed": 0, "drop": 0xFFFFFFFF,
         "early_drop": 0, "error": 0, "search_restart": 0, "clash_resolve": 0,
         "chaintoolong": 0}),
]


def test_netlink_messages_are_parsed_by_attribute():
    data = b"".join(fx.netlink_message(cpu, values) for cpu, values in NETLINK_ROWS)
    rows, done = ctnetlink.parse_messages(data + fx.netlink_done(), 1)
    assert (rows, done) == (NETLINK_ROWS, True)


def test_netlink_unknown_attributes_and_other_sequences():
    data = fx.netlink_message(3, {"drop": 1}, extra={16: 42})
    data += fx.netlink_message(0, {"drop": 7}, seq=9)  # not our request
    rows, done = ctnetlink.parse_messages(data, 1)
    assert rows == [(3, {"drop": 1, "attr16": 42})] and not done


@pytest.mark.parametrize("code, words", [
    (errno.EPERM, "CAP_NET_ADMIN is missing; run as root or through the sudoers rule"),
    (errno.EINVAL, "ctnetlink is not available: load it with modprobe nf_conntrack_netlink"),
    (errno.EPROTONOSUPPORT, "no netfilter netlink in this kernel"),
])
def test_netlink_errors_say_what_to_do(code, words):
    with pytest.raises(OSError) as raised:
        ctnetlink.parse_messages(fx.netlink_error(code), 1)
    assert raised.value.errno == code
    assert words in str(ctnetlink.explain(raised.value, "in this namespace"))


def test_the_real_netlink_reader_gives_every_possible_cpu():
    need_root()
    rows = ctnetlink.read_stats_cpu()
    proc = ctstats.read(Roots())
    assert [cpu for cpu, _ in rows] == [cpu for cpu, _ in proc.cpus]
    assert set(rows[0][1]) == set(fx.NAMES["5.15-chainlength"]) - {
        "new", "ignore", "delete", "expect_new", "expect_create", "expect_delete"}


# --- choosing the source -----------------------------------------------------

def fake_netlink(monkeypatch, rows=NETLINK_ROWS):
    calls = []

    def read(where="in this namespace", timeout=5.0):
        calls.append(where)
        return rows

    monkeypatch.setattr(ctnetlink, "read_stats_cpu", read)
    return calls


def no_procfs_tree(module=True):
    """A kernel without CONFIG_NF_CONNTRACK_PROCFS: sysctls, no stat file."""
    sys_files = {"module/nf_conntrack/refcnt": 1} if module else {}
    return {"proc": {"sys/net/netfilter/nf_conntrack_count": 12}, "sys": sys_files}


def test_without_procfs_auto_falls_back_to_ctnetlink(fs, monkeypatch):
    calls = fake_netlink(monkeypatch)
    proc, sys_root = write_tree("/", no_procfs_tree())
    snap = ctstats.read(Roots(proc, sys_root), "auto", "in netns web")
    assert calls == ["in netns web"]
    assert (snap.source, snap.origin) == ("netlink", ctstats.NETLINK_ORIGIN)
    assert snap.names == list(NETLINK_ROWS[0][1])
    assert snap.totals()["drop"] == 4 + 0xFFFFFFFF
    assert snap.entries == 12


def test_without_procfs_the_real_netlink_reader_answers(fs):
    need_root()
    proc, sys_root = write_tree("/", no_procfs_tree())
    snap = ctstats.read(Roots(proc, sys_root))
    assert snap.source == "netlink"
    assert "drop" in snap.names and "chaintoolong" in snap.names
    assert len(snap.cpus) >= 1


def test_proc_only_explains_the_kernel_config(fs, monkeypatch):
    calls = fake_netlink(monkeypatch)
    proc, sys_root = write_tree("/", no_procfs_tree())
    with pytest.raises(ProbeError, match=r"nf_conntrack is loaded but /proc/net/stat/"
                                         r"nf_conntrack is missing \(kernel built without "
                                         r"CONFIG_NF_CONNTRACK_PROCFS.*use --source netlink"):
        ctstats.read(Roots(proc, sys_root), "proc")
    assert calls == []


@pytest.mark.parametrize("source", ["auto", "netlink", "proc"])
def test_module_not_loaded_never_asks_netlink(fs, monkeypatch, source):
    calls = fake_netlink(monkeypatch)
    proc, sys_root = write_tree("/", no_procfs_tree(module=False))
    with pytest.raises(ModuleMissing, match="nf_conntrack is not loaded"):
        ctstats.read(Roots(proc, sys_root), source)
    assert calls == []  # ctnetlink would load nf_conntrack


def test_neither_source_gives_both_reasons(fs, monkeypatch):
    def refused(where="", timeout=5.0):
        raise ctnetlink.explain(OSError(errno.EPERM, "Operation not permitted"), where)

    monkeypatch.setattr(ctnetlink, "read_stats_cpu", refused)
    proc, sys_root = write_tree("/", no_procfs_tree())
    with pytest.raises(ProbeError) as raised:
        ctstats.read(Roots(proc, sys_root))
    assert str(raised.value) == (
        "no /proc/net/stat/nf_conntrack (kernel built without CONFIG_NF_CONNTRACK_PROCFS) "
        "and ctnetlink refused the statistics in this namespace: CAP_NET_ADMIN is missing; "
        "run as root or through the sudoers rule in contrib/sudoers")


def test_netlink_source_even_with_the_file(tmp_path, monkeypatch):
    fake_netlink(monkeypatch)
    proc, sys_root = write_tree(tmp_path, fx.tree())
    assert ctstats.read(Roots(proc, sys_root), "netlink").source == "netlink"


def test_the_default_path_imports_no_socket():
    code = ("import sys; from conntrack_checks.checks import check_conntrack_stats; "
            "from conntrack_checks.kernel import ctstats; ctstats.read(ctstats.sysctl.Roots()); "
            "print('socket' in sys.modules, 'conntrack_checks.kernel.ctnetlink' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=True)
    assert done.stdout == "False False\n"


# --- report_section ------------------------------------------------------------

def test_report_section_of_a_fixture(tmp_path):
    proc, sys_root = write_tree(tmp_path, fx.tree("5.15-chainlength", ROWS))
    section = ctstats.report_section(Roots(proc, sys_root))
    assert json.loads(json.dumps(section)) == section
    assert section["source"] == "proc"
    assert section["totals"] == totals_of("5.15-chainlength")
    # drop 4294967305 - (insert_failed 6 - chaintoolong 3)
    assert section["table_full_drops"] == 0xFFFFFFFF + 10 - 3
    assert section["entries"] == 7
    assert section["cpus"][1]["cpu"] == 1 and section["cpus"][1]["search_restart"] == 0x10


def test_report_section_before_5_10_has_no_estimate(tmp_path):
    proc, sys_root = write_tree(tmp_path, fx.tree("3.10-17col", ROWS))
    assert ctstats.report_section(Roots(proc, sys_root))["table_full_drops"] is None


def test_report_section_raises_for_the_report(tmp_path):
    proc, sys_root = write_tree(tmp_path, {"proc": {}, "sys": {}})
    with pytest.raises(ModuleMissing):
        ctstats.report_section(Roots(proc, sys_root))


def test_report_section_of_this_kernel_and_the_plugin_name():
    from conntrack_checks.checks.check_conntrack_stats import report_section

    section = report_section()
    assert section["source"] == "proc"
    assert section["counters"] == fx.NAMES["5.15-chainlength"]


@pytest.mark.parametrize("drop, insert_failed, chaintoolong, full", [
    (685, 0, 0, 685),
    (10, 4, 0, 6),  # 4 clashes dropped a packet each
    (10, 4, 4, 10),  # refused for chain length: no packet dropped
    (3, 9, 0, 0),  # never below 0
])
def test_table_full_estimate(drop, insert_failed, chaintoolong, full):
    assert ctstats.table_full(drop, insert_failed, chaintoolong) == full


@pytest.mark.parametrize("generation, rows, left_out", [
    # 5.15+: new, ignore, delete printed as 0 (ct_cpu_seq_show)
    ("5.15-chainlength", [{"new": 0}], ["new", "ignore", "delete"]),
    # 5.10 to 5.14: and delete_list, until its rename to chainlength
    ("5.10-clashres", [{}], ["new", "ignore", "delete", "delete_list"]),
    # 4.10 to 5.9: searched/new/delete/delete_list printed as 0, same header as 3.x
    ("3.10-17col", [{"ignore": 1}, {}], ["searched", "new", "delete", "delete_list"]),
    # 3.x to 4.9 count them: once one CPU has, they are kept
    ("3.10-17col", [{}, {"searched": 5, "delete_list": 1}], ["new", "delete"]),
    ("2.6-16col", [{}], []),
])
def test_only_the_counters_the_kernel_fills_are_named(tmp_path, generation, rows, left_out):
    proc, sys_root = write_tree(tmp_path, fx.tree(generation, rows))
    snap = ctstats.read(Roots(proc, sys_root))
    assert snap.names == fx.NAMES[generation]
    assert snap.filled == [n for n in fx.NAMES[generation] if n not in left_out]


@pytest.mark.parametrize("drop, insert_failed, chaintoolong, causes", [
    (12, 10, 3, {"table_full": 5, "clash_drop": 7}),
    (10, 10, 0, {"table_full": 0, "clash_drop": 10}),
    (4, 0, 0, {"table_full": 4, "clash_drop": 0}),
    (0, 5, 0, {"table_full": 0, "clash_drop": 0}),
])
def test_drops_split_into_a_full_table_and_clashes(drop, insert_failed, chaintoolong, causes):
    assert ctstats.drop_causes(drop, insert_failed, chaintoolong) == causes
