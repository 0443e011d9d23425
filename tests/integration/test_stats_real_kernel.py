"""check_conntrack_stats against the real kernel: a table filled until it drops.

The global max is lowered to 300 and private namespaces get more UDP flows
than that; the kernel drops the rest and counts them. The installed plugin
must report exactly the change `conntrack -S` shows, from both sources.
"""

from __future__ import annotations

import json
import re

import pytest
from conntrack_checks.kernel import ctstats, netns
from conntrack_checks.kernel.sysctl import Roots
from lab import Lab, need_root_tools, run

PLUGIN = "check_conntrack_stats"
LAB_MAX = 300


@pytest.fixture(scope="module")
def lab():
    need_root_tools("ip", "nft", "conntrack")
    with Lab(max_entries=LAB_MAX) as lab:
        yield lab


def perf(out: str) -> dict[str, str]:
    return dict(item.split("=", 1) for item in out.split(" | ")[1].split())


def delta_of(out: str, label: str) -> int:
    return int(perf(out)[label].split(";")[0])


def conntrack_s(name: str) -> dict[int, dict[str, int]]:
    """`conntrack -S` per CPU inside ``name``."""
    rows = {}
    for line in run("ip", "netns", "exec", name, "conntrack", "-S").stdout.splitlines():
        fields = dict(f.split("=", 1) for f in line.split())
        cpu = int(fields.pop("cpu"))
        rows[cpu] = {k: int(v) for k, v in fields.items()}
    return rows


@pytest.mark.parametrize("source", ["proc", "netlink", "auto"])
def test_drops_are_critical_with_the_kernels_delta(lab, run_plugin, tmp_path, source):
    name = lab.namespace(f"d{source[:2]}")
    argv = ["--netns", name, "--source", source, "--state-dir", str(tmp_path)]
    code, out, err = run_plugin(PLUGIN, *argv)
    assert (code, err) == (0, "")
    assert out.startswith(f"CONNTRACK STATS OK - netns {name}: baseline stored (drop 0, ")

    before = lab.stats(name)
    lab.fill(name, LAB_MAX + 200)
    after = lab.stats(name)
    dropped = after["drop"] - before["drop"]
    assert dropped >= 150  # the table held 300 of 500 flows
    code, out, _ = run_plugin(PLUGIN, *argv)
    assert code == 2, out
    assert delta_of(out, "drop_delta") == dropped
    assert delta_of(out, "early_drop_delta") == after["early_drop"] - before["early_drop"]
    assert re.match(rf"CONNTRACK STATS CRITICAL - netns {name}: {dropped} packets dropped "
                    r"since the last check [\d.]+s ago: table full \(critical above 0\)", out)
    assert perf(out)["drop"] == f"{after['drop']}c;;;0"

    lab.fill(name, 120, start=LAB_MAX + 200)
    again = lab.stats(name)
    code, out, _ = run_plugin(PLUGIN, *argv)
    assert code == 2
    assert delta_of(out, "drop_delta") == again["drop"] - after["drop"] > 0
    assert delta_of(out, "table_full_delta") == again["drop"] - after["drop"]


def test_netlink_reader_equals_conntrack_s_per_cpu(lab):
    name = lab.namespace("nl", flows=LAB_MAX + 40)
    tool = conntrack_s(name)
    with netns.Entering() as entering, entering.inside(netns.named(name)):
        from_netlink = ctstats.read(Roots(), "netlink")
        from_proc = ctstats.read(Roots(), "proc")
    assert {cpu: values for cpu, values in from_netlink.cpus} == tool
    # 40 flows more than the max: each was dropped, or made room by an early drop
    assert sum(v["drop"] + v["early_drop"] for v in tool.values()) >= 40
    shared = set(from_netlink.names)
    assert {k: v for k, v in from_proc.totals().items() if k in shared} == \
        from_netlink.totals()
    assert from_proc.entries == LAB_MAX


def test_all_netns_names_the_namespace_that_dropped(lab, run_plugin, tmp_path):
    quiet = lab.namespace("q", flows=20)
    loud = lab.namespace("l")
    argv = ["--all-netns", "--state-dir", str(tmp_path)]
    code, out, _ = run_plugin(PLUGIN, *argv)
    assert code == 0, out
    assert re.match(r"CONNTRACK STATS OK - \d+ namespaces: baseline stored", out)
    before = lab.stats(loud)
    lab.fill(loud, LAB_MAX + 60)
    dropped = lab.stats(loud)["drop"] - before["drop"]
    code, out, _ = run_plugin(PLUGIN, *argv)
    assert code == 2, out
    first = out.split(" | ")[0]
    assert re.match(r"CONNTRACK STATS CRITICAL - \d+ of \d+ namespaces alert: ", first)
    assert f"{loud}: {dropped} packets dropped since the last check" in first
    assert quiet not in first
    assert delta_of(out, f"drop_delta_{loud}") == dropped
    assert delta_of(out, f"drop_delta_{quiet}") == 0
    assert "drop_delta_host" in perf(out)
    stored = json.loads(next(tmp_path.glob("*.json")).read_text())["data"]["namespaces"]
    assert stored[loud]["inode"] == netns.named(loud).inode
    assert {quiet, loud, "host"} <= set(stored)

    run("ip", "netns", "del", quiet)
    lab.names.remove(quiet)
    code, out, _ = run_plugin(PLUGIN, *argv)
    stored = json.loads(next(tmp_path.glob("*.json")).read_text())["data"]["namespaces"]
    assert quiet not in stored and loud in stored  # gone namespaces leave the state


def test_a_namespace_created_again_counts_from_zero(lab, run_plugin, tmp_path):
    name = lab.namespace("re")
    argv = ["--netns", name, "--state-dir", str(tmp_path)]
    lab.fill(name, LAB_MAX + 30)
    code, out, _ = run_plugin(PLUGIN, *argv)
    assert code == 0 and "baseline stored" in out
    run("ip", "netns", "del", name)
    lab.names.remove(name)
    again = lab.namespace("re")
    assert again == name
    lab.fill(name, LAB_MAX + 10)
    dropped = lab.stats(name)["drop"]
    code, out, _ = run_plugin(PLUGIN, *argv)
    assert code == 2, out
    assert delta_of(out, "drop_delta") == dropped
    assert out.split(" | ")[0].endswith(
        f"netns {name} was created again since the last check: counted from 0")
