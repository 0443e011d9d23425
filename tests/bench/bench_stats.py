#!/usr/bin/env python3
"""check_conntrack_stats: where its wall time goes, against the nagiosplugin floor.

    .venv/bin/python tests/bench/bench_stats.py [--runs 40]

Interleaves, in a new random order each round: the floor (``python -c
"import nagiosplugin"``), the imports alone, the plugin with its state in
the default directory (on disk: every run fsyncs the state file and its
directory), with its state on tmpfs (/dev/shm: fsync is free), and with
``--source netlink``. Prints medians and ratios to the floor; the target
(1.25) applies to the procfs path with the default state directory.
Not part of the test suite.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_startup import BIN, interleaved, report


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=40)
    args = parser.parse_args()
    plugin = str(BIN / "check_conntrack_stats")
    shm = tempfile.mkdtemp(prefix="ctstats-bench-", dir="/dev/shm")
    os.chmod(shm, 0o700)
    floor = f"{os.path.basename(sys.executable)} -c 'import nagiosplugin'"
    commands = {
        floor: [sys.executable, "-c", "import nagiosplugin"],
        "imports only (check_conntrack_stats -V)": [plugin, "-V"],
        "check_conntrack_stats (default state dir)": [plugin],
        "check_conntrack_stats (state on tmpfs)": [plugin, "--state-dir", shm],
    }
    if os.geteuid() == 0:
        commands["check_conntrack_stats --source netlink"] = [plugin, "--source", "netlink",
                                                              "--state-dir", shm]
    try:
        print(f"interpreter {sys.executable}, {args.runs} interleaved rounds")
        medians = interleaved(commands, args.runs)
        report(medians, floor, target=None)
        ratio = medians["check_conntrack_stats (default state dir)"] / medians[floor]
        print(f"procfs path, default state dir: {ratio:.2f} x floor (target 1.25)")
    finally:
        shutil.rmtree(shm)
    return 0 if ratio <= 1.25 else 1


if __name__ == "__main__":
    sys.exit(main())
