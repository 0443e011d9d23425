#!/usr/bin/env python3
"""check_conntrack_table on real big tables against the kernel's dump alone (root).

    /path/to/venv/bin/python tests/bench/bench_table.py [--sizes 100000,250000,1000000]
        [--runs 3] [--senders 4] [--top-by dst,src-dst-dport]

For each size a Lab namespace is filled with that many UDP flows (several
flows.py senders in parallel; the global max is raised inside the Lab and
restored after). Then, interleaved, each run times:

* floor proc:    ip netns exec NS cat /proc/net/nf_conntrack > /dev/null
* plugin proc:   check_conntrack_table --netns NS --source proc
* floor netlink: ip netns exec NS conntrack -L > /dev/null
* plugin netlink: check_conntrack_table --netns NS --source netlink

and prints median wall times, the ratio to the floor of the same source
(target <= 1.5) and the plugin process's peak RSS from wait4() (target
< 64 MiB; the cat/conntrack child is a separate process, shown apart).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "integration"))
from lab import FLOWS, Lab

PLUGIN = str(Path(sys.executable).parent / "check_conntrack_table")
RATIO_TARGET = 1.5
RSS_TARGET_KIB = 64 * 1024


def timed(cmd: list[str]) -> tuple[float, int, int]:
    """Wall seconds, peak RSS (KiB) of the process itself, wait status."""
    start = time.perf_counter()
    child = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _, status, usage = os.wait4(child.pid, 0)
    wall = time.perf_counter() - start
    return wall, usage.ru_maxrss, status


def fill(lab: Lab, name: str, size: int, senders: int) -> float:
    start = time.perf_counter()
    share = size // senders
    procs = [
        subprocess.Popen(["ip", "netns", "exec", name, sys.executable, FLOWS,
                          str(share if k < senders - 1 else size - share * k),
                          str(share * k)], stdout=subprocess.DEVNULL)
        for k in range(senders)
    ]
    for proc in procs:
        proc.wait()
    return time.perf_counter() - start


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", default="100000,250000,1000000")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--senders", type=int, default=4)
    ap.add_argument("--top-by", default="dst,src-dst-dport")
    ap.add_argument("--sources", default="proc,netlink")
    args = ap.parse_args()
    if os.geteuid() != 0:
        print("bench_table.py needs root (it creates namespaces and raises the max)")
        return 2
    sizes = [int(s) for s in args.sizes.split(",")]
    keys = args.top_by.split(",")
    sources = args.sources.split(",")
    ok = True
    print(f"{'entries':>8} {'source':>7} {'top-by':>13} {'floor s':>8} {'plugin s':>9} "
          f"{'ratio':>6} {'plugin RSS MiB':>15}  verdict")
    for size in sizes:
        with Lab(max_entries=max(size + size // 10 + 1000, 262144)) as lab:
            name = lab.namespace("bench")
            seconds = fill(lab, name, size, args.senders)
            count = lab.count(name)
            print(f"# {size}: filled {count} entries in {seconds:.1f} s", flush=True)
            floors = {
                "proc": ["ip", "netns", "exec", name, "cat", "/proc/net/nf_conntrack"],
                "netlink": ["ip", "netns", "exec", name, "conntrack", "-L"],
            }
            for source in sources:
                for key in keys:
                    plugin = [PLUGIN, "--netns", name, "--source", source,
                              "--top-by", key, "-t", "300"]
                    floor_times, plugin_times, rss = [], [], []
                    timed(floors[source])  # warm
                    for _ in range(args.runs):
                        floor_times.append(timed(floors[source])[0])
                        wall, peak, status = timed(plugin)
                        if os.waitstatus_to_exitcode(status) not in (0, 1, 2):
                            print(f"plugin failed: {' '.join(plugin)}")
                            ok = False
                        plugin_times.append(wall)
                        rss.append(peak)
                    floor = statistics.median(floor_times)
                    took = statistics.median(plugin_times)
                    ratio = took / floor
                    good = ratio <= RATIO_TARGET and max(rss) < RSS_TARGET_KIB
                    ok &= good
                    print(f"{count:>8} {source:>7} {key:>13} {floor:>8.2f} {took:>9.2f} "
                          f"{ratio:>6.2f} {max(rss) / 1024:>15.1f}  "
                          f"{'ok' if good else 'OVER TARGET'}", flush=True)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
