#!/usr/bin/env python3
"""conntrack-checks.pyz against the venv install: whole-process wall time of each plugin.

    .venv/bin/python tests/bench/bench_pyz.py dist/conntrack-checks.pyz [--runs 60]

Each plugin runs from the venv (its script, the venv's /usr/bin/python3,
bytecode cached) and from the .pyz through a symlink named after it (its
shebang: /usr/bin/python3, the bytecode inside the file), interleaved in a new
random order each round, plus the floor ``python -c "import nagiosplugin"``.
Prints the medians and the .pyz/venv ratio; the target is 1.15 (issue 12).
With --source-only it also times a copy of the .pyz without its bytecode:
what another Python version (3.8, 3.13: the magic number differs) pays.

Not part of the test suite: numbers depend on the machine, ratios less so.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path

BIN = Path(sys.executable).parent
PLUGINS = ["check_conntrack", "check_conntrack_hash", "check_conntrack_tuning",
           "check_conntrack_stats"]
TARGET = 1.15


def wall(cmd: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)
    return time.perf_counter() - start


def without_bytecode(pyz: Path, target: Path) -> None:
    with zipfile.ZipFile(pyz) as src, zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED) as dst:
        for info in src.infolist():
            if not info.filename.endswith(".pyc"):
                dst.writestr(info, src.read(info))
    target.write_bytes(b"#!/usr/bin/python3\n" + target.read_bytes())
    target.chmod(0o755)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("pyz", type=Path)
    parser.add_argument("--runs", type=int, default=60)
    parser.add_argument("--source-only", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        links = Path(tmp) / "plugins"
        links.mkdir()
        state = Path(tmp) / "state"
        pyz = links / "conntrack-checks.pyz"
        pyz.write_bytes(args.pyz.read_bytes())
        pyz.chmod(0o755)
        variants = {"venv": BIN, "pyz": links}
        if args.source_only:
            src = Path(tmp) / "source"
            src.mkdir()
            without_bytecode(args.pyz, src / "conntrack-checks.pyz")
            variants["pyz source only"] = src
        commands = {"floor": [sys.executable, "-c", "import nagiosplugin"]}
        for plugin in PLUGINS:
            for variant, directory in variants.items():
                if directory != BIN:
                    os.symlink("conntrack-checks.pyz", directory / plugin)
                commands[f"{plugin} {variant}"] = [str(directory / plugin),
                                                   "--state-dir", str(state)] \
                    if plugin == "check_conntrack_stats" else [str(directory / plugin)]
        times: dict[str, list[float]] = {name: [] for name in commands}
        for cmd in commands.values():
            wall(cmd)
        for _ in range(args.runs):
            order = list(commands)
            random.shuffle(order)
            for name in order:
                times[name].append(wall(commands[name]))
    medians = {name: statistics.median(values) for name, values in times.items()}
    ok = True
    print(f"{'command':<44} {'median ms':>10} {'x venv':>7}")
    for name, value in medians.items():
        plugin = name.split()[0]
        venv = medians.get(f"{plugin} venv")
        ratio = value / venv if venv else float("nan")
        verdict = ""
        if name.endswith(" pyz"):
            verdict = "  ok" if ratio <= TARGET else f"  OVER {TARGET}"
            ok &= ratio <= TARGET
        print(f"{name:<44} {value * 1000:>10.1f} {ratio:>7.2f}{verdict}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
