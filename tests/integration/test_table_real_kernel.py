"""check_conntrack_table against the real kernel: a skewed load, matched with `conntrack -L`.

A private namespace gets 1000 UDP flows, 70% of them to 127.0.0.2 port 5353
and the rest spread over other destinations and ports, plus 20 closed TCP
connections (TIME_WAIT, ASSURED) and 5 IPv6 UDP flows. The plugin runs as an
executable from both sources (the proc file and `conntrack -L`); its counts
must equal what an independent, slow parse of `conntrack -L` gives.
"""

from __future__ import annotations

import re
import sys
from collections import Counter
from pathlib import Path

import pytest
from conntrack_checks.checks import check_conntrack_table
from conntrack_checks.kernel.netns import named
from conntrack_checks.kernel.sysctl import Roots
from lab import Lab, need_root_tools, run

SENDER = str(Path(__file__).with_name("table_flows.py"))
LAB_MAX = 2000
HOT = 700


@pytest.fixture(scope="module")
def lab():
    need_root_tools("ip", "nft", "conntrack")
    with Lab(max_entries=LAB_MAX) as lab:
        lab.skewed = lab.namespace("skew")
        report = run("ip", "netns", "exec", lab.skewed, sys.executable, SENDER,
                     "1000", "70", "20", "5").stdout
        assert report.strip() == "sent 1000 refused 0 hot 700 tcp 20 udp6 5"
        yield lab


def listing(name: str) -> dict:
    """`conntrack -L` of the namespace, counted the slow, obvious way."""
    out = run("ip", "netns", "exec", name, "conntrack", "-L").stdout
    expect = {"protocol": Counter(), "state": Counter(), "flag": Counter(), "dst": Counter(),
              "dport": Counter(), "entries": 0}
    for line in out.splitlines():
        fields = line.split()
        proto = fields[0]
        pairs = [f.split("=", 1) for f in fields if "=" in f]
        orig = dict(pairs[:4] if proto in ("tcp", "udp") else pairs[:2])
        srcs = [i for i, (k, _) in enumerate(pairs) if k == "src"]
        reply = dict(pairs[srcs[1]:srcs[1] + len(orig)])
        expect["entries"] += 1
        expect["protocol"][proto] += 1
        if fields[3].isupper():
            expect["state"][f"{proto}:{fields[3].lower()}"] += 1
        expect["flag"]["assured"] += "[ASSURED]" in fields
        expect["flag"]["unreplied"] += "[UNREPLIED]" in fields
        swapped = {"src": orig["dst"], "dst": orig["src"]}
        if "sport" in orig:
            swapped.update(sport=orig["dport"], dport=orig["sport"])
        expect["flag"]["nated"] += reply != swapped
        expect["dst"][orig["dst"]] += 1
        expect["dport"][f"{proto}/{orig.get('dport')}"] += 1
    return expect


def perf(out: str) -> dict[str, str]:
    return dict(item.split("=", 1) for item in out.rsplit("| ", 1)[1].split())


def test_the_load_is_as_built(lab):
    expect = listing(lab.skewed)
    assert expect["entries"] == 1025 == lab.count(lab.skewed)
    assert expect["dst"].most_common(1) == [("127.0.0.2", HOT)]
    assert expect["dport"].most_common(1) == [("udp/5353", HOT)]
    assert expect["state"] == {"tcp:time_wait": 20}


@pytest.mark.parametrize("source", ["proc", "netlink"])
def test_counts_match_conntrack_L_exactly(lab, run_plugin, source):
    expect = listing(lab.skewed)
    code, out, err = run_plugin("check_conntrack_table", "--netns", lab.skewed,
                                "--source", source, "-v")
    assert (code, err) == (0, "")
    head = out.splitlines()[0]
    assert head == (
        f"CONNTRACK TABLE OK - netns {lab.skewed}: 1025 entries (51.2% of max {LAB_MAX}); "
        f"top destination 127.0.0.2 holds {HOT} (35.0% of max), then 127.0.1.1 (300), "
        "127.0.0.3 (20); tcp 20 (time_wait 20), udp 1005; assured 20, unreplied 1005, "
        "nated 0")
    values = perf(out)
    assert values["total"] == f"{expect['entries']};;;0"
    assert values["udp"] == f"{expect['protocol']['udp']};;;0"
    assert values["tcp"] == f"{expect['protocol']['tcp']};;;0"
    assert values["time_wait"] == f"{expect['state']['tcp:time_wait']};;;0"
    for flag in ("assured", "unreplied", "nated"):
        assert values[flag] == f"{expect['flag'][flag]};;;0"
    assert values["top_share"] == "35%;40;60;0;100"
    where = "/proc/net/nf_conntrack" if source == "proc" else "/usr/sbin/conntrack -L (ctnetlink)"
    assert f"\n{where} inside netns {lab.skewed}: 1025 entries (" in out
    assert "\nfamilies: ipv4 1020, ipv6 5\n" in out
    assert f"\n   1       {HOT}      68.3    35.0  127.0.0.2\n" in out


def test_top_destination_port_and_threshold(lab, run_plugin):
    code, out, _ = run_plugin("check_conntrack_table", "--netns", lab.skewed,
                              "--top-by", "dport", "-w", "30", "-c", "50")
    assert code == 1
    assert out.startswith(
        f"CONNTRACK TABLE WARNING - netns {lab.skewed}: 1025 entries (51.2% of max {LAB_MAX}); "
        f"top destination port udp/5353 holds {HOT} (35.0% of max, warning above 30%), "
        "then tcp/8080 (20), udp/53 (5); ")


def test_share_of_entries_and_state_threshold(lab, run_plugin):
    code, out, _ = run_plugin("check_conntrack_table", "--netns", lab.skewed,
                              "--share-of", "entries", "-c", "60",
                              "--warning-state", "time_wait=10")
    assert code == 2
    first = out.split(" | ")[0]
    assert f"top destination 127.0.0.2 holds {HOT} (68.3% of entries, critical above 60%)" \
        in first
    assert first.endswith("; time_wait 20 (warning above 10)")
    assert "time_wait=20;10;;0" in out


def test_all_netns_names_the_skewed_namespace(lab, run_plugin):
    code, out, _ = run_plugin("check_conntrack_table", "--all-netns", "-w", "30")
    assert code == 1
    assert re.match(rf"CONNTRACK TABLE WARNING - \d+ namespaces, \d+ entries; worst netns "
                    rf"{lab.skewed}: 1025 entries \(51\.2% of max {LAB_MAX}\); top destination "
                    rf"127\.0\.0\.2 holds {HOT} \(35\.0% of max, warning above 30%\)", out)


def test_report_section_on_the_real_table(lab):
    data = check_conntrack_table.report_section(Roots(), top=2, namespace=named(lab.skewed))
    assert data["source"] == "/proc/net/nf_conntrack"
    assert data["entries"] == 1025
    assert data["top"]["dst"][0] == {"key": "127.0.0.2", "entries": HOT,
                                     "share_of_entries": 68.293, "share_of_max": 35.0}
    assert data["top"]["dport"][0]["key"] == "udp/5353"
    assert data["states"] == {"tcp:time_wait": 20}
    netlink = check_conntrack_table.report_section(Roots(), top=2, source="netlink",
                                                   namespace=named(lab.skewed))
    assert netlink["source"] == "/usr/sbin/conntrack -L (ctnetlink)"
    for key in ("entries", "protocols", "states", "flags", "counts", "top", "families"):
        assert netlink[key] == data[key], key
