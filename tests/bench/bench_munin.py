#!/usr/bin/env python3
"""conntrack-munin's fetch on a big real table against the Nagios plugins' reads (root).

    /path/to/venv/bin/python tests/bench/bench_munin.py [--size 1000000] [--runs 5]

A Lab namespace is filled with --size UDP flows (the global max raised
inside the Lab, restored after). Every command runs inside that namespace
(ip netns exec), so it is the table munin-node would see; interleaved, each
round times:

* munin fetch:  conntrack-munin (fetch; env.netns host, env.states yes:
  usage, hash, counters, messages and the states graph's bounded read of
  env.states_sample entries)
* the Nagios plugins that read the same: check_conntrack,
  check_conntrack_hash, check_conntrack_stats, check_conntrack_log
  --source kmsg and check_conntrack_table (its default --sample 100000:
  the bounded table read), one after the other

and prints the medians and their ratio (target <= 1.0: the Munin plugin
reads each thing once, in one process). Munin's own fw_conntrack (it reads
every entry) is timed once on the same table, where it is installed, for
comparison. Not part of the test suite.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "integration"))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_table import fill
from lab import Lab

BIN = Path(sys.executable).parent
TARGET = 1.0
FW_CONNTRACK = "/usr/share/munin/plugins/fw_conntrack"


def timed(cmd: list[str], env=None) -> float:
    start = time.perf_counter()
    done = subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env,
                          text=True)
    wall = time.perf_counter() - start
    if done.returncode not in (0, 1, 2):
        raise SystemExit(f"failed ({done.returncode}): {' '.join(cmd)}: {done.stderr}")
    return wall


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--size", type=int, default=1000000)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--senders", type=int, default=4)
    args = ap.parse_args()
    if os.geteuid() != 0:
        print("bench_munin.py needs root (it creates a namespace and raises the max)")
        return 2
    state = tempfile.mkdtemp(prefix="ctmunin-bench-")
    try:
        with Lab(max_entries=max(args.size + args.size // 10 + 1000, 262144)) as lab:
            name = lab.namespace("bench")
            seconds = fill(lab, name, args.size, args.senders)
            count = lab.count(name)
            print(f"# filled {count} entries in {seconds:.1f} s; load average "
                  f"{os.getloadavg()[0]:.2f} {os.getloadavg()[1]:.2f}", flush=True)
            inside = ["ip", "netns", "exec", name]
            env = {**os.environ, "MUNIN_CAP_MULTIGRAPH": "1", "MUNIN_PLUGSTATE": state,
                   "netns": "host", "states": "yes"}
            munin = [*inside, str(BIN / "conntrack-munin")]
            nagios = [
                [*inside, str(BIN / "check_conntrack")],
                [*inside, str(BIN / "check_conntrack_hash")],
                [*inside, str(BIN / "check_conntrack_stats"), "--state-dir", state],
                [*inside, str(BIN / "check_conntrack_log"), "--source", "kmsg",
                 "--state-dir", state],
                [*inside, str(BIN / "check_conntrack_table"), "-t", "60"],
            ]
            timed(munin, env)  # baselines and a warm cache
            for cmd in nagios:
                timed(cmd)
            munin_times, nagios_times, table_times = [], [], []
            for _ in range(args.runs):
                munin_times.append(timed(munin, env))
                parts = [timed(cmd) for cmd in nagios]
                nagios_times.append(sum(parts))
                table_times.append(parts[-1])
            took = statistics.median(munin_times)
            floor = statistics.median(nagios_times)
            print(f"{'entries':>9} {'munin fetch s':>14} {'nagios reads s':>15} "
                  f"{'(table part)':>13} {'ratio':>6}")
            print(f"{count:>9} {took:>14.2f} {floor:>15.2f} "
                  f"{statistics.median(table_times):>13.2f} {took / floor:>6.2f}  "
                  f"{'ok' if took / floor <= TARGET else 'OVER TARGET'}")
            if os.path.exists(FW_CONNTRACK):
                fw = timed([*inside, FW_CONNTRACK], env)
                print(f"# Munin's fw_conntrack on the same table, once: {fw:.2f} s")
            print(f"# load average after: {os.getloadavg()[0]:.2f}")
            return 0 if took / floor <= TARGET else 1
    finally:
        shutil.rmtree(state)


if __name__ == "__main__":
    sys.exit(main())
