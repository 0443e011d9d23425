"""check_conntrack and check_conntrack_hash against the real kernel.

Private namespaces are filled with real UDP flows after the global max is
lowered to 1000; the plugins run as executables and their counts are
compared with conntrack-tools. The max is restored and the namespaces are
deleted whatever happens.
"""

from __future__ import annotations

import re
import subprocess

import pytest
from lab import Lab, need_root_tools

LAB_MAX = 1000


@pytest.fixture(scope="module")
def lab():
    need_root_tools("ip", "nft", "conntrack")
    with Lab(max_entries=LAB_MAX) as lab:
        lab.ok = lab.namespace("ok", flows=500)
        lab.warn = lab.namespace("warn", flows=850)
        lab.crit = lab.namespace("crit", flows=950)
        yield lab


def entries(out: str) -> tuple[int, int]:
    found = re.search(r"(\d+) of (\d+) entries", out)
    return int(found.group(1)), int(found.group(2))


@pytest.mark.parametrize("which, code, state", [
    ("ok", 0, "OK"), ("warn", 1, "WARNING"), ("crit", 2, "CRITICAL"),
])
def test_state_follows_the_real_count(lab, run_plugin, which, code, state):
    name = getattr(lab, which)
    got, out, err = run_plugin("check_conntrack", "--netns", name)
    assert (got, err) == (code, ""), out
    assert out.startswith(f"CONNTRACK {state} - netns {name}: ")
    assert entries(out) == (lab.count(name), LAB_MAX)
    assert f"count={lab.count(name)};800;900;0;1000" in out


def test_counts_are_exact(lab):
    assert [lab.count(n) for n in (lab.ok, lab.warn, lab.crit)] == [500, 850, 950]


def test_all_netns_finds_the_full_namespace_while_the_host_is_ok(lab, run_plugin):
    host_code, host_out, _ = run_plugin("check_conntrack")
    assert host_code == 0, host_out  # the host's own table is nearly empty
    code, out, _ = run_plugin("check_conntrack", "--all-netns")
    assert code == 2
    first = out.split(" | ")[0]
    assert re.match(r"CONNTRACK CRITICAL - 2 of \d+ namespaces over threshold: ", first)
    assert first.index(lab.crit) < first.index(lab.warn)  # worst first
    assert f"{lab.crit}: 950 of 1000 entries (95.0%, critical above 90%)" in first
    perf = out.split(" | ")[1]
    for name, count in ((lab.ok, 500), (lab.warn, 850), (lab.crit, 950)):
        assert f"count_{name}={count};800;900;0;1000" in perf
    assert re.search(r"\busage_host=[\d.]+%;80;90;0;100", perf)


def test_netns_path_of_a_process(lab, run_plugin):
    sleeper = subprocess.Popen(["ip", "netns", "exec", lab.warn, "sleep", "60"])
    try:
        # ip netns exec replaces itself with sleep: same pid, the namespace's file.
        path = f"/proc/{sleeper.pid}/ns/net"
        for _ in range(100):
            if subprocess.run(["ip", "netns", "identify", str(sleeper.pid)],
                              capture_output=True, text=True).stdout.strip() == lab.warn:
                break
        code, out, _ = run_plugin("check_conntrack", "--netns-path", path)
    finally:
        sleeper.kill()
        sleeper.wait()
    assert code == 1
    assert out.startswith(f"CONNTRACK WARNING - netns {path}: 850 of 1000 entries")


def test_full_table_is_critical_at_100_percent(lab, run_plugin):
    name = lab.namespace("full")
    report = lab.fill(name, 1200)
    assert "refused" in report
    code, out, _ = run_plugin("check_conntrack", "--netns", name)
    assert code == 2
    assert entries(out) == (lab.count(name), 1000)
    assert lab.count(name) >= 990  # at the limit: new flows dropped or evicted
    assert lab.stats(name)["drop"] > 0


def test_hash_reports_the_real_buckets(lab, run_plugin):
    with open("/proc/sys/net/netfilter/nf_conntrack_buckets") as handle:
        buckets = int(handle.read())
    with open("/sys/module/nf_conntrack/parameters/hashsize") as handle:
        assert int(handle.read()) == buckets
    code, out, _ = run_plugin("check_conntrack_hash", "--netns", lab.crit)
    assert code == 0, out
    assert out.startswith(f"CONNTRACK HASH OK - {buckets} buckets for max 1000: ")
    assert f"now (950 entries in netns {lab.crit})" in out
    assert f"buckets={buckets};;;0 count=950;;;0" in out


def test_hash_all_netns_sums_every_namespace(lab, run_plugin):
    _, out, _ = run_plugin("check_conntrack_hash", "--all-netns")
    total = int(re.search(r"\((\d+) entries in \d+ namespaces\)", out).group(1))
    assert total >= 500 + 850 + 950


def test_all_netns_verbose_lists_every_namespace(lab, run_plugin):
    code, out, _ = run_plugin("check_conntrack", "--all-netns", "-v")
    assert code == 2
    assert re.search(rf"^{lab.crit} \(net:\[\d+\]\): 950 of 1000 entries \(95\.0%\)$", out,
                     re.M)
    assert re.search(r"^host \(net:\[\d+\], pids [\d,]+\): \d+ of 1000 entries", out, re.M)
    assert out.splitlines()[-1].startswith("| count_")
