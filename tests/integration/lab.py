"""A conntrack lab on the real kernel: private namespaces filled with UDP flows.

Every namespace gets an nftables rule that uses ``ct state`` (so the kernel
tracks its traffic) and a 10-minute UDP timeout (so entries stay while the
test looks at them); flows go to loopback addresses inside the namespace
only. The global nf_conntrack_max may be lowered; ``close()`` restores it and
deletes every namespace, whatever happened.
"""

from __future__ import annotations

import atexit
import fcntl
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

IN_CI = os.environ.get("CI") == "true"
MAX_FILE = "/proc/sys/net/netfilter/nf_conntrack_max"
# One lab at a time on this machine: the max is global, and --all-netns
# would see another lab's namespaces.
LOCK_FILE = "/run/lock/conntrack-checks-lab.lock"
FLOWS = str(Path(__file__).with_name("flows.py"))
RULES = ("add table inet conntrack_lab; "
         "add chain inet conntrack_lab out { type filter hook output priority 0; }; "
         "add rule inet conntrack_lab out ct state new accept")


def need_root_tools(*tools):
    """Real-kernel tests need root and tools; under CI=true they must run."""
    missing = [t for t in tools if shutil.which(t) is None]
    reason = None
    if os.geteuid() != 0:
        reason = "needs root"
    elif missing:
        reason = f"needs {', '.join(missing)} (tests/run installs them)"
    if reason:
        if IN_CI:
            pytest.fail(f"CI=true: real-kernel test cannot run: {reason}")
        pytest.skip(reason)


def run(*cmd, **kwargs):
    kwargs.setdefault("check", True)
    return subprocess.run(list(cmd), capture_output=True, text=True, timeout=300, **kwargs)


def read_max() -> int:
    with open(MAX_FILE) as handle:
        return int(handle.read())


def write_max(value: int) -> None:
    with open(MAX_FILE, "w") as handle:
        handle.write(f"{value}\n")


_lock = {"file": None, "depth": 0}


def _acquire() -> None:
    """Take the machine-wide lab lock (re-entrant within this process).

    A lab that died without close() (SIGKILL) left its max in the lock file
    and its namespaces behind: the next lab puts both right first.
    """
    if _lock["depth"] == 0:
        os.makedirs(os.path.dirname(LOCK_FILE), exist_ok=True)
        handle = open(LOCK_FILE, "a+")  # noqa: SIM115 (held until _release())
        fcntl.flock(handle, fcntl.LOCK_EX)
        handle.seek(0)
        left = handle.read().strip()
        if left.isdigit():
            write_max(int(left))
        for line in run("ip", "netns", "list").stdout.splitlines():
            name = line.split()[0]
            if name.startswith("ctc") and "x" in name:
                pid = name[3:name.index("x")]
                if pid.isdigit() and not os.path.exists(f"/proc/{pid}"):
                    run("ip", "netns", "del", name, check=False)
        handle.seek(0)
        handle.truncate()
        handle.write(f"{read_max()}\n")
        handle.flush()
        _lock["file"] = handle
    _lock["depth"] += 1


def _release() -> None:
    _lock["depth"] -= 1
    if _lock["depth"] == 0:
        handle = _lock["file"]
        handle.seek(0)
        handle.truncate()
        handle.close()  # releases the flock
        _lock["file"] = None


class Lab:
    def __init__(self, max_entries: int | None = None):
        _acquire()
        self.original_max = read_max()
        self.names: list[str] = []
        self.prefix = f"ctc{os.getpid()}x{id(self) % 10000}"
        self.closed = False
        atexit.register(self.close)
        if max_entries is not None:
            write_max(max_entries)

    def __enter__(self) -> Lab:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def namespace(self, tag: str, flows: int = 0) -> str:
        name = f"{self.prefix}{tag}"
        run("ip", "netns", "add", name)
        self.names.append(name)
        run("ip", "-n", name, "link", "set", "lo", "up")
        run("ip", "netns", "exec", name, "nft", RULES)
        if flows:
            self.fill(name, flows)
        return name

    def fill(self, name: str, flows: int, start: int = 0) -> str:
        """Send ``flows`` new UDP flows inside ``name``; returns the sender's report."""
        done = run("ip", "netns", "exec", name, sys.executable, FLOWS, str(flows), str(start))
        return done.stdout

    def count(self, name: str) -> int:
        """The namespace's count as conntrack-tools sees it (`conntrack -C`)."""
        return int(run("ip", "netns", "exec", name, "conntrack", "-C").stdout)

    def stats(self, name: str) -> dict[str, int]:
        """`conntrack -S` summed over CPUs."""
        total: dict[str, int] = {}
        out = run("ip", "netns", "exec", name, "conntrack", "-S").stdout
        for line in out.splitlines():
            for field in line.split()[1:]:
                key, _, value = field.partition("=")
                total[key] = total.get(key, 0) + int(value)
        return total

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        for name in reversed(self.names):
            run("ip", "netns", "del", name, check=False)
        self.names.clear()
        write_max(self.original_max)
        _release()
