"""check_conntrack_table: parser fixtures in, exact counts out; plugin runs on fixture trees."""

from __future__ import annotations

import json
import os
import random
import threading
import time

import pytest
from conntrack_checks.checks import check_conntrack_table
from conntrack_checks.errors import ProbeError
from conntrack_checks.kernel import ctdump, dump
from conntrack_checks.kernel.sysctl import Roots
from kernel_trees import nf_tree, write_tree
from unprivileged import as_nobody

PROC_TCP = ("ipv4     2 tcp      6 431999 ESTABLISHED src=10.0.0.1 dst=10.0.0.2 sport=40000 "
            "dport=443 packets=5 bytes=300 src=10.0.0.2 dst=10.0.0.1 sport=443 dport=40000 "
            "packets=4 bytes=2000 [ASSURED] mark=0 zone=0 use=2")
CT_SYN = ("tcp      6 117 SYN_SENT src=10.0.0.1 dst=10.0.0.9 sport=40001 dport=22 [UNREPLIED] "
          "src=10.0.0.9 dst=10.0.0.1 sport=22 dport=40001 mark=0 use=1")
PROC_SNAT = ("ipv4     2 udp      17 29 src=192.168.1.10 dst=8.8.8.8 sport=5353 dport=53 "
             "src=8.8.8.8 dst=203.0.113.5 sport=53 dport=5353 mark=0 zone=0 use=2")
CT_DNAT_PORT = ("tcp      6 86399 ESTABLISHED src=198.51.100.7 dst=203.0.113.5 sport=50000 "
                "dport=80 src=10.0.0.5 dst=198.51.100.7 sport=8080 dport=50000 [ASSURED] "
                "mark=0 use=1")
PROC_ICMP = ("ipv4     2 icmp     1 29 src=10.0.0.1 dst=10.0.0.2 type=8 code=0 id=1234 "
             "src=10.0.0.2 dst=10.0.0.1 type=0 code=0 id=1234 mark=0 zone=0 use=2")
PROC_ICMP_NAT_ID = ("ipv4     2 icmp     1 29 src=10.0.0.1 dst=10.0.0.2 type=8 code=0 id=1234 "
                    "src=10.0.0.2 dst=10.0.0.1 type=0 code=0 id=999 mark=0 zone=0 use=2")
V6A = "2001:0db8:0000:0000:0000:0000:0000:0001"
V6B = "2001:0db8:0000:0000:0000:0000:0000:0002"
PROC_ICMPV6 = (f"ipv6     10 icmpv6   58 29 src={V6A} dst={V6B} type=128 code=0 id=77 "
               f"src={V6B} dst={V6A} type=129 code=0 id=77 mark=0 zone=0 use=2")
PROC_GRE = ("ipv4     2 gre      47 179 src=10.0.0.1 dst=10.0.0.2 srckey=0x0 dstkey=0x0 "
            "src=10.0.0.2 dst=10.0.0.1 srckey=0x0 dstkey=0x0 [ASSURED] mark=0 zone=0 use=2")
PROC_SCTP = ("ipv4     2 sctp     132 431999 ESTABLISHED src=10.0.0.1 dst=10.0.0.2 sport=5000 "
             "dport=5001 src=10.0.0.2 dst=10.0.0.1 sport=5001 dport=5000 [ASSURED] mark=0 "
             "zone=0 use=2")
PROC_UNKNOWN = ("ipv4     2 unknown  253 599 src=10.0.0.1 dst=10.0.0.2 [UNREPLIED] "
                "src=10.0.0.2 dst=10.0.0.1 mark=0 zone=0 use=2")
CT_UDP6 = ("udp      17 29 src=2001:db8::1 dst=2001:db8::2 sport=1000 dport=53 [UNREPLIED] "
           "src=2001:db8::2 dst=2001:db8::1 sport=53 dport=1000 mark=0 use=1")
PROC_ZONE_MARK = ("ipv4     2 udp      17 29 src=10.0.0.1 dst=10.0.0.2 sport=1 dport=2 "
                  "[UNREPLIED] src=10.0.0.2 dst=10.0.0.1 sport=2 dport=1 mark=42 "
                  "secctx=system_u:object_r:unlabeled_t:s0 zone=7 use=2")
CT_ZONE_MARK = ("udp      17 29 src=10.0.0.1 dst=10.0.0.3 sport=1 dport=2 [UNREPLIED] "
                "src=10.0.0.3 dst=10.0.0.1 sport=2 dport=1 mark=42 zone=7 use=1")
PROC_OFFLOAD = ("ipv4     2 tcp      6 ESTABLISHED src=10.0.0.1 dst=10.0.0.2 sport=1 dport=2 "
                "src=10.0.0.2 dst=10.0.0.1 sport=2 dport=1 [ASSURED] [OFFLOAD] mark=0 "
                "zone=0 use=3")
OLD_IP_CONNTRACK = ("tcp      6 431999 ESTABLISHED src=10.0.0.1 dst=10.0.0.2 sport=22 "
                    "dport=50000 packets=10 bytes=1000 src=10.0.0.2 dst=10.0.0.1 sport=50000 "
                    "dport=22 packets=10 bytes=2000 [ASSURED] mark=0 secmark=0 use=1")
CT_DCCP = ("dccp     33 7199 OPEN src=10.0.0.1 dst=10.0.0.2 sport=1 dport=5004 "
           "src=10.0.0.2 dst=10.0.0.1 sport=5004 dport=1 [ASSURED] mark=0 use=1")
PROC_TIME_WAIT = ("ipv4     2 tcp      6 117 TIME_WAIT src=10.0.0.1 dst=10.0.0.2 sport=3 "
                  "dport=443 src=10.0.0.2 dst=10.0.0.1 sport=443 dport=3 [ASSURED] mark=0 "
                  "zone=0 use=2")
GARBAGE = "hello world"
TRUNCATED = "ipv4     2 tcp      6 431999 ESTABLISHED src=10.0.0.1 dst="


def tally_of(text: str | bytes, keys=("dst",)) -> ctdump.DumpCounts:
    """``text`` counted as the plugin counts a dump: read from a pipe."""
    data = text.encode() if isinstance(text, str) else text
    read_end, write_end = os.pipe()
    writer = threading.Thread(target=lambda: (os.write(write_end, data), os.close(write_end)),
                              daemon=True)
    writer.start()
    tally = ctdump.DumpCounts(keys)
    try:
        ctdump.read_stream(read_end, tally)
    finally:
        writer.join()
        os.close(read_end)
    return tally


def summary(tally: ctdump.DumpCounts) -> dict:
    totals = tally.totals()
    return {
        "entries": tally.entries,
        "garbage": tally.garbage,
        "family": dict(totals["family"]),
        "protocol": dict(totals["protocol"]),
        "state": dict(totals["state"]),
        "flag": {k: v for k, v in totals["flag"].items() if v},
    }


PARSER_CASES = [
    # id, lines, expected summary (empty counts left out)
    ("proc-tcp-established-acct", [PROC_TCP],
     {"entries": 1, "garbage": 0, "family": {"ipv4": 1}, "protocol": {"tcp": 1},
      "state": {"tcp:established": 1}, "flag": {"assured": 1}}),
    ("conntrack-L-syn-sent-unreplied", [CT_SYN],
     {"entries": 1, "garbage": 0, "family": {"ipv4": 1}, "protocol": {"tcp": 1},
      "state": {"tcp:syn_sent": 1}, "flag": {"unreplied": 1}}),
    ("snat-reply-address-differs", [PROC_SNAT],
     {"entries": 1, "garbage": 0, "family": {"ipv4": 1}, "protocol": {"udp": 1},
      "state": {}, "flag": {"nated": 1}}),
    ("dnat-reply-port-differs", [CT_DNAT_PORT],
     {"entries": 1, "garbage": 0, "family": {"ipv4": 1}, "protocol": {"tcp": 1},
      "state": {"tcp:established": 1}, "flag": {"assured": 1, "nated": 1}}),
    ("icmp-plain", [PROC_ICMP],
     {"entries": 1, "garbage": 0, "family": {"ipv4": 1}, "protocol": {"icmp": 1},
      "state": {}, "flag": {}}),
    ("icmp-id-rewritten-is-nat", [PROC_ICMP_NAT_ID],
     {"entries": 1, "garbage": 0, "family": {"ipv4": 1}, "protocol": {"icmp": 1},
      "state": {}, "flag": {"nated": 1}}),
    ("icmpv6-full-form-addresses", [PROC_ICMPV6],
     {"entries": 1, "garbage": 0, "family": {"ipv6": 1}, "protocol": {"icmpv6": 1},
      "state": {}, "flag": {}}),
    ("gre-keys", [PROC_GRE],
     {"entries": 1, "garbage": 0, "family": {"ipv4": 1}, "protocol": {"gre": 1},
      "state": {}, "flag": {"assured": 1}}),
    ("sctp-state", [PROC_SCTP],
     {"entries": 1, "garbage": 0, "family": {"ipv4": 1}, "protocol": {"sctp": 1},
      "state": {"sctp:established": 1}, "flag": {"assured": 1}}),
    ("unknown-protocol-253", [PROC_UNKNOWN],
     {"entries": 1, "garbage": 0, "family": {"ipv4": 1}, "protocol": {"proto-253": 1},
      "state": {}, "flag": {"unreplied": 1}}),
    ("conntrack-L-udp-ipv6", [CT_UDP6],
     {"entries": 1, "garbage": 0, "family": {"ipv6": 1}, "protocol": {"udp": 1},
      "state": {}, "flag": {"unreplied": 1}}),
    ("offloaded-without-timeout", [PROC_OFFLOAD],
     {"entries": 1, "garbage": 0, "family": {"ipv4": 1}, "protocol": {"tcp": 1},
      "state": {"tcp:established": 1}, "flag": {"assured": 1}}),
    ("old-ip-conntrack-2.6.18", [OLD_IP_CONNTRACK],
     {"entries": 1, "garbage": 0, "family": {"ipv4": 1}, "protocol": {"tcp": 1},
      "state": {"tcp:established": 1}, "flag": {"assured": 1}}),
    ("dccp-state", [CT_DCCP],
     {"entries": 1, "garbage": 0, "family": {"ipv4": 1}, "protocol": {"dccp": 1},
      "state": {"dccp:open": 1}, "flag": {"assured": 1}}),
    ("garbage-and-truncated-lines-are-not-counted", [PROC_TCP, GARBAGE, TRUNCATED, CT_SYN],
     {"entries": 2, "garbage": 2, "family": {"ipv4": 2}, "protocol": {"tcp": 2},
      "state": {"tcp:established": 1, "tcp:syn_sent": 1},
      "flag": {"assured": 1, "unreplied": 1}}),
    ("empty-table", [],
     {"entries": 0, "garbage": 0, "family": {}, "protocol": {}, "state": {}, "flag": {}}),
]


@pytest.mark.parametrize("case, lines, expected", PARSER_CASES, ids=[c[0] for c in PARSER_CASES])
def test_parser_counts(case, lines, expected):
    text = "".join(line + "\n" for line in lines)
    assert summary(tally_of(text)) == expected


def test_last_line_without_newline_counts():
    tally = tally_of(PROC_TCP + "\n" + CT_SYN)
    assert (tally.entries, tally.lines) == (2, 2)


def test_first_line_not_understood_is_kept_for_the_message():
    tally = tally_of(f"{PROC_TCP}\n{GARBAGE}\n{TRUNCATED}\n")
    assert tally.sample == GARBAGE.encode()


KEY_LINES = [PROC_TCP, CT_SYN, PROC_SNAT, PROC_ICMPV6, CT_UDP6, PROC_ZONE_MARK, CT_ZONE_MARK,
             PROC_UNKNOWN, PROC_TIME_WAIT]
KEY_CASES = [
    ("src", [("10.0.0.1", 6), ("192.168.1.10", 1), ("2001:db8::1", 1)]),
    ("dst", [("10.0.0.2", 4), ("10.0.0.9", 1), ("8.8.8.8", 1)]),
    ("dport", [("tcp/443", 2), ("udp/53", 2), ("udp/2", 2)]),
    ("src-dst-dport", [("10.0.0.1 -> 10.0.0.2 tcp/443", 2),
                       ("10.0.0.1 -> 10.0.0.9 tcp/22", 1),
                       ("192.168.1.10 -> 8.8.8.8 udp/53", 1)]),
    ("zone", [("0", 7), ("7", 2)]),
    ("mark", [("0", 7), ("42", 2)]),
]


@pytest.mark.parametrize("key, expected", KEY_CASES, ids=[c[0] for c in KEY_CASES])
def test_top_groups_by_each_key(key, expected):
    tally = tally_of("".join(line + "\n" for line in KEY_LINES), keys=(key,))
    top = tally.groups[key].top(3)
    # ties are ordered by first appearance (Counter.most_common is stable)
    assert top == expected
    assert tally.entries == len(KEY_LINES)


@pytest.mark.parametrize("line, key, shown", [
    (PROC_ICMPV6, "dst", "2001:db8::2"),
    (PROC_ICMPV6, "src-dst-dport", "2001:db8::1 -> 2001:db8::2 icmpv6 (no ports)"),
    (CT_UDP6, "src", "2001:db8::1"),
    (CT_UDP6, "src-dst-dport", "2001:db8::1 -> 2001:db8::2 udp/53"),
])
def test_ipv6_addresses_are_shown_short_in_both_formats(line, key, shown):
    tally = tally_of(line + "\n", keys=(key,))
    assert tally.groups[key].top(2) == [(shown, 1)]


def big_text(n: int) -> bytes:
    lines = []
    for i in range(n):
        if i % 10 < 7:
            lines.append(f"ipv4     2 udp      17 599 src=10.0.{i // 250 % 250}.{i % 250} "
                         f"dst=10.9.9.9 sport={1024 + i % 60000} dport=53 [UNREPLIED] "
                         f"src=10.9.9.9 dst=10.0.{i // 250 % 250}.{i % 250} sport=53 "
                         f"dport={1024 + i % 60000} mark=0 zone=0 use=2")
        else:
            lines.append(f"tcp      6 431999 ESTABLISHED src=10.1.0.1 dst=10.2.{i % 200}.1 "
                         f"sport={2000 + i % 50000} dport=443 src=10.2.{i % 200}.1 "
                         f"dst=172.16.0.1 sport=443 dport={2000 + i % 50000} [ASSURED] "
                         f"mark=0 use=1")
    return "".join(line + "\n" for line in lines).encode()


def test_chunk_boundaries_anywhere_give_the_same_counts(monkeypatch):
    data = big_text(3000)
    whole = tally_of(data, ("dst", "src"))
    rng = random.Random(5)
    for _ in range(8):  # buffers of odd sizes put the boundaries anywhere in a line
        monkeypatch.setattr(ctdump, "CHUNK", rng.randint(256, 1500))
        pieces = tally_of(data, ("dst", "src"))
        assert summary(pieces) == summary(whole)
        assert pieces.groups["dst"].top(10) == whole.groups["dst"].top(10)
    assert summary(whole)["entries"] == 3000
    assert summary(whole)["flag"] == {"unreplied": 2100, "assured": 900, "nated": 900}
    assert whole.groups["dst"].top(1) == [("10.9.9.9", 2100)]


@pytest.mark.parametrize("cat, piped", [(None, True), (("/nonexistent/cat",), False)])
def test_a_big_table_goes_through_cat_only_where_there_is_one(tmp_path, monkeypatch, cat,
                                                              piped):
    if cat is not None:
        monkeypatch.setattr(ctdump, "CAT", cat)
    (tmp_path / "net").mkdir()
    (tmp_path / "net" / "nf_conntrack").write_bytes(big_text(300))
    tally = ctdump.DumpCounts()
    assert ctdump.dump_proc(Roots(str(tmp_path), "/sys"), tally, expected=ctdump.PIPE_FROM)
    assert (tally.entries, tally.piped) == (300, piped)


@pytest.mark.parametrize("chunk", [256, 300, 4096, 1 << 20])
def test_reading_a_pipe_in_small_buffers_loses_no_line(monkeypatch, chunk):
    monkeypatch.setattr(ctdump, "CHUNK", chunk)
    data = big_text(2000) + b"tcp 6 1 ESTABLISHED src=truncated-last-line-without-newline"
    read_end, write_end = os.pipe()
    writer = threading.Thread(target=lambda: (os.write(write_end, data), os.close(write_end)),
                              daemon=True)
    writer.start()
    tally = ctdump.DumpCounts(("dst",))
    ctdump.read_stream(read_end, tally)
    writer.join()
    os.close(read_end)
    assert (tally.entries, tally.lines, tally.garbage) == (2000, 2001, 1)
    assert tally.groups["dst"].top(1) == [("10.9.9.9", 1400)]
    assert dict(tally.totals()["flag"]) == {"assured": 600, "unreplied": 1400, "nated": 600}


def test_a_line_longer_than_the_buffer_is_an_error(monkeypatch):
    monkeypatch.setattr(ctdump, "CHUNK", 64)
    read_end, write_end = os.pipe()
    os.write(write_end, PROC_TCP.encode() + b"\n")
    os.close(write_end)
    with pytest.raises(ProbeError, match="a line of more than 64 bytes"):
        ctdump.read_stream(read_end, ctdump.DumpCounts())
    os.close(read_end)


def test_groups_keep_memory_bounded_and_heavy_hitters_exact_enough():
    groups = ctdump.Groups("dst", limit=100)
    rows = []
    for i in range(5000):
        dst = b"10.9.9.9" if i % 2 == 0 else f"10.0.{i // 256}.{i % 256}".encode()
        rows.append((b"udp", b"17", b"", b"", b"10.0.0.1", dst, b"1", b"2", b"", b"", b"src"))
    for start in range(0, len(rows), 250):
        groups.update(rows[start:start + 250])
        assert len(groups.counts) <= 100 + 250
    (top, count), = groups.top(1)
    assert top == "10.9.9.9"
    assert 2500 - groups.error <= count <= 2500
    assert groups.error > 0


# ---------------------------------------------------------------- the plugin

def table_tree(lines, count=None, limit=1000, proc_file="net/nf_conntrack"):
    tree = nf_tree(len(lines) if count is None else count, limit, limit)
    if proc_file:
        tree["proc"][proc_file] = "".join(line + "\n" for line in lines)
    return tree


def skewed_lines(hot: int, spread: int) -> list[str]:
    lines = [f"ipv4     2 udp      17 599 src=10.0.0.{1 + i % 200} dst=192.0.2.53 "
             f"sport={3000 + i} dport=53 [UNREPLIED] src=192.0.2.53 dst=10.0.0.{1 + i % 200} "
             f"sport=53 dport={3000 + i} mark=0 zone=0 use=2" for i in range(hot)]
    lines += [f"ipv4     2 tcp      6 431999 ESTABLISHED src=10.0.0.1 dst=198.51.100.{i % 100} "
              f"sport={20000 + i} dport=443 src=198.51.100.{i % 100} dst=10.0.0.1 sport=443 "
              f"dport={20000 + i} [ASSURED] mark=0 zone=0 use=2" for i in range(spread)]
    return lines


@pytest.fixture
def roots(tmp_path):
    def make(tree):
        proc, sys_root = write_tree(tmp_path, tree)
        return ["--proc-root", proc, "--sys-root", sys_root, "--source", "proc"]

    return make


PERF_300_100 = ("| assured=100;;;0 close=0;;;0 close_wait=0;;;0 established=100;;;0 "
                "fin_wait=0;;;0 icmp=0;;;0 last_ack=0;;;0 max=1000;;;0 nated=0;;;0 "
                "other=0;;;0 syn_recv=0;;;0 syn_sent=0;;;0 tcp=100;;;0 time_wait=0;;;0 "
                "top_share={share}%;{w};{c};0;100 total=400;;;0 udp=300;;;0 "
                "unreplied=300;;;0\n")

PLUGIN_CASES = [
    ("ok-default-thresholds", skewed_lines(300, 100), [], 0,
     "CONNTRACK TABLE OK - 400 entries (40.0% of max 1000); top destination 192.0.2.53 "
     "holds 300 (30.0% of max), then 198.51.100.0 (1), 198.51.100.1 (1); tcp 100 "
     "(established 100), udp 300; assured 100, unreplied 300, nated 0 "
     + PERF_300_100.format(share="30", w="40", c="60")),
    ("warning-top-share-of-max", skewed_lines(300, 100), ["-w", "25"], 1,
     "CONNTRACK TABLE WARNING - 400 entries (40.0% of max 1000); top destination 192.0.2.53 "
     "holds 300 (30.0% of max, warning above 25%), then 198.51.100.0 (1), 198.51.100.1 (1); "
     "tcp 100 (established 100), udp 300; assured 100, unreplied 300, nated 0 "
     + PERF_300_100.format(share="30", w="25", c="60")),
    ("critical-top-share-of-entries", skewed_lines(300, 100),
     ["--share-of", "entries", "-c", "70"], 2,
     "CONNTRACK TABLE CRITICAL - 400 entries (40.0% of max 1000); top destination 192.0.2.53 "
     "holds 300 (75.0% of entries, critical above 70%), then 198.51.100.0 (1), "
     "198.51.100.1 (1); tcp 100 (established 100), udp 300; assured 100, unreplied 300, "
     "nated 0 " + PERF_300_100.format(share="75", w="", c="70")),
    ("warning-state-count", skewed_lines(300, 100),
     ["--warning-state", "unreplied=200", "--critical-state", "established=100"], 1,
     "CONNTRACK TABLE WARNING - 400 entries (40.0% of max 1000); top destination 192.0.2.53 "
     "holds 300 (30.0% of max), then 198.51.100.0 (1), 198.51.100.1 (1); tcp 100 "
     "(established 100), udp 300; assured 100, unreplied 300, nated 0; unreplied 300 "
     "(warning above 200) "
     + PERF_300_100.format(share="30", w="40", c="60").replace(
         "unreplied=300;;;0", "unreplied=300;200;;0").replace(
         "established=100;;;0", "established=100;;100;0")),
    ("critical-top-by-dport", skewed_lines(650, 100), ["--top-by", "dport"], 2,
     None),
    ("ok-empty-table", [], [], 0,
     "CONNTRACK TABLE OK - 0 entries (0.0% of max 1000); no entries; assured 0, "
     "unreplied 0, nated 0 | assured=0;;;0 close=0;;;0 close_wait=0;;;0 established=0;;;0 "
     "fin_wait=0;;;0 icmp=0;;;0 last_ack=0;;;0 max=1000;;;0 nated=0;;;0 other=0;;;0 "
     "syn_recv=0;;;0 syn_sent=0;;;0 tcp=0;;;0 time_wait=0;;;0 top_share=0%;40;60;0;100 "
     "total=0;;;0 udp=0;;;0 unreplied=0;;;0\n"),
    ("unknown-only-garbage", ["no conntrack here", "at all"], [], 3,
     "CONNTRACK TABLE UNKNOWN - none of the 2 lines of {proc}/net/nf_conntrack looks "
     "like a conntrack entry (first: 'no conntrack here')\n"),
]


@pytest.mark.parametrize("case, lines, argv, code, expected", PLUGIN_CASES,
                         ids=[c[0] for c in PLUGIN_CASES])
def test_plugin_output(run_main, roots, tmp_path, case, lines, argv, code, expected):
    got, out = run_main(check_conntrack_table.main, *roots(table_tree(lines)), *argv)
    assert (got, case.split("-")[0].upper()) == (code, out.split(" - ")[0].split()[-1])
    if expected is not None:
        assert out == expected.format(proc=tmp_path / "proc")
    else:
        assert out.startswith("CONNTRACK TABLE CRITICAL - 750 entries (75.0% of max 1000); "
                              "top destination port udp/53 holds 650 (65.0% of max, critical "
                              "above 60%), then tcp/443 (100); ")


@pytest.mark.parametrize("case, lines, argv, code, expected",
                         [c for c in PLUGIN_CASES if c[4] and c[0] != "unknown-only-garbage"],
                         ids=[c[0] for c in PLUGIN_CASES
                              if c[4] and c[0] != "unknown-only-garbage"])
@pytest.mark.parametrize("sample", ["all", "400"])
def test_sample_all_and_a_table_no_bigger_than_the_sample_give_exact_output(
        run_main, roots, case, lines, argv, code, expected, sample):
    got, out = run_main(check_conntrack_table.main, *roots(table_tree(lines)), *argv,
                        "--sample", sample)
    assert (got, out) == (code, expected)


def interleaved(hot: int, spread: int) -> list[str]:
    """skewed_lines in a mixed order: the first entries hold the same shares as the whole."""
    hot_lines, spread_lines = skewed_lines(hot, 0), skewed_lines(0, spread)
    step = hot // spread
    out = []
    for i, line in enumerate(spread_lines):
        out += [*hot_lines[i * step:(i + 1) * step], line]
    return out


def test_a_table_bigger_than_the_sample_is_estimated_with_its_margin(run_main, roots):
    # 300 hot of 400 entries, 3 hot then 1 spread: the first 100 hold 75 hot.
    code, out = run_main(check_conntrack_table.main,
                         *roots(table_tree(interleaved(300, 100), count=4000, limit=10000)),
                         "--sample", "100", "--share-of", "entries", "-w", "70")
    assert code == 1
    # 4000 entries by the kernel's count; 75 of 100 is 75% +- 8.4 (Wilson: 65.7-82.4%).
    assert out == (
        "CONNTRACK TABLE WARNING - 4000 entries (40.0% of max 10000); top destination "
        "192.0.2.53 holds about 3000 (75.0% +- 8.4% of entries, from a sample of 100, warning "
        "above 70%), then 198.51.100.0 (about 40), 198.51.100.1 (about 40); tcp about 1000 "
        "(established 1000), udp about 3000; assured about 1000, unreplied about 3000, "
        "nated about 0 | assured=1000;;;0 close=0;;;0 close_wait=0;;;0 established=1000;;;0 "
        "fin_wait=0;;;0 icmp=0;;;0 last_ack=0;;;0 max=10000;;;0 nated=0;;;0 other=0;;;0 "
        "syn_recv=0;;;0 syn_sent=0;;;0 tcp=1000;;;0 time_wait=0;;;0 top_share=75%;70;;0;100 "
        "total=4000;;;0 udp=3000;;;0 unreplied=3000;;;0\n")


def test_the_margin_of_a_share_of_max_is_scaled_to_max(run_main, roots):
    code, out = run_main(check_conntrack_table.main,
                         *roots(table_tree(interleaved(300, 100), count=4000, limit=10000)),
                         "--sample", "100")
    assert code == 0
    # 75% +- 8.4 of 4000 entries is 30% +- 3.4 of a max of 10000.
    assert "holds about 3000 (30.0% +- 3.4% of max, from a sample of 100), then" in out
    assert " top_share=30%;40;60;0;100 " in out


def test_verbose_shows_the_sample_and_each_margin(run_main, roots, tmp_path):
    code, out = run_main(check_conntrack_table.main,
                         *roots(table_tree(interleaved(300, 100), count=4000, limit=10000)),
                         "--sample", "100", "-v", "--top", "2")
    assert code == 0
    text = out.split("\n| ")[0].splitlines()
    assert text[1].startswith(f"{tmp_path}/proc/net/nf_conntrack: a sample of 100 of 4000 "
                              "entries (read in chunks, ")
    assert text[1].endswith("s; the kernel counted 4000 just before); the counts below are "
                            "estimates: share in the sample x 4000, +- the 95% margin of the "
                            "share (Wilson score interval)")
    assert text[2:] == [
        "protocols: udp 3000, tcp 1000",
        "states: tcp:established 1000",
        "families: ipv4 4000",
        "flags: assured 1000, unreplied 3000, nated 0",
        "rank   entries % entries    +-   % max  destination",
        "   1      3000      75.0   8.4    30.0  192.0.2.53",
        "   2        40       1.0   2.6     0.4  198.51.100.0",  # Wilson: 0.2-5.4%
        "thresholds -w/-c on the biggest group's estimated share of max (the point estimate; "
        "the margin is shown, not used)",
    ]


@pytest.mark.parametrize("k, n, low, high", [
    (50, 100, 0.4038, 0.5962),  # the textbook case: 50% +- 9.6
    (1, 10, 0.0179, 0.4042),
    (0, 100, 0.0, 0.0370),  # nothing seen: still up to 3.7%
    (100, 100, 0.9630, 1.0),
    (30000, 100000, 0.2972, 0.3028),  # the default sample: 30% +- 0.28
])
def test_wilson_intervals_of_known_samples(k, n, low, high):
    got = dump.wilson(k, n)
    assert got == pytest.approx((low, high), abs=5e-5)


def test_the_worst_margin_falls_under_two_points_at_2398_entries():
    assert dump.worst_margin(2397) >= dump.MARGIN_LIMIT > dump.worst_margin(2398)
    assert dump.worst_margin(dump.DEFAULT_SAMPLE) == pytest.approx(0.31, abs=0.005)


def test_read_table_gives_estimates_with_the_sample_size(tmp_path):
    proc, sys_root = write_tree(tmp_path, table_tree(interleaved(300, 100), count=4000,
                                                     limit=10000))
    table = dump.read_table(Roots(proc, sys_root), source="proc", sample=100, keys=())
    assert (table.exact, table.read, table.total, table.count) == (False, 100, 4000, 4000)
    totals = table.totals()
    assert dict(totals["protocol"]) == {"udp": 3000, "tcp": 1000}
    assert dict(totals["state"]) == {"tcp:established": 1000}
    assert dump.counts(totals)["unreplied"] == 3000
    whole = dump.read_table(Roots(proc, sys_root), source="proc", sample=None, keys=())
    assert (whole.exact, whole.read, whole.total) == (True, 400, 400)
    assert dict(whole.totals()["protocol"]) == {"udp": 300, "tcp": 100}


def test_read_table_stops_at_its_deadline(tmp_path):
    proc, sys_root, _, thread = hanging_table(tmp_path, interleaved(300, 100), 4000)
    started = time.monotonic()
    table = dump.read_table(Roots(proc, sys_root), source="proc",
                            deadline=time.monotonic() + 0.5)
    took = time.monotonic() - started
    thread.join()
    assert 0.4 < took < 1.5
    assert (table.counts.interrupted, table.exact, table.read) == (True, False, 400)
    assert not table.usable  # 400 entries: a margin of up to 4.9 points


def test_verbose_ranks_the_groups_and_names_the_source(run_main, roots, tmp_path):
    lines = [*skewed_lines(300, 100), PROC_SNAT, GARBAGE]
    code, out = run_main(check_conntrack_table.main, *roots(table_tree(lines, count=402)),
                         "-v", "--top", "3", "--top-by", "src")
    assert code == 0
    text = out.split("\n| ")[0].splitlines()
    assert text[1:] == [
        f"{tmp_path}/proc/net/nf_conntrack: 401 entries (read in chunks, "
        + text[1].split("read in chunks, ")[1],
        "protocols: udp 301, tcp 100",
        "states: tcp:established 100",
        "families: ipv4 401",
        "flags: assured 100, unreplied 300, nated 1",
        "rank   entries % entries   % max  source",
        "   1       102      25.4    10.2  10.0.0.1",
        "   2         2       0.5     0.2  10.0.0.2",
        "   3         2       0.5     0.2  10.0.0.3",
        "1 lines not understood, first: 'hello world'",
        "thresholds -w/-c on the biggest group's share of max",
    ]
    assert text[1].endswith("s; the kernel counted 402 just before)")


def test_old_ip_conntrack_file_is_read(run_main, roots):
    tree = table_tree([OLD_IP_CONNTRACK] * 3, proc_file="net/ip_conntrack")
    code, out = run_main(check_conntrack_table.main, *roots(tree), "-v")
    assert code == 0
    assert "/proc/net/ip_conntrack: 3 entries" in out
    assert "tcp 3 (established 3)" in out


def test_no_proc_file_with_source_proc_says_use_netlink(run_main, roots, tmp_path):
    code, out = run_main(check_conntrack_table.main, *roots(table_tree([], proc_file=None)))
    assert (code, out) == (3, f"CONNTRACK TABLE UNKNOWN - no {tmp_path}/proc/net/nf_conntrack "
                              "(kernel without CONFIG_NF_CONNTRACK_PROCFS): use --source "
                              "netlink\n")


def test_module_not_loaded_is_ok_by_default(run_main, tmp_path):
    proc, sys_root = write_tree(tmp_path, {"proc": {"sys/kernel/hostname": "x"}, "sys": {}})
    code, out = run_main(check_conntrack_table.main, "--proc-root", proc, "--sys-root", sys_root)
    assert code == 0
    assert out.startswith("CONNTRACK TABLE OK - nf_conntrack is not loaded")
    code, out = run_main(check_conntrack_table.main, "--proc-root", proc, "--sys-root",
                         sys_root, "--missing", "critical")
    assert code == 2


@pytest.mark.parametrize("argv, message", [
    (["--warning-state", "bogus=5"], "'bogus=5' is not NAME=RANGE with NAME one of total, "),
    (["--warning-state", "unreplied"], "'unreplied' is not NAME=RANGE"),
    (["--critical-state", "time_wait=x"], "'x' is not a Nagios range"),
    (["--top-by", "port"], "argument --top-by: invalid choice: 'port'"),
    (["--top", "0"], "'0' is not a whole number above 0"),
    (["--sample", "0"], "'0' is neither a whole number above 0 nor all"),
    (["--sample", "some"], "'some' is neither a whole number above 0 nor all"),
])
def test_bad_arguments_are_unknown(run_main, argv, message):
    code, out = run_main(check_conntrack_table.main, *argv)
    assert code == 3
    assert out.startswith("CONNTRACK TABLE UNKNOWN - ")
    assert message in out
    assert len(out.splitlines()) == 1


def hanging_table(tmp_path, lines, count, limit=1000):
    """A fixture tree whose proc file is a FIFO: ``lines`` come, then the dump hangs 3 s."""
    proc, sys_root = write_tree(tmp_path, table_tree([], count=count, limit=limit,
                                                     proc_file=None))
    fifo = os.path.join(proc, "net", "nf_conntrack")
    os.makedirs(os.path.dirname(fifo), exist_ok=True)
    os.mkfifo(fifo)

    def writer():
        with open(fifo, "wb") as handle:  # blocks until the plugin opens it
            handle.write("".join(line + "\n" for line in lines).encode())
            handle.flush()
            time.sleep(3)  # the dump "hangs": the plugin must not

    thread = threading.Thread(target=writer, daemon=True)
    thread.start()
    return proc, sys_root, fifo, thread


def test_a_timeout_too_early_for_a_margin_is_unknown_with_shares_not_counts(run_main,
                                                                              tmp_path):
    proc, sys_root, fifo, thread = hanging_table(tmp_path, skewed_lines(5, 2), 9)
    started = time.monotonic()
    code, out = run_main(check_conntrack_table.main, "--proc-root", proc, "--sys-root",
                         sys_root, "--source", "proc", "-t", "1")
    took = time.monotonic() - started
    thread.join()
    assert code == 3
    assert took < 2.5
    assert out == (
        f"CONNTRACK TABLE UNKNOWN - timed out after 1 s reading {fifo}: 7 of 9 entries read, "
        "too few for shares within 2 points; of those read: top destination 192.0.2.53 "
        "71.4%, then 198.51.100.0 14.3%, 198.51.100.1 14.3%; tcp 28.6%, udp 71.4%; "
        "assured 28.6%, unreplied 71.4%, nated 0.0% | max=1000;;;0\n")


def test_a_timeout_after_enough_entries_answers_with_the_estimate(run_main, tmp_path):
    # 3000 entries read of 10000 (a margin of at most 1.8 points), then the dump hangs.
    proc, sys_root, _, thread = hanging_table(tmp_path, skewed_lines(900, 2100), 10000,
                                                 limit=10000)
    code, out = run_main(check_conntrack_table.main, "--proc-root", proc, "--sys-root",
                         sys_root, "--source", "proc", "-t", "1")
    thread.join()
    assert code == 0, out
    assert out.startswith(
        "CONNTRACK TABLE OK - 10000 entries (100.0% of max 10000); top destination "
        "192.0.2.53 holds about 3000 (30.0% +- 1.6% of max, from a sample of 3000 cut short "
        "by the timeout), then 198.51.100.0 (about 70), 198.51.100.1 (about 70); tcp about "
        "7000 (established 7000), udp about 3000; assured about 7000, unreplied about 3000, "
        "nated about 0 | ")
    assert " total=10000;;;0 " in out and " udp=3000;;;0 " in out
    assert " top_share=30%;40;60;0;100 " in out


def test_report_section_is_plain_json_data(tmp_path):
    proc, sys_root = write_tree(tmp_path, table_tree([*skewed_lines(30, 10), PROC_SNAT]))
    data = check_conntrack_table.report_section(Roots(proc, sys_root), top=2, source="proc")
    assert json.loads(json.dumps(data)) == data
    assert data["source"] == f"{proc}/net/nf_conntrack"
    assert (data["entries"], data["max"], data["count_before_dump"]) == (41, 1000, 41)
    assert data["protocols"] == {"udp": 31, "tcp": 10}
    assert data["states"] == {"tcp:established": 10}
    assert data["flags"] == {"assured": 10, "unreplied": 30, "nated": 1}
    assert data["counts"]["total"] == 41 and data["counts"]["established"] == 10
    assert data["top"]["dst"] == [
        {"key": "192.0.2.53", "entries": 30, "share_of_entries": 73.171, "share_of_max": 3.0},
        {"key": "198.51.100.0", "entries": 1, "share_of_entries": 2.439,
         "share_of_max": 0.1}]
    assert data["top"]["dport"][0] == {"key": "udp/53", "entries": 31,
                                       "share_of_entries": 75.61, "share_of_max": 3.1}
    assert data["top"]["src"][0]["key"] == "10.0.0.1"
    assert data["interrupted"] is False and data["lines_not_understood"] == 0


def test_report_section_raises_probe_error(tmp_path):
    proc, sys_root = write_tree(tmp_path, table_tree([], proc_file=None))
    with pytest.raises(ProbeError, match="use --source netlink"):
        check_conntrack_table.report_section(Roots(proc, sys_root), source="proc")


def test_executable_on_a_fixture_tree(run_plugin, tmp_path):
    proc, sys_root = write_tree(tmp_path, table_tree(skewed_lines(650, 100)))
    code, out, err = run_plugin("check_conntrack_table", "--proc-root", proc,
                                "--sys-root", sys_root, "--source", "proc", "--top-by", "dport")
    assert (code, err) == (2, "")
    assert out.startswith("CONNTRACK TABLE CRITICAL - 750 entries (75.0% of max 1000); top "
                          "destination port udp/53 holds 650 (65.0% of max, critical above "
                          "60%), then tcp/443 (100); tcp 100 (established 100), udp 650; ")
    assert "top_share=65%;40;60;0;100" in out


def test_executable_without_root_says_so_in_one_line():
    if os.geteuid() != 0:
        if os.environ.get("CI") == "true":
            pytest.fail("CI=true: running the plugin as nobody needs root")
        pytest.skip("runs the plugin as nobody, which needs root")
    # As nobody with no root group (0440 root:root would let gid 0 read the table).
    code, out, err = as_nobody("check_conntrack_table", timeout=60)
    assert code == 3, out
    assert err == ""
    assert len(out.splitlines()) == 1
    assert out.startswith("CONNTRACK TABLE UNKNOWN - ")
    assert out == (
        "CONNTRACK TABLE UNKNOWN - reading the conntrack table needs root or CAP_NET_ADMIN: "
        "/proc/net/nf_conntrack: permission denied; /usr/sbin/conntrack -L: Operation "
        "failed: sorry, you must be root or get CAP_NET_ADMIN capability to do this; see "
        "contrib/sudoers/conntrack-checks\n")


def test_group_counts_are_never_off_by_more_than_the_error_bound():
    rng = random.Random(7)
    groups = ctdump.Groups("dst", limit=64)
    true = {}
    for _ in range(40):
        batch = []
        for _ in range(100):
            # a few heavy values, many rare ones, in a random order
            value = f"10.0.0.{rng.randint(0, 3)}" if rng.random() < 0.3 else \
                f"10.1.{rng.randint(0, 30)}.{rng.randint(0, 250)}"
            true[value] = true.get(value, 0) + 1
            batch.append((b"", b"", b"", b"", b"", value.encode()))
        groups.update(batch)
    assert groups.error > 0
    shown = dict(groups.top(len(groups.counts)))
    for value, count in true.items():
        assert count - groups.error <= shown.get(value, 0) <= count, value


@pytest.mark.parametrize("marks", [False, True])
def test_the_pattern_for_chunks_without_colons_finds_the_same_rows(marks):
    v4 = [line for line in [*KEY_LINES, *(c[1][0] for c in PARSER_CASES if c[1])]
          if ":" not in line]
    text = ("\n" + "\n".join(v4) + "\n").encode() + big_text(500)
    assert b":" not in text
    fast = ctdump.pattern(marks, colons=False)
    assert fast.pattern != ctdump.pattern(marks).pattern  # the lookahead is gone
    assert fast.findall(text) == ctdump.pattern(marks).findall(text)
    assert len(fast.findall(text)) == len(v4) + 500
