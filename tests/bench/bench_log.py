#!/usr/bin/env python3
"""check_conntrack_log on large syslog files of every kind against grep, and incremental runs.

    .venv/bin/python tests/bench/bench_log.py [--size-mib 1024] [--kinds a,b] [--runs 15]
                                              [--scan-runs 5] [--dir /var/tmp]

1. Full scan, one file per content kind (KINDS): SIZE of syslog lines 60 B to
   1,000 B long, with no table-full line, a burst now and then, one in
   every 100 lines, or one long incident whose every line is stamped within
   the same minute; "callbacks suppressed" lines near the table-full lines
   or far from them; stamped ``Mmm dd HH:MM:SS`` or, as rsyslog does since
   Debian 12, RFC 3339 with each line's own microseconds; every block
   stamped with one second, or every line with its own time, a second
   later every 200 lines (a day-long incident on a busy central log host:
   a new second every two or three table-full lines); an incident of
   "expectation table full" lines (counted too, not by grep's pattern);
   every line holding the search key ``_conn`` but no conntrack. The installed
   plugin reads it from the start
   (``--lookback 3650d --window 3650d``, fresh state each time) against
   ``grep -c -E '(ip|nf)_conntrack: (nf_conntrack: )?table full'``, both
   from the page cache, interleaved, medians of --scan-runs. One ratio per
   kind, plugin / grep wall time: <= 1.25 passes. Both counts are printed
   (they must agree), and the floor (``python -c "import nagiosplugin"``,
   interleaved too) of each kind: this VM has slow spells (a floor of 38
   ms against 30), which slow the plugin's Python more than grep. Peak
   RSS of the plugin on the first kind is compared with a run on a file
   1/16 the size (constant memory: the difference
   stays under 16 MiB), both under a small launcher so that this script's
   own memory does not count; the same on a day of table-full lines.
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

BIN = Path(sys.executable).parent
PLUGIN = str(BIN / "check_conntrack_log")
FLOOR = [sys.executable, "-c", "import nagiosplugin"]  # the incremental run's floor
GREP_PATTERN = "(ip|nf)_conntrack: (nf_conntrack: )?table full"
NOISE = [
    "systemd[1]: Started session-{n}.scope - Session {n} of User root.",
    "sshd[{n}]: Accepted publickey for deploy from 10.0.{a}.{b} port {n} ssh2: ED25519 SHA256:x",
    "kernel: [{n}.123456] IPv4: martian source 10.0.{a}.{b} from 10.1.{a}.{b}, on dev eth0",
    "CRON[{n}]: (root) CMD (command -v debian-sa1 > /dev/null && debian-sa1 1 1)",
    "kernel: [{n}.654321] eth0: renamed from veth{n}; conntrackd[{n}]: sync ok",
    "dhclient[{n}]: DHCPREQUEST for 10.0.{a}.{b} on eth0 to 10.0.0.1 port 67",
    "kernel: [{n}.222222] [UFW BLOCK] IN=eth0 OUT= MAC=00:16:3e:{a:02x}:{b:02x}:01 "
    "SRC=10.0.{a}.{b} DST=10.1.{b}.{a} LEN=60 TOS=0x00 PREC=0x00 TTL=63 ID={n} DF PROTO=TCP "
    "SPT={n} DPT=443 WINDOW=64240 RES=0x00 SYN URGP=0",
    "kernel: [{n}.333333] audit: type=1400 audit({n}.123:{a}): apparmor=\"DENIED\" "
    "operation=\"open\" profile=\"snap.lxd\" name=\"/proc/{n}/status\" pid={n} comm=\"lxd\"",
]
TABLE_FULL = ("kernel: [{n}.444444] nf_conntrack: nf_conntrack: table full in netns 4026532246, "
              "dropping packet")
SUPPRESSED = "kernel: [{n}.555555] net_ratelimit: {a} callbacks suppressed"
STAMP = "%b %d %H:%M:%S"
BLOCK = 8 << 20  # files are written as blocks of this size, each with its own time stamp
STEP = 600  # seconds between blocks (more than the 5 minutes of attribution)

# name: (line length (0: as the noise comes, 60-250 B), a table-full line every N lines
# (0: none), a burst of 10 at the end of each block, suppressed lines after the table-full
# ones, suppressed lines every 1000 lines, every block stamped the same minute, every
# line stamped RFC 3339 with its own microseconds as rsyslog does since Debian 12, a
# second later every N lines (0: one stamp a block))
KINDS = {
    "quiet": (0, 0, False, False, False, False, False, 0),
    "quiet-60B": (60, 0, False, False, False, False, False, 0),
    "quiet-1000B": (1000, 0, False, False, False, False, False, 0),
    "bursts": (0, 0, True, True, False, False, False, 0),
    "bursts-far-suppressed": (0, 0, True, False, True, False, False, 0),
    "one-in-100-60B": (60, 100, False, True, False, False, False, 0),
    "one-in-100-1000B": (1000, 100, False, True, False, False, False, 0),
    "incident-one-minute": (0, 10000, False, True, False, True, False, 0),
    "one-in-100-60B-rfc3339": (60, 100, False, True, False, False, True, 0),
    "one-in-100-60B-a-day": (60, 100, False, True, False, False, False, 200),
    "one-in-100-60B-a-day-rfc3339": (60, 100, False, True, False, False, True, 200),
    "one-in-2000-60B-a-day": (60, 2000, False, True, False, False, False, 200),
    "bursts-a-day": (0, 0, True, True, False, False, False, 100),
    "expectation-one-in-100-60B": (60, 100, False, False, False, False, False, 0),
    "false-hits-60B": (60, 0, False, False, False, False, False, 0),
}
# Kinds whose lines found say something else than TABLE_FULL (an incident of the helpers'
# expectation table, a separate finding that grep's pattern does not count), or whose
# noise is another: every line holds "_conn" (the scan's search key) but no conntrack.
FOUND = {"expectation-one-in-100-60B": "kernel: [{n}.444444] nf_conntrack: expectation table full"}
OTHER_NOISE = {"false-hits-60B": ["nginx[{n}]: {n} worker_connections are not enough",
                                  "mysqld[{n}]: max_connections reached ({n})"]}


def text(rnd: random.Random, template: str) -> str:
    return template.format(n=rnd.randrange(100000), a=rnd.randrange(256), b=rnd.randrange(256))


def stamp_of(kind: str, when: float) -> str:
    """The time stamp of a line of ``kind`` to the second."""
    if KINDS[kind][6]:
        return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(when))
    return time.strftime(STAMP, time.localtime(when))


def noise(rnd: random.Random, length: int, templates: list[str] = NOISE) -> str:
    """One noise line's text, padded or cut to ``length`` (0: as it comes)."""
    line = text(rnd, rnd.choice(templates))
    if length:
        while len(line) < length:
            line += " " + text(rnd, rnd.choice(templates))
        line = line[:length]
    return line


def block(size: int, seed: int, kind: str = "bursts", when: float | None = None) -> bytes:
    """About ``size`` bytes of syslog lines of ``kind``, stamped ``when`` (and later)."""
    length, every, burst, near, far, _, micro, per_second = KINDS[kind]
    rnd = random.Random(seed)
    prefix = stamp_of(kind, when) + (".123456+00:00 fw " if micro else " fw ")
    # the line's text is cut so that the whole line has the kind's length
    room = length - len(prefix) - 1 if length else 0
    lines = []
    total = n = full = 0
    while total < size:
        n += 1
        if per_second and n % per_second == 0:
            prefix = stamp_of(kind, when + n // per_second) + prefix[len(stamp_of(kind, when)):]
        if micro:  # each line its own microseconds (same length)
            prefix = prefix[:20] + f"{n % 1000000:06d}" + prefix[26:]
        if every and n % every == 0:
            body = text(rnd, FOUND.get(kind, TABLE_FULL))
            full += 1
            if near and full % 10 == 0:  # as the kernel does: after a burst of 10
                lines.append(prefix + text(rnd, SUPPRESSED) + "\n")
        elif far and n % 1000 == 0:
            body = text(rnd, SUPPRESSED)
        else:
            body = noise(rnd, room, OTHER_NOISE.get(kind, NOISE))
        line = prefix + body + "\n"
        lines.append(line)
        total += len(line)
    if burst:
        lines.extend(prefix + text(rnd, TABLE_FULL) + "\n" for _ in range(10))
        if near:
            lines.append(prefix + text(rnd, SUPPRESSED) + "\n")
    return "".join(lines).encode()


def write_log(path: Path, size: int, kind: str = "bursts") -> None:
    """SIZE of ``kind`` ending now, STEP seconds per BLOCK (1 GiB spans 21 hours), or
    all in one minute, or each line at its own time (a block's lines span as many
    seconds)."""
    one_minute, per_second = KINDS[kind][5], KINDS[kind][7]
    if per_second:  # about 60 B a line
        start = time.time() - size // 60 // per_second
    else:
        start = time.time() - (0 if one_minute else (size // BLOCK) * STEP)
    chunk = None if per_second else block(BLOCK, 1, kind, start)
    first = stamp_of(kind, start).encode()
    with open(path, "wb") as handle:
        written = 0
        when = start
        while written < size:
            if per_second:  # the next block starts where this one's seconds end
                data = block(BLOCK, 1 + written // BLOCK, kind, when)
                when += data.count(b"\n") // per_second + 1
            else:
                later = 0 if one_minute else (written // BLOCK) * STEP
                data = chunk.replace(first, stamp_of(kind, start + later).encode())
            handle.write(data)
            written += len(data)


# Peak RSS is measured on the first kind and on these: a day of table-full lines makes
# a count row a minute (of 1,440), not one a second.
RSS_KINDS = ("one-in-100-60B-a-day",)


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
    return [PLUGIN, "--logfile", str(path), "--state-dir", str(state), "--lookback", "3650d",
            "--window", "3650d", "--max-bytes", "64G", "-t", "300"]


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
    parser.add_argument("--kinds", default=",".join(KINDS),
                        help="content kinds to scan, comma-separated (default: all)")
    parser.add_argument("--scan-runs", type=int, default=5)
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--dir", default="/var/tmp")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-log-", dir=args.dir))
    try:
        return run(work, args)
    finally:
        shutil.rmtree(work)


def full_scans(work: Path, args) -> bool:
    """One full scan per content kind against grep; True when every ratio passes."""
    ok = True
    size = args.size_mib << 20
    kinds = [k for k in args.kinds.split(",") if k]
    print(f"full scan of {args.size_mib} MiB from the page cache, plugin / grep -c -E "
          f"(interleaved, medians of {args.scan_runs}; target <= 1.25):")
    print(f"  {'kind':24} {'grep s':>7} {'plugin s':>8} {'wall x':>6} {'cpu x':>6} "
          f"{'floor':>6}  counts (grep, plugin)")
    rss = []
    for index, kind in enumerate(kinds):
        path = work / f"{kind}.log"
        write_log(path, size, kind)
        subprocess.run(["cat", str(path)], stdout=subprocess.DEVNULL, check=True)  # cache
        grep = [shutil.which("grep"), "-c", "-E", GREP_PATTERN, str(path)]
        # The floor (python -c "import nagiosplugin", ms) shows how fast this VM was
        # while the kind ran: a slow spell slows the plugin's Python more than grep.
        res = interleaved({"grep": lambda g=grep: g,
                           "plugin": lambda p=path: scan_cmd(p, work / "state"),
                           "floor": lambda: FLOOR},
                          args.scan_runs)
        ratio = med(res["plugin"], "wall") / med(res["grep"], "wall")
        cpu = med(res["plugin"], "cpu") / med(res["grep"], "cpu")
        counted = res["plugin"][-1].out.split(" table-full")[0].rsplit(" ", 1)[-1]
        print(f"  {kind:24} {med(res['grep'], 'wall'):7.3f} {med(res['plugin'], 'wall'):8.3f} "
              f"{ratio:6.2f} {cpu:6.2f} {med(res['floor'], 'wall') * 1000:6.1f}  "
              f"{res['grep'][-1].out.strip()}, {counted}"
              f"{'' if ratio <= 1.25 else '  FAIL'}", flush=True)
        ok &= ratio <= 1.25
        if index == 0 or kind in RSS_KINDS:
            small = work / "small.log"
            write_log(small, size // 16, kind)
            big_rss = peak_rss(scan_cmd(path, work / "state"))
            small_rss = peak_rss(scan_cmd(small, work / "state"))
            launcher_rss = peak_rss(["true"])
            small.unlink()
            rss.append(f"  peak RSS {big_rss / 1024:.1f} MiB on {args.size_mib} MiB of {kind}, "
                       f"{small_rss / 1024:.1f} MiB on {args.size_mib / 16:.0f} MiB (the "
                       f"launcher alone: {launcher_rss / 1024:.1f} MiB)")
            ok &= big_rss - small_rss < 16 * 1024
        path.unlink()
    print("\n".join(rss))
    return ok


def run(work: Path, args) -> int:
    ok = full_scans(work, args)
    big = work / "kern.log"
    write_log(big, BLOCK)  # a baseline reads only its end
    state = work / "state-inc"
    base = [PLUGIN, "--logfile", str(big), "--state-dir", str(state)]
    subprocess.run(base, stdout=subprocess.DEVNULL, check=False, env=ENV)
    appended = block(1 << 20, 2)
    Run(FLOOR)  # warm the .pyc files
    Run(base)

    def append():
        with open(big, "ab") as handle:
            handle.write(appended)

    reference = [str(BIN / "check_conntrack")]  # the suite's simplest plugin, for scale
    # The plugins leave without the interpreter's teardown (plugin.execute); the
    # same floor without it shows what the plugin's own work costs.
    bare_cmd = [sys.executable, "-c", "import os, nagiosplugin; os._exit(0)"]
    res = interleaved({"floor": lambda: FLOOR, "plugin": lambda: base,
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
