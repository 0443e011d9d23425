#!/usr/bin/env python3
"""check_conntrack_table on real big tables, exact and sampled, against the kernel's dump (root).

    /path/to/venv/bin/python tests/bench/bench_table.py [--sizes 1000000,2000000]
        [--runs 3] [--senders 2] [--top-by dst] [--sources proc,netlink]

For each size a Lab namespace is filled with a skewed table (table_load.py:
30% of the entries to one destination, 10% to a second, 60% spread over
12,000 others; the global max is raised inside the Lab and restored after).
Then, interleaved, each run times:

* floor:   ip netns exec NS cat /proc/net/nf_conntrack > /dev/null
           (netlink: ip netns exec NS conntrack -L > /dev/null)
* exact:   check_conntrack_table --netns NS --source S --sample all --share-of entries
* sampled: check_conntrack_table --netns NS --source S --share-of entries (default sample)

and prints median wall times, each mode's ratio to the floor of the same run
(targets for the proc source: exact <= 1.2, sampled <= 0.2), the plugin's
peak RSS from wait4() (target < 64 MiB; the cat/conntrack child is another
process), and the top share of the exact run against the sampled runs'
(target: within 1 point), with the sample's margin and the spread of the
sampled shares over the runs. Load averages are printed before and after.
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "integration"))
from lab import Lab

PLUGIN = str(Path(sys.executable).parent / "check_conntrack_table")
LOAD = str(Path(__file__).with_name("table_load.py"))
EXACT_TARGET = 1.2
SAMPLE_TARGET = 0.2
SHARE_TARGET = 1.0  # points
RSS_TARGET_KIB = 64 * 1024
ESTIMATE = re.compile(rb"\(([\d.]+)% \+- ([\d.]+)% of entries")
TOP_SHARE = re.compile(rb" top_share=([\d.]+)%")


def timed(cmd: list[str], keep: bool = True) -> tuple[float, int, int, bytes, float]:
    """Wall seconds, peak RSS (KiB), exit code, stdout, CPU seconds (user + system).

    wait4() gives the process's own figures plus those of the children it
    waited for (the cat or conntrack child): the RSS is the largest of them.
    """
    start = time.perf_counter()
    child = subprocess.Popen(cmd, stdout=subprocess.PIPE if keep else subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL)
    out = child.stdout.read() if keep else b""
    _, status, usage = os.wait4(child.pid, 0)
    wall = time.perf_counter() - start
    if keep:
        child.stdout.close()
    child.returncode = os.waitstatus_to_exitcode(status)
    return (wall, usage.ru_maxrss, child.returncode, out,
            usage.ru_utime + usage.ru_stime)


def timed_floor(cmd: list[str]) -> tuple[float, float]:
    """Wall and CPU seconds of the dump alone, its output thrown away."""
    wall, _, code, _, cpu = timed(cmd, keep=False)
    if code != 0:
        raise SystemExit(f"{' '.join(cmd)} failed ({code})")
    return wall, cpu


def fill(name: str, size: int, senders: int) -> float:
    start = time.perf_counter()
    share = size // senders
    procs = [
        subprocess.Popen(["ip", "netns", "exec", name, sys.executable, LOAD, str(size),
                          str(share * k), str(share if k < senders - 1 else size - share * k)],
                         stdout=subprocess.DEVNULL)
        for k in range(senders)
    ]
    for proc in procs:
        proc.wait()
    return time.perf_counter() - start


def load() -> str:
    with open("/proc/loadavg") as handle:
        return " ".join(handle.read().split()[:3])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", default="1000000")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--senders", type=int, default=2)
    ap.add_argument("--top-by", default="dst")
    ap.add_argument("--sources", default="proc")
    args = ap.parse_args()
    if os.geteuid() != 0:
        print("bench_table.py needs root (it creates namespaces and raises the max)")
        return 2
    sizes = [int(s) for s in args.sizes.split(",")]
    keys = args.top_by.split(",")
    sources = args.sources.split(",")
    ok = True
    print(f"{'entries':>9} {'source':>7} {'top-by':>13} {'floor s':>8} {'exact s':>8} "
          f"{'ratio':>6} {'MiB':>5} {'sampled s':>9} {'ratio':>6} {'MiB':>5} "
          f"{'exact %':>8} {'sampled %':>16} {'+-':>5}  verdict")
    for size in sizes:
        with Lab(max_entries=max(size + size // 10 + 1000, 262144)) as lab:
            name = lab.namespace("bench")
            seconds = fill(name, size, args.senders)
            count = lab.count(name)
            print(f"# {size}: filled {count} entries in {seconds:.1f} s; load average "
                  f"{load()}", flush=True)
            floors = {
                "proc": ["ip", "netns", "exec", name, "cat", "/proc/net/nf_conntrack"],
                "netlink": ["ip", "netns", "exec", name, "conntrack", "-L"],
            }
            for source in sources:
                for key in keys:
                    base = [PLUGIN, "--netns", name, "--source", source, "--top-by", key,
                            "--share-of", "entries", "-t", "300"]
                    modes = {"exact": [*base, "--sample", "all"], "sampled": base}
                    times = {"floor": [], "exact": [], "sampled": []}
                    cpus = {"floor": [], "exact": []}
                    rss = {"exact": [], "sampled": []}
                    shares = {"exact": [], "sampled": []}
                    margins = []
                    timed_floor(floors[source])  # warm
                    for _ in range(args.runs):
                        wall, cpu = timed_floor(floors[source])
                        times["floor"].append(wall)
                        cpus["floor"].append(cpu)
                        for mode, cmd in modes.items():
                            wall, peak, code, out, cpu = timed(cmd)
                            if code != 0:
                                print(f"plugin failed ({code}): {' '.join(cmd)}: {out[:300]}")
                                ok = False
                                continue
                            times[mode].append(wall)
                            rss[mode].append(peak)
                            if mode == "exact":
                                cpus[mode].append(cpu)
                            shares[mode].append(float(TOP_SHARE.search(out)[1]))
                            if mode == "sampled":
                                found = ESTIMATE.search(out)
                                margins.append(float(found[2]) if found else 0.0)
                    if not shares["exact"] or not shares["sampled"]:
                        continue
                    floor = statistics.median(times["floor"])
                    exact = statistics.median(times["exact"])
                    sampled = statistics.median(times["sampled"])
                    true = statistics.median(shares["exact"])
                    off = max(abs(s - true) for s in shares["sampled"])
                    good = {
                        "exact": exact / floor <= EXACT_TARGET,
                        "sampled": sampled / floor <= SAMPLE_TARGET,
                        "share": off <= SHARE_TARGET,
                        "memory": max(rss["exact"] + rss["sampled"]) < RSS_TARGET_KIB,
                    }
                    if source == "proc":
                        ok &= all(good.values())
                    missed = [k for k, v in good.items() if not v]
                    low, high = min(shares["sampled"]), max(shares["sampled"])
                    print(f"{count:>9} {source:>7} {key:>13} {floor:>8.2f} {exact:>8.2f} "
                          f"{exact / floor:>6.2f} {max(rss['exact']) / 1024:>5.1f} "
                          f"{sampled:>9.2f} {sampled / floor:>6.2f} "
                          f"{max(rss['sampled']) / 1024:>5.1f} {true:>8.3f} "
                          f"{low:>7.3f}-{high:<8.3f} {max(margins):>5.2f}  "
                          f"{'ok' if not missed else 'OVER TARGET: ' + ', '.join(missed)}",
                          flush=True)
                    # Without other load, the exact run takes about as long as
                    # the dump if the plugin's own CPU (minus the dump's, done
                    # by its child) is less than the dump's: both CPUs busy.
                    floor_cpu = statistics.median(cpus["floor"])
                    own = statistics.median(cpus["exact"]) - floor_cpu
                    print(f"#   CPU seconds: dump alone {floor_cpu:.2f}, exact plugin "
                          f"{own:.2f} on top of its dump child ({own / floor_cpu:.2f} of "
                          "the dump's)", flush=True)
            print(f"# load average after {size}: {load()}", flush=True)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
