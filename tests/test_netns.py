"""kernel/netns.py and the --netns options (nagios/options.py): finding and naming namespaces.

Entering them (setns) needs a real kernel: tests/integration does that.
Here a /proc tree whose ns/net files are hard links stands in for one
namespace seen by several processes (same device and inode, as the kernel
shows it).
"""

from __future__ import annotations

import argparse
import os

import pytest
from conntrack_checks.checks import check_conntrack
from conntrack_checks.errors import ProbeError
from conntrack_checks.kernel import netns
from conntrack_checks.nagios import options


def proc_tree(base, namespaces: dict[str, list[int]]) -> str:
    """/proc with PIDs whose ns/net are hard links of one file per namespace."""
    proc = base / "proc"
    for name, pids in namespaces.items():
        (base / "ns").mkdir(exist_ok=True)
        target = base / "ns" / name
        target.write_text("")
        for pid in pids:
            (proc / str(pid) / "ns").mkdir(parents=True)
            os.link(target, proc / str(pid) / "ns" / "net")
    (proc / "net").mkdir(parents=True, exist_ok=True)  # not a PID
    return str(proc)


def test_discover_lists_each_namespace_once_host_first(tmp_path):
    proc = proc_tree(tmp_path, {"host": [1, 7, 8, 9], "other": [300, 301]})
    found = netns.discover(proc, str(tmp_path / "no-run-dir"))
    other = os.stat(tmp_path / "ns" / "other").st_ino
    assert [(ns.name, ns.pids, ns.host, ns.is_host) for ns in found] == [
        ("host", [1, 7, 8], True, True), (f"ns{other}", [300, 301], False, False)]
    assert found[1].path == f"{proc}/300/ns/net" and found[1].inode == other


def test_discover_names_a_namespace_as_ip_netns_does(tmp_path):
    proc = proc_tree(tmp_path, {"host": [1], "web": [42]})
    run = tmp_path / "run-netns"
    run.mkdir()
    os.link(tmp_path / "ns" / "web", run / "web")
    found = netns.discover(proc, str(run))
    assert [(ns.name, ns.path, ns.pids) for ns in found] == [
        ("host", f"{proc}/1/ns/net", [1]), ("web", str(run / "web"), [42])]


def test_without_pid_1_our_own_namespace_is_the_host(tmp_path):
    proc = proc_tree(tmp_path, {"ours": [55]})
    os.symlink("55", os.path.join(proc, "self"))
    found = netns.discover(proc, str(tmp_path / "none"))
    assert [(ns.name, ns.host) for ns in found] == [("host", True)]


def test_the_current_namespace_is_named_this_namespace_everywhere():
    here = netns.Namespace.current()
    assert (here.name, here.path, here.is_host) == ("this namespace", None, True)
    assert (here.describe(), here.prefix(True), here.label) == (
        "this namespace", "", "this_namespace")
    web = netns.Namespace("web", "/run/netns/web")
    assert (web.describe(), web.prefix(False), web.prefix(True)) == (
        "netns web", "netns web: ", "web: ")


def options_of(**given) -> argparse.Namespace:
    values = dict(all_netns=False, netns=None, netns_path=None, netns_dir="/run/netns",
                  proc_root="/proc", sys_root="/sys")
    values.update(given)
    return argparse.Namespace(**values)


def test_without_netns_options_the_plugins_read_the_current_namespace():
    (ns,), every = options.namespaces(options_of())
    assert (ns.name, ns.path, every) == ("this namespace", None, False)


def test_netns_options_give_the_namespaces_they_name(tmp_path):
    proc = proc_tree(tmp_path, {"host": [1], "web": [42]})
    (tmp_path / "run").mkdir()
    os.link(tmp_path / "ns" / "web", tmp_path / "run" / "web")
    by_name, every = options.namespaces(options_of(netns="web", netns_dir=str(tmp_path / "run")))
    assert ([ns.path for ns in by_name], every) == ([str(tmp_path / "run" / "web")], False)
    by_path, _ = options.namespaces(options_of(netns_path=f"{proc}/42/ns/net"))
    assert [ns.name for ns in by_path] == [f"{proc}/42/ns/net"]
    found, every = options.namespaces(options_of(all_netns=True, proc_root=proc + "/",
                                                 netns_dir=str(tmp_path / "none")))
    assert ([ns.name for ns in found], every) == (["host", f"ns{by_path[0].inode}"], True)
    assert found[0].path == f"{proc}/1/ns/net"  # under the normalised --proc-root


def test_a_missing_namespace_file_says_so():
    with pytest.raises(ProbeError, match=r"^no namespace file /nonexistent/ns$"):
        netns.from_path("/nonexistent/ns")


def test_netns_name_that_does_not_exist(run_main, fs):
    fs.create_dir("/run/netns")
    fs.create_dir("/proc")
    fs.create_dir("/sys")
    code, out = run_main(check_conntrack.main, "--netns", "nope")
    assert (code, out) == (3, "CONNTRACK UNKNOWN - no network namespace named 'nope' "
                              "(`ip netns list` shows the names)\n")


def test_netns_name_with_a_slash_is_refused(run_main):
    code, out = run_main(check_conntrack.main, "--netns", "../etc")
    assert (code, out) == (3, "CONNTRACK UNKNOWN - --netns '../etc' is not an ip netns name\n")
