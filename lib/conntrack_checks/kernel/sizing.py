"""What the conntrack table costs and what the kernel would have chosen.

The kernel sizes the hash at boot from the RAM (1/16384 of it, in bucket
pointers) with steps and a minimum that changed three times, and derives the
max from the buckets. The generation is told by content (files and the stat
header), never by the version string; where content cannot tell two
generations apart, both are candidates. Memory per entry comes from the
``nf_conntrack`` slab (root only), else the documented typical size.
"""

from __future__ import annotations

import os
import sys

from ..errors import ProbeError
from . import sysctl

GIB = 1 << 30
# Typical nf_conntrack object size of an x86-64 distribution kernel, used
# when /proc/slabinfo (mode 0400) cannot be read.
TYPICAL_ENTRY_BYTES = 320
PAGE_BYTES = 4096


class Era:
    """One generation of the kernel's default sizing."""

    def __init__(self, key, name, steps, minimum, factor, list_heads=1, rounded=True,
                 steps_need_64bit=()):
        self.key = key
        self.name = name
        self.steps = steps  # ((RAM above, buckets), ...) biggest first
        self.minimum = minimum
        self.factor = factor  # max = factor x buckets when hashsize= is not given
        self.list_heads = list_heads  # bucket size in pointers
        self.rounded = rounded  # rounded up to a page of bucket heads
        self.steps_need_64bit = steps_need_64bit

    def formula(self, ptr: int) -> str:
        size = ptr * self.list_heads
        parts = [f"RAM/16384/{size}"]
        for above, buckets in self.steps:
            only = " on 64-bit" if above in self.steps_need_64bit else ""
            parts.append(f"{buckets} above {above // GIB} GiB{only}")
        parts.append(f"at least {self.minimum}")
        return (f"{self.name}: buckets = {', '.join(parts)}; max = "
                f"{self.factor} x buckets (8 x when hashsize= is given)")

    def default(self, ram: int, ptr: int, hashsize: int | None = None) -> tuple[int, int]:
        """(buckets, max) the kernel picks at module load for ``ram`` bytes."""
        if hashsize:
            buckets, factor = hashsize, 8
        else:
            buckets = ram // 16384 // (ptr * self.list_heads)
            for above, step in self.steps:
                if ram > above and (above not in self.steps_need_64bit or ptr >= 8):
                    buckets = step
                    break
            buckets = max(buckets, self.minimum)
            factor = self.factor
        if self.rounded:
            per_page = PAGE_BYTES // ptr
            buckets = -(-buckets // per_page) * per_page
        return buckets, factor * buckets


ERAS = {
    "ip_conntrack": Era("ip_conntrack", "ip_conntrack (2.6.x up to 2.6.22)",
                        ((GIB, 8192),), 16, 8, list_heads=2, rounded=False),
    "nf-2.6": Era("nf-2.6", "nf_conntrack 2.6.15 to 3.x", ((GIB, 16384),), 32, 4),
    "nf-4": Era("nf-4", "nf_conntrack 4.0 to 5.14", ((4 * GIB, 65536), (GIB, 16384)), 32, 4),
    "nf-5.15": Era("nf-5.15", "nf_conntrack 5.15 and later",
                   ((4 * GIB, 262144), (GIB, 65536)), 1024, 1,
                   steps_need_64bit=(4 * GIB,)),
}

STAT_FILE = "net/stat/nf_conntrack"


def detect_eras(roots: sysctl.Roots) -> tuple[list[str], str]:
    """Candidate generations of the running kernel and the evidence for them."""
    if not os.path.exists(roots.proc_path(sysctl.MAX_FILES[0])) and any(
            os.path.exists(roots.proc_path(p)) for p in sysctl.MAX_FILES[2:]):
        return ["ip_conntrack"], "only ip_conntrack sysctls exist"
    header = ""
    try:
        with open(roots.proc_path(STAT_FILE), encoding="ascii", errors="replace") as handle:
            header = handle.readline()
    except OSError:
        pass
    columns = header.split()
    if "chainlength" in columns:
        return ["nf-5.15"], f"{roots.proc_path(STAT_FILE)} has the 5.15+ column chainlength"
    if "clashres" in columns:
        return ["nf-4"], f"{roots.proc_path(STAT_FILE)} has the 5.10-5.14 column clashres"
    writable = sysctl.buckets_writable(roots)
    if writable and columns:
        return ["nf-4"], "nf_conntrack_buckets is writable (4.8+) and the stat file predates 5.10"
    if writable:
        return ["nf-4", "nf-5.15"], "nf_conntrack_buckets is writable (4.8+), no stat file"
    return ["nf-2.6", "nf-4"], "nf_conntrack_buckets is read-only (before 4.8)"


def read_ram(roots: sysctl.Roots) -> tuple[int, str]:
    """MemTotal in bytes (totalram_pages, what the kernel's formula uses)."""
    path = roots.proc_path("meminfo")
    try:
        text = sysctl.read_text(path)
    except FileNotFoundError:
        raise ProbeError(f"no {path}: check --proc-root") from None
    for line in text.splitlines():
        if line.startswith("MemTotal:"):
            fields = line.split()
            if len(fields) >= 2 and fields[1].isdigit():
                return int(fields[1]) * 1024, path
    raise ProbeError(f"{path} has no MemTotal line: check --proc-root")


def pointer_size(roots: sysctl.Roots) -> tuple[int, str]:
    """The kernel's pointer size, from the width of /proc/kallsyms addresses."""
    path = roots.proc_path("kallsyms")
    try:
        with open(path, encoding="ascii", errors="replace") as handle:
            first = handle.readline().split()
    except OSError:
        first = []
    if first and len(first[0]) in (8, 16):
        return len(first[0]) // 2, f"{len(first[0])}-digit addresses in {path}"
    return (8 if sys.maxsize > 2**32 else 4), f"{path} unreadable: this Python's pointer size"


class Slab:
    """The nf_conntrack slab: object size and the memory it holds now."""

    def __init__(self, objsize: int | None, active: int = 0, pages_bytes: int = 0,
                 source: str = "", reason: str = ""):
        self.objsize = objsize
        self.active = active
        self.bytes_now = pages_bytes
        self.source = source
        self.reason = reason

    @property
    def entry_bytes(self) -> int:
        return self.objsize or TYPICAL_ENTRY_BYTES


def _is_conntrack_cache(name: str) -> bool:
    if name in ("nf_conntrack", "ip_conntrack"):
        return True
    # 2.6.3x-4.6: one cache per namespace, nf_conntrack_<hex address>
    tail = name[len("nf_conntrack_"):] if name.startswith("nf_conntrack_") else ""
    return bool(tail) and all(c in "0123456789abcdef" for c in tail)


SYSFS_SLAB = "kernel/slab/nf_conntrack"


def read_slab(roots: sysctl.Roots) -> Slab:
    """The nf_conntrack cache from SLUB's sysfs files (small), else /proc/slabinfo."""
    base = roots.sys_path(SYSFS_SLAB)
    try:
        values = {}
        for name in ("slab_size", "objects", "slabs", "order"):
            with open(f"{base}/{name}", encoding="ascii", errors="replace") as handle:
                values[name] = int(handle.read().split()[0])
        held = values["slabs"] * (PAGE_BYTES << values["order"])
        return Slab(values["slab_size"], values["objects"], held, source=f"{base}/slab_size")
    except (OSError, ValueError, IndexError):
        pass  # SLAB allocator, older kernels, or root only (0400 on some kernels)
    path = roots.proc_path("slabinfo")
    try:
        with open(path, encoding="ascii", errors="replace") as handle:
            lines = handle.read().splitlines()
    except PermissionError:
        return Slab(None, reason=f"{base} and {path} are readable by root only")
    except OSError as exc:
        return Slab(None, reason=f"cannot read {path}: {exc.strerror}")
    objsize, active, held = None, 0, 0
    for line in lines:
        if "conntrack" not in line:
            continue
        fields = line.split()
        if len(fields) < 6 or not _is_conntrack_cache(fields[0]):
            continue
        try:
            objsize = int(fields[3])
            active += int(fields[1])
            slabs = int(fields[-2]) if ":" in line else 0
            held += slabs * int(fields[5]) * PAGE_BYTES
        except ValueError:
            continue
    if objsize is None:
        return Slab(None, reason=f"{path} has no nf_conntrack row")
    return Slab(objsize, active, held, source=path)


def full_table_bytes(limit: int, buckets: int, entry: int, ptr: int) -> int:
    """Kernel memory a full table pins in one namespace: entries plus the hash."""
    return limit * entry + buckets * ptr


def fmt_bytes(value: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024 or unit == "TiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return ""  # not reached
