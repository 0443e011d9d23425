#!/usr/bin/env python3
"""Whole-process wall time of each plugin against the ``import nagiosplugin`` floor.

    .venv/bin/python tests/bench/bench_startup.py [--runs 40] [--netns 200]

Runs the floor (``python -c "import nagiosplugin"``, same interpreter as the
plugins' shebang) and every plugin interleaved, in a new random order each
round, and prints medians and the ratio to the floor; also to the floor
without the interpreter's teardown ("bare"), which the plugins skip
(plugin.execute), to show their own work. With ``--netns N``
(root) it also creates N empty network namespaces and times
``check_conntrack --all-netns`` over them, then deletes them. With
``--tricks`` it times, instead, what each start-up trick of
conntrack_checks/speed.py saves: the same Python line with and without it.

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

import conntrack_checks

BIN = Path(sys.executable).parent
# Each plugin as it is usually called. The stateful ones keep their state in a
# private directory of this run (their default is /var/lib/conntrack-checks).
PLUGINS = [
    "check_conntrack",
    "check_conntrack_hash",
    "check_conntrack_stats",
    "check_conntrack_log --source kmsg",
    "check_conntrack_tuning",
]


# As on a real host: bytecode cached (some shells set PYTHONDONTWRITEBYTECODE).
ENV = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}


def wall(cmd: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False,
                   env=ENV)
    return time.perf_counter() - start


def interleaved(commands: dict[str, list[str]], runs: int) -> dict[str, float]:
    times: dict[str, list[float]] = {name: [] for name in commands}
    for cmd in commands.values():  # warm the page cache and .pyc files
        wall(cmd)
    for _ in range(runs):
        order = list(commands)
        random.shuffle(order)
        for name in order:
            times[name].append(wall(commands[name]))
    return {name: statistics.median(values) for name, values in times.items()}


def report(medians: dict[str, float], floor: str, bare: str, target: float | None) -> bool:
    """Ratios to the floor (the target) and to the floor without teardown (own work)."""
    base = medians[floor]
    ok = True
    print(f"{'command':<44} {'median ms':>10} {'x floor':>8} {'x bare':>7}")
    for name, value in medians.items():
        ratio = value / base
        verdict = ""
        if target is not None and name not in (floor, bare):
            verdict = "  ok" if ratio <= target else f"  OVER {target}"
            ok &= ratio <= target
        print(f"{name:<44} {value * 1000:>10.1f} {ratio:>8.2f} {value / medians[bare]:>7.2f}"
              f"{verdict}")
    return ok


CHECK = "from conntrack_checks.checks import check_conntrack as c"
# speed.py's tricks: (what, the line with it, the line without it).
TRICKS = [
    ("1. argparse without gettext", "import conntrack_checks",
     "import argparse, conntrack_checks"),
    ("2. argparse phrases untranslated", f"import gettext; {CHECK}; c.parser()",
     f"import gettext; {CHECK}; c.plugin.argparse._ = gettext.gettext; c.parser()"),
    ("3. fixed help width", f"{CHECK}; c.parser()",
     f"{CHECK}; c.plugin.speed.HelpFormatter = c.plugin.argparse.HelpFormatter; c.parser()"),
    ("4. no teardown (os._exit)", f"import os; {CHECK}; os._exit(0)", CHECK),
    ("5. no dataclasses", "import nagiosplugin", "import nagiosplugin, dataclasses"),
    ("5. no typing", "import nagiosplugin", "import nagiosplugin, typing"),
    ("5. no subprocess", "import nagiosplugin", "import nagiosplugin, subprocess"),
    ("5. no socket", "import nagiosplugin", "import nagiosplugin, socket"),
]


def tricks(runs: int) -> None:
    """Median ms of each line with and without each trick, and what the trick saves."""
    commands = {}
    for what, with_it, without in TRICKS:
        commands[(what, "with")] = [sys.executable, "-c", with_it]
        commands[(what, "without")] = [sys.executable, "-c", without]
    medians = interleaved(commands, runs)
    print(f"{'trick (speed.py)':<36} {'with ms':>8} {'without':>8} {'saves ms':>9}")
    for what, _, _ in TRICKS:
        with_it, without = medians[(what, "with")], medians[(what, "without")]
        print(f"{what:<36} {with_it * 1000:>8.1f} {without * 1000:>8.1f} "
              f"{(without - with_it) * 1000:>9.1f}")


def plugin_commands(plugins: list[str], state_dir: str) -> dict[str, list[str]]:
    commands = {}
    for line in plugins:
        name, *args = line.split()
        if name in ("check_conntrack_stats", "check_conntrack_log"):
            args += ["--state-dir", state_dir]
        commands[line] = [str(BIN / name), *args]
    return commands


def many_namespaces(count: int, runs: int) -> float:
    names = [f"ctcbench{os.getpid()}n{i}" for i in range(count)]
    try:
        for name in names:
            subprocess.run(["ip", "netns", "add", name], check=True)
        cmd = [str(BIN / "check_conntrack"), "--all-netns"]
        out = subprocess.run(cmd, capture_output=True, text=True).stdout
        print(f"\n{' '.join(cmd)} over {count} extra namespaces:\n  {out.split(' | ')[0]}")
        return statistics.median(wall(cmd) for _ in range(runs))
    finally:
        for name in names:
            subprocess.run(["ip", "netns", "del", name], check=False)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=40)
    parser.add_argument("--netns", type=int, default=0, metavar="N",
                        help="also time --all-netns over N namespaces (root)")
    parser.add_argument("--tricks", action="store_true",
                        help="time what each start-up trick of speed.py saves instead")
    parser.add_argument("--plugins", nargs="+", default=PLUGINS, metavar="ARGV",
                        help="plugin command lines to time, e.g. 'check_conntrack_log "
                             "--source kmsg' (default: each plugin's usual call)")
    args = parser.parse_args()
    if args.tricks:
        print(f"interpreter {sys.executable}, {args.runs} interleaved rounds")
        tricks(args.runs)
        return 0
    floor = f"{Path(sys.executable).name} -c 'import nagiosplugin'"
    commands = {floor: [sys.executable, "-c", "import nagiosplugin"]}
    # The plugins leave without the interpreter's teardown (plugin.execute):
    # the same floor without it shows what their own work costs.
    bare = f"{Path(sys.executable).name} -c '...; os._exit(0)' (bare)"
    commands[bare] = [sys.executable, "-c", "import os, nagiosplugin; os._exit(0)"]
    state_dir = tempfile.mkdtemp(prefix="ctc-bench-")
    commands.update(plugin_commands(args.plugins, state_dir))
    # Compile the suite's bytecode once, as pip does at install time.
    subprocess.run([sys.executable, "-m", "compileall", "-q",
                    str(Path(conntrack_checks.__file__).parent)], check=True, env=ENV)
    print(f"interpreter {sys.executable}, {args.runs} interleaved rounds")
    try:
        ok = report(interleaved(commands, args.runs), floor, bare, target=1.25)
    finally:
        shutil.rmtree(state_dir, ignore_errors=True)
    if args.netns:
        median = many_namespaces(args.netns, max(5, args.runs // 4))
        verdict = "ok" if median < 1.0 else "OVER 1 s"
        print(f"  median {median * 1000:.1f} ms ({verdict})")
        ok &= median < 1.0
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
