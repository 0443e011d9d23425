"""check_conntrack_tuning against the real kernel of this machine.

Every run holds the lab lock (``Lab``), so no other lab changes the global
max meanwhile. The deliberate mismatches are made at runtime and undone:
the global max through ``Lab(max_entries=...)`` (restored on close), and
timeouts inside a private namespace (deleted on close).
"""

from __future__ import annotations

import re
import subprocess

import pytest
from lab import Lab, need_root_tools, read_max
from unprivileged import as_nobody

NF = "/proc/sys/net/netfilter/"


def live(name: str) -> int:
    with open(f"{NF}nf_conntrack_{name}") as handle:
        return int(handle.read())


def slab_objsize() -> int:
    with open("/proc/slabinfo") as handle:
        for line in handle:
            if line.split()[:1] == ["nf_conntrack"]:
                return int(line.split()[3])
    raise AssertionError("no nf_conntrack row in /proc/slabinfo")


def kernel_5_15_or_later() -> bool:
    with open("/proc/net/stat/nf_conntrack") as handle:
        return "chainlength" in handle.readline().split()


@pytest.fixture
def lab():
    need_root_tools("ip", "nft", "sysctl")
    with Lab() as lab:
        yield lab


def test_live_values_of_this_machine_are_read(lab, run_plugin):
    code, out, err = run_plugin("check_conntrack_tuning", "-v")
    assert err == "" and code in (0, 1, 2), out
    limit, buckets = read_max(), live("buckets")
    # 8-byte bucket heads: this is a 64-bit kernel (16-digit /proc/kallsyms addresses)
    assert f" full_table={limit * slab_objsize() + buckets * 8}B;;;0 " in out
    assert f" max={limit};;;0 " in out
    assert f"max from {NF}nf_conntrack_max" in out
    assert f"buckets from {NF}nf_conntrack_buckets" in out
    assert re.search(rf"\b{slab_objsize()} B per entry from (/sys/kernel/slab/nf_conntrack/"
                     r"slab_size|/proc/slabinfo)", out)
    established = live("tcp_timeout_established")
    if established > 86400:
        assert (f"warning: [timeout-tcp-established] tcp_timeout_established is {established} "
                "s") in out


def test_lowered_max_is_reported_as_not_persistent(run_plugin):
    need_root_tools("ip", "nft")
    with Lab(max_entries=1000):
        buckets = live("buckets")
        code, out, _ = run_plugin("check_conntrack_tuning", "-v")
        assert code == 1, out
        found = re.search(r"^warning: \[persist-max\] nf_conntrack_max 1000 is set at runtime "
                          r"only: the next boot gives (\d+)$", out, re.M)
        assert found, out
        if kernel_5_15_or_later():  # the default max is the default bucket count
            assert int(found.group(1)) == buckets
        assert "  now: sysctl -w net.netfilter.nf_conntrack_max=" in out
        assert "[max-vs-default] nf_conntrack_max 1000 is 0.00 x the kernel's default" in out
        assert out.startswith("CONNTRACK TUNING WARNING - ")
    with Lab():
        _, out, _ = run_plugin("check_conntrack_tuning", "-v")
        assert "nf_conntrack_max 1000" not in out  # restored, and the plugin sees it


def test_timeouts_set_inside_a_namespace(lab, run_plugin):
    name = lab.namespace("tune", flows=5)  # the flow sender sets udp_timeout 600 inside
    subprocess.run(["ip", "netns", "exec", name, "sysctl", "-qw",
                    "net.netfilter.nf_conntrack_tcp_timeout_established=600000"], check=True)
    code, out, _ = run_plugin("check_conntrack_tuning", "--netns", name, "-v")
    assert code == 1, out
    lines = out.splitlines()
    assert (f"warning: [timeout-tcp-established] tcp_timeout_established is 600000 s (6.9 days)"
            f" in netns {name}, above 86400 s") in lines
    assert (f"  now: ip netns exec {name} sysctl -w "
            "net.netfilter.nf_conntrack_tcp_timeout_established=86400") in lines
    assert f"warning: [timeout-udp] udp_timeout is 600 s (10 minutes) in netns {name}, above " \
           "120 s" in lines
    assert "persist-udp" not in out  # a namespace's timeouts do not come from sysctl.d
    _, host, _ = run_plugin("check_conntrack_tuning", "-v")
    assert "600000" not in host and name not in host
    code, every, _ = run_plugin("check_conntrack_tuning", "--all-netns", "-v")
    assert code == 1
    assert f"  evidence: {name}: 600000 s" in every.splitlines()


def test_without_root_the_typical_entry_size_is_used(lab):
    code, out, err = as_nobody("check_conntrack_tuning", "-v")
    assert err == "" and code in (0, 1, 2), out
    assert ("320 B per entry, the typical size (/sys/kernel/slab/nf_conntrack and "
            "/proc/slabinfo are readable by root only)" in out)
    limit, buckets = read_max(), live("buckets")
    assert f" full_table={limit * 320 + buckets * 8}B;;;0 " in out
    code, out, _ = as_nobody("check_conntrack_tuning", "--all-netns")
    assert code == 3 and out.count("\n") == 1
    assert "contrib/sudoers" in out
