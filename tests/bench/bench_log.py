#!/usr/bin/env python3
"""check_conntrack_log on a large syslog file: full scan against grep, and incremental runs.

    .venv/bin/python tests/bench/bench_log.py [--size-mib 1024] [--runs 15] [--dir /var/tmp]

1. Full scan: a SIZE syslog file (noise plus a 10-line table-full burst and a
   "callbacks suppressed" line every ~8 MiB, 10 minutes apart) read from the start by the
   installed plugin (``--lookback 3650d``, fresh state each time) against
   ``grep -c -E`` with the same pattern (logmsg.GREP_PATTERN); both from the
   page cache, medians of --scan-runs. Throughput ratio >= 0.8 passes. Peak
   RSS of the plugin is compared with a run on a file 1/16 the size
   (constant memory: the difference stays under 16 MiB), both measured under
   a small launcher so that this script's own memory does not count.
2. Incremental: after a baseline, 1 MiB is appended before each run; the run
   is timed against ``python -c "import nagiosplugin"`` (same interpreter),
   interleaved, medians of --runs. Ratio <= 1.25 passes. check_conntrack is
   timed alongside to show what the shared plugin plumbing alone costs, and
   the floor without the interpreter's teardown (which the plugins skip, see
   plugin.execute) to show the plugin's own work.

Not part of the test suite: numbers depend on the machine, ratios less so.
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from conntrack_checks.logs import logmsg

BIN = Path(sys.executable).parent
PLUGIN = str(BIN / "check_conntrack_log")
NOISE = [
    "systemd[1]: Started session-{n}.scope - Session {n} of User root.",
    "sshd[{n}]: Accepted publickey for deploy from 10.0.{a}.{b} port {n} ssh2: ED25519 SHA256:x",
    "kernel: [{n}.123456] IPv4: martian source 10.0.{a}.{b} from 10.1.{a}.{b}, on dev eth0",
    "CRON[{n}]: (root) CMD (command -v debian-sa1 > /dev/null && debian-sa1 1 1)",
    "kernel: [{n}.654321] eth0: renamed from veth{n}; conntrackd[{n}]: sync ok",
    "dhclient[{n}]: DHCPREQUEST for 10.0.{a}.{b} on eth0 to 10.0.0.1 port 67",
]


STAMP = "%b %d %H:%M:%S"


def block(size: int, seed: int, when: float | None = None) -> bytes:
    """About ``size`` bytes of syslog lines with one burst at the end."""
    rnd = random.Random(seed)
    stamp = time.strftime(STAMP, time.localtime(when))
    lines = []
    total = 0
    while total < size:
        text = rnd.choice(NOISE).format(n=rnd.randrange(100000), a=rnd.randrange(256),
                                        b=rnd.randrange(256))
        line = f"{stamp} fw {text}\n"
        lines.append(line)
        total += len(line)
    for i in range(10):
        lines.append(f"{stamp} fw kernel: [{i}.0] nf_conntrack: nf_conntrack: table full in "
                     f"netns 4026532246, dropping packet\n")
    lines.append(f"{stamp} fw kernel: [11.0] net_ratelimit: 1234 callbacks suppressed\n")
    return "".join(lines).encode()


def write_log(path: Path, size: int) -> None:
    """SIZE of log ending now, 10 minutes per 8 MiB block (1 GiB spans 21 hours)."""
    start = time.time() - (size >> 23) * 600
    chunk = block(8 << 20, 1, start)
    first = time.strftime(STAMP, time.localtime(start)).encode()
    with open(path, "wb") as handle:
        written = 0
        while written < size:
            stamp = time.strftime(STAMP, time.localtime(start + (written >> 23) * 600))
            handle.write(chunk.replace(first, stamp.encode()))
            written += len(chunk)


# As installed plugins run: with their .pyc files (a shell may forbid writing them).
ENV = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}


class Run:
    """Wall and CPU seconds and stdout of one child process."""

    def __init__(self, cmd: list[str]):
        start = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                env=ENV)
        self.out = proc.stdout.read().decode()
        proc.stdout.close()
        _, _, usage = os.wait4(proc.pid, 0)
        proc.returncode = 0
        self.wall = time.perf_counter() - start
        self.cpu = usage.ru_utime + usage.ru_stime


# A child's ru_maxrss includes the memory of the process it was forked from
# until it execs (subprocess uses vfork): this script holds tens of MiB of
# generated log, so peak RSS is measured under a small launcher instead.
LAUNCHER = ("import resource, subprocess, sys; subprocess.run(sys.argv[1:], "
            "stdout=subprocess.DEVNULL); "
            "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)")


def peak_rss(cmd: list[str]) -> int:
    """Peak RSS (KiB) of ``cmd``, at least the launcher's own (about 10 MiB)."""
    return int(Run([sys.executable, "-c", LAUNCHER, *cmd]).out.split()[-1])


def scan_cmd(path: Path, state: Path) -> list[str]:
    shutil.rmtree(state, ignore_errors=True)
    return [PLUGIN, "--logfile", str(path), "--state-dir", str(state),
            "--lookback", "3650d", "--max-bytes", "64G", "-t", "300"]


def interleaved(commands: dict, runs: int, before=None) -> dict[str, list[Run]]:
    """Each command ``runs`` times, in a new random order each round."""
    results: dict[str, list[Run]] = {name: [] for name in commands}
    for _ in range(runs):
        if before:
            before()
        order = list(commands)
        random.shuffle(order)
        for name in order:
            results[name].append(Run(commands[name]()))
    return results


def med(runs: list[Run], attr: str) -> float:
    return statistics.median(getattr(r, attr) for r in runs)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mib", type=int, default=1024)
    parser.add_argument("--scan-runs", type=int, default=5)
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--dir", default="/var/tmp")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-log-", dir=args.dir))
    try:
        return run(work, args)
    finally:
        shutil.rmtree(work)


def run(work: Path, args) -> int:
    ok = True
    big, small = work / "kern.log", work / "small.log"
    size = args.size_mib << 20
    write_log(big, size)
    write_log(small, size // 16)
    for path in (big, small):  # into the page cache
        subprocess.run(["cat", str(path)], stdout=subprocess.DEVNULL, check=True)
    grep = [shutil.which("grep"), "-c", "-E", logmsg.GREP_PATTERN, str(big)]
    res = interleaved({"grep": lambda: grep,
                       "plugin": lambda: scan_cmd(big, work / "state")}, args.scan_runs)
    big_rss = peak_rss(scan_cmd(big, work / "state"))
    small_rss = peak_rss(scan_cmd(small, work / "state"))
    launcher_rss = peak_rss(["true"])
    mib = big.stat().st_size / (1 << 20)
    print(f"full scan of {mib:.0f} MiB from the page cache (interleaved, medians of "
          f"{args.scan_runs}):")
    for name in ("grep", "plugin"):
        wall, cpu = med(res[name], "wall"), med(res[name], "cpu")
        print(f"  {name:8} wall {wall:6.3f} s ({mib / wall:5.0f} MiB/s)  "
              f"cpu {cpu:6.3f} s ({mib / cpu:5.0f} MiB/s)")
    wall_ratio = med(res["grep"], "wall") / med(res["plugin"], "wall")
    cpu_ratio = med(res["grep"], "cpu") / med(res["plugin"], "cpu")
    print(f"  throughput plugin/grep: wall {wall_ratio:.2f}, cpu {cpu_ratio:.2f} "
          f"(target >= 0.8) {'ok' if wall_ratio >= 0.8 else 'FAIL'}")
    print(f"  grep count: {res['grep'][-1].out.strip()} lines; plugin: "
          f"{res['plugin'][-1].out.split(' | ')[0]}")
    print(f"  peak RSS {big_rss / 1024:.1f} MiB on {mib:.0f} MiB, "
          f"{small_rss / 1024:.1f} MiB on {mib / 16:.0f} MiB (the launcher alone: "
          f"{launcher_rss / 1024:.1f} MiB)")
    ok &= wall_ratio >= 0.8 and big_rss - small_rss < 16 * 1024

    state = work / "state-inc"
    base = [PLUGIN, "--logfile", str(big), "--state-dir", str(state)]
    subprocess.run(base, stdout=subprocess.DEVNULL, check=False, env=ENV)
    appended = block(1 << 20, 2)
    floor_cmd = [sys.executable, "-c", "import nagiosplugin"]
    Run(floor_cmd)  # warm the .pyc files
    Run(base)

    def append():
        with open(big, "ab") as handle:
            handle.write(appended)

    reference = [str(BIN / "check_conntrack")]  # the suite's simplest plugin, for scale
    # The plugins leave without the interpreter's teardown (plugin.execute); the
    # same floor without it shows what the plugin's own work costs.
    bare_cmd = [sys.executable, "-c", "import os, nagiosplugin; os._exit(0)"]
    res = interleaved({"floor": lambda: floor_cmd, "plugin": lambda: base,
                       "reference": lambda: reference, "bare": lambda: bare_cmd},
                      args.runs, append)
    floor, inc = med(res["floor"], "wall"), med(res["plugin"], "wall")
    ratio = inc / floor
    cpu_ratio = med(res["plugin"], "cpu") / med(res["floor"], "cpu")
    print(f"incremental run after 1 MiB appended (interleaved, medians of {args.runs}):")
    print(f"  import nagiosplugin  {floor * 1000:7.1f} ms")
    print(f"  plugin               {inc * 1000:7.1f} ms  x floor {ratio:.2f} (cpu x "
          f"{cpu_ratio:.2f}; target <= 1.25) {'ok' if ratio <= 1.25 else 'FAIL'}")
    print(f"  check_conntrack      {med(res['reference'], 'wall') * 1000:7.1f} ms  x floor "
          f"{med(res['reference'], 'wall') / floor:.2f} (same plumbing, no log, no state)")
    bare = med(res["bare"], "wall")
    print(f"  floor, no teardown   {bare * 1000:7.1f} ms  (import nagiosplugin; os._exit(0)): "
          f"plugin x {inc / bare:.2f}, {(inc - bare) * 1000:.1f} ms of its own work")
    print(f"  plugin output:       {res['plugin'][-1].out.split(' | ')[0]}")
    ok &= ratio <= 1.25
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
