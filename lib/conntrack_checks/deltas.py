"""What per-CPU kernel counters did between two runs: deltas, wraps, resets.

A baseline entry (JSON, kept by ``state.StateFile``) holds one namespace's
per-CPU values, the source they came from, the namespace's inode and the
boot-time clock. The next run compares:

- a value below the baseline by more than 2^31 wrapped (32-bit counter);
  by less, the counters restarted (nf_conntrack reloaded): everything is
  then counted from 0, which is what happened since the restart;
- another boot id (reboot) or another namespace inode (namespace created
  again) also count from 0;
- time is CLOCK_BOOTTIME (never jumps with the wall clock, counts suspend);
  a clock that went back gives deltas without rates.
"""

from __future__ import annotations

import time

WRAP = 2**32
HALF = 2**31
# Rates over less than this are noise (two runs racing): deltas only.
MIN_ELAPSED = 1.0
PER = {"second": 1.0, "minute": 60.0}


def clock() -> float:
    try:
        return time.clock_gettime(time.CLOCK_BOOTTIME)
    except (AttributeError, OSError):
        return time.monotonic()


class Change:
    """One namespace's counters since the baseline."""

    __slots__ = ("baseline", "deltas", "elapsed", "notes", "per_cpu", "wrapped")

    def __init__(self, baseline: bool = False):
        self.baseline = baseline  # no deltas this run: first run or unusable baseline
        self.per_cpu: dict[int, dict[str, int]] = {}
        self.deltas: dict[str, int] = {}
        self.elapsed: float | None = None
        self.notes: list[str] = []
        self.wrapped: list[tuple[int, str]] = []

    def rate(self, name: str, per: str) -> float | None:
        """The delta per second/minute, or per check (the delta itself)."""
        delta = self.deltas.get(name)
        if delta is None:
            return None
        if per == "check":
            return delta
        if self.elapsed is None or self.elapsed < MIN_ELAPSED:
            return None
        return delta * PER[per] / self.elapsed


def entry(snapshot, inode: int | None, now: float) -> dict:
    return {
        "source": snapshot.source,
        "inode": inode,
        "clock": now,
        "wall": time.time(),
        "cpus": {str(cpu): dict(values) for cpu, values in snapshot.cpus},
    }


def _valid(previous) -> bool:
    if not isinstance(previous, dict) or not isinstance(previous.get("cpus"), dict):
        return False
    if not isinstance(previous.get("clock"), (int, float)) or isinstance(previous["clock"], bool):
        return False
    for values in previous["cpus"].values():
        if not isinstance(values, dict):
            return False
        for value in values.values():
            if type(value) is not int or not 0 <= value < WRAP:
                return False
    return True


def compare(previous, snapshot, inode: int | None, now: float,
            rebooted: bool | None, what: str = "the namespace") -> Change:
    """The change from ``previous`` (a stored entry or None) to ``snapshot``.

    ``rebooted``: True/False from the boot ids, None when unknown.
    """
    if previous is None:
        return Change(baseline=True)
    if not _valid(previous):
        change = Change(baseline=True)
        change.notes.append(f"stored baseline of {what} was unusable: baseline reset")
        return change
    if previous.get("source") != snapshot.source:
        change = Change(baseline=True)
        change.notes.append(f"counters now come from {snapshot.source}, before from "
                            f"{previous.get('source')}: baseline reset")
        return change
    change = Change()
    elapsed = now - previous["clock"]
    restart = None
    if rebooted or (rebooted is None and elapsed < 0):
        restart = "the machine rebooted since the last check"
        elapsed = None
    elif inode is not None and previous.get("inode") not in (None, inode):
        restart = f"{what} was created again since the last check"
    elif elapsed < 0:
        change.notes.append(f"the clock went back {-elapsed:.0f}s since the last check: "
                            "no rates this time")
        elapsed = None
    change.elapsed = elapsed
    old_cpus = previous["cpus"]
    if restart is None:
        restart = _deltas(change, old_cpus, snapshot)
    if restart is not None:
        change.wrapped = []
        change.per_cpu = {cpu: dict(values) for cpu, values in snapshot.cpus}
        change.notes.append(f"{restart}: counted from 0")
    else:
        for cpu, name in change.wrapped:
            change.notes.append(f"{name} on cpu{cpu} wrapped at 2^32")
    change.deltas = {name: sum(d.get(name, 0) for d in change.per_cpu.values())
                     for name in snapshot.names}
    return change


def _deltas(change: Change, old_cpus: dict, snapshot) -> str | None:
    """Fill per-CPU deltas; returns why counting restarts from 0, if it must."""
    fresh = []
    for cpu, values in snapshot.cpus:
        old = old_cpus.get(str(cpu))
        if old is None:
            fresh.append(cpu)
            change.per_cpu[cpu] = dict.fromkeys(values, 0)
            continue
        deltas = change.per_cpu[cpu] = {}
        for name, value in values.items():
            before = old.get(name)
            if before is None:
                deltas[name] = 0
            elif value >= before:
                deltas[name] = value - before
            elif before - value > HALF:
                deltas[name] = value + WRAP - before
                change.wrapped.append((cpu, name))
            else:
                return (f"{name} on cpu{cpu} went back from {before} to {value} "
                        "(nf_conntrack reloaded?)")
    if fresh:
        change.notes.append("no baseline for " + ", ".join(f"cpu{c}" for c in fresh)
                            + ": counted from the next run")
    return None

