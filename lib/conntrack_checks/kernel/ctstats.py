"""The kernel's own conntrack counters (drop, early_drop, insert_failed, ...).

Two sources, both per network namespace (read in the namespace the process
is in) and both per CPU:

- ``/proc/net/stat/nf_conntrack`` (``ip_conntrack`` on old kernels): a
  header of column names, then one row of hex values per possible CPU.
  Columns are found by name, never by position: ``searched`` became
  ``clashres`` in 5.10 and ``delete_list`` became ``chainlength`` in 5.15.
  ``entries`` is the namespace's count repeated on every row.
- ctnetlink (``conntrack -S``) for kernels built without
  CONFIG_NF_CONNTRACK_PROCFS; see ``ctnetlink.py``, imported only then.

Counters are unsigned 32-bit per CPU and wrap. Names follow ``conntrack -S``
(the kernel's field names), so both sources give the same names.

Not every column is measured: the kernel keeps printing columns whose
counters it no longer keeps, as a constant 0 (ct_cpu_seq_show). The header
tells the generation, never the version number (distributions backport):

- with ``clashres`` (5.10+): ``new``, ``ignore``, ``delete`` and, until its
  rename to ``chainlength`` in 5.15, ``delete_list`` are printed as 0;
- with ``searched`` and ``search_restart`` (2.6.3x to 5.9): from 4.10 on
  ``searched``, ``new``, ``delete`` and ``delete_list`` are printed as 0,
  before that they count every lookup. The header is the same for both, so
  these four count as filled only once one CPU shows a value;
- 16 columns (before search_restart): every column is filled.

Without ``clashres``, ``insert_failed`` also counts the clashes the kernel
then resolved (the packet was kept): an everyday event on busy hosts, so
it is no sign of loss there.
"""

from __future__ import annotations

import os

from .. import deltas, state
from ..errors import ModuleMissing, ProbeError
from . import netns, sysctl

STAT_FILES = ("net/stat/nf_conntrack", "net/stat/ip_conntrack")
# Column of the proc file -> name of the counter (as ctnetlink names it).
RENAMED = {"clashres": "clash_resolve", "chainlength": "chaintoolong", "icmp_error": "error"}
COUNTER_LIMIT = 2**32
# 17 columns of 9 bytes per CPU: room for thousands of CPUs.
STAT_FILE_LIMIT = 4 * 1024 * 1024
NETLINK_ORIGIN = "ctnetlink (IPCTNL_MSG_CT_GET_STATS_CPU, as conntrack -S)"
SOURCES = ("auto", "proc", "netlink")
PROCFS_MISSING = ("kernel built without CONFIG_NF_CONNTRACK_PROCFS")


# Printed as a constant 0 by every kernel that has the clash_resolve column.
UNFILLED_SINCE_5_10 = ("new", "ignore", "delete", "delete_list")
# Printed as 0 from 4.10 on, counted before: the same header for both.
UNFILLED_SINCE_4_10 = ("searched", "new", "delete", "delete_list")


class Snapshot:
    """One reading of a namespace's counters: per CPU, and where they came from."""

    __slots__ = ("cpus", "entries", "names", "origin", "source")

    def __init__(self, source: str, origin: str, names: list[str],
                 cpus: list[tuple[int, dict[str, int]]], entries: int | None = None):
        self.source = source  # "proc" or "netlink"
        self.origin = origin  # the file, or the netlink request
        self.names = names  # counters in the kernel's order, without entries
        self.cpus = cpus  # [(cpu, {name: value})]
        self.entries = entries

    def totals(self) -> dict[str, int]:
        """Each counter summed over CPUs (each CPU's value is modulo 2^32)."""
        return {name: sum(values.get(name, 0) for _, values in self.cpus)
                for name in self.names}

    @property
    def has_clash_resolve(self) -> bool:
        """5.10+: drops can be split into table full and failed inserts."""
        return "clash_resolve" in self.names

    @property
    def filled(self) -> list[str]:
        """The counters this kernel really keeps, in its order (see the module doc)."""
        return filled(self.names, self.cpus)


def filled(names: list[str], cpus) -> list[str]:
    """``names`` without the columns the kernel prints as a constant 0."""
    if "clash_resolve" in names:
        return [n for n in names if n not in UNFILLED_SINCE_5_10]
    if "search_restart" not in names:
        return list(names)
    counted = {n for _, values in cpus for n in UNFILLED_SINCE_4_10 if values.get(n)}
    return [n for n in names if n not in UNFILLED_SINCE_4_10 or n in counted]


def table_full(drop: int, insert_failed: int, chaintoolong: int) -> int:
    """Drops for a full table (5.10+): drop - (insert_failed - chaintoolong).

    chaintoolong counts inserts refused for a long hash chain: they bump
    insert_failed but drop no packet; the other failed inserts each drop one.
    """
    clashes = max(0, insert_failed - chaintoolong)
    return min(drop, max(0, drop - clashes))


def drop_causes(drop: int, insert_failed: int, chaintoolong: int) -> dict[str, int]:
    """5.10+: {"table_full": ..., "clash_drop": ...}, the two causes of ``drop``."""
    full = table_full(drop, insert_failed, chaintoolong)
    return {"table_full": full, "clash_drop": drop - full}


def parse_stat_file(text: str, path: str) -> Snapshot:
    lines = [line.split() for line in text.splitlines() if line.strip()]
    if not lines or "entries" not in lines[0]:
        raise ProbeError(f"{path} has no 'entries' header: not a conntrack stat file "
                         "(check --proc-root)")
    header = lines[0]
    if not all(word.replace("_", "").isalnum() and word.isascii() for word in header):
        raise ProbeError(f"{path} has an unreadable header: not a conntrack stat file")
    if len(lines) < 2:
        raise ProbeError(f"{path} has a header but no per-CPU rows")
    cpus = []
    entries = None
    for index, row in enumerate(lines[1:]):
        if len(row) != len(header):
            raise ProbeError(f"{path} row {index + 1} has {len(row)} values for "
                             f"{len(header)} columns: not a conntrack stat file")
        values = {}
        for column, word in zip(header, row):
            try:
                value = int(word, 16)
            except ValueError:
                raise ProbeError(f"{path} row {index + 1} holds {word[:20]!r} in column "
                                 f"{column}, not a hex number") from None
            if value < 0 or value >= COUNTER_LIMIT:
                raise ProbeError(f"{path} row {index + 1} holds {word[:20]!r} in column "
                                 f"{column}: more than a 32-bit kernel counter")
            if column == "entries":
                entries = value if entries is None else entries
            else:
                values[RENAMED.get(column, column)] = value
        cpus.append((index, values))
    names = [RENAMED.get(c, c) for c in header if c != "entries"]
    return Snapshot("proc", path, names, cpus, entries)


def read_proc(roots: sysctl.Roots) -> Snapshot | None:
    """The stat file of the current namespace; None when no such file exists."""
    for rel in STAT_FILES:
        path = roots.proc_path(rel)
        try:
            text = sysctl.read_text(path, limit=STAT_FILE_LIMIT)
        except FileNotFoundError:
            continue
        return parse_stat_file(text, path)
    return None


def read_netlink(roots: sysctl.Roots, where: str = f"in {netns.CURRENT}") -> Snapshot:
    from . import ctnetlink  # socket and struct only on this path

    rows = ctnetlink.read_stats_cpu(where)
    names: list[str] = []
    for _, values in rows:
        names.extend(n for n in values if n not in names)
    try:
        entries = sysctl.read_count(roots)[0]
    except ProbeError:
        entries = None
    return Snapshot("netlink", NETLINK_ORIGIN, names, rows, entries)


def read(roots: sysctl.Roots, source: str = "auto", where: str = f"in {netns.CURRENT}") -> Snapshot:
    """The counters from ``source``: auto = the proc file, else ctnetlink."""
    if source != "netlink":
        found = read_proc(roots)
        if found is not None:
            return found
        if not sysctl.module_loaded(roots):
            raise ModuleMissing("nf_conntrack is not loaded: no connections are tracked "
                                f"(no {roots.proc_path(STAT_FILES[0])})")
        if source == "proc":
            raise ProbeError(f"nf_conntrack is loaded but {roots.proc_path(STAT_FILES[0])} "
                             f"is missing ({PROCFS_MISSING}, or --proc-root is not a "
                             "procfs): use --source netlink")
        try:
            return read_netlink(roots, where)
        except ProbeError as exc:
            raise ProbeError(f"no {roots.proc_path(STAT_FILES[0])} ({PROCFS_MISSING}) "
                             f"and {exc}") from None
    if not sysctl.module_loaded(roots):
        # ctnetlink would load nf_conntrack: a check must not change the system.
        raise ModuleMissing("nf_conntrack is not loaded: no connections are tracked "
                            f"(no {roots.sys_path(sysctl.MODULE_DIRS[0])})")
    return read_netlink(roots, where)


class Reading:
    """One namespace's counters; ``change`` is filled by deltas.update()."""

    __slots__ = ("change", "inode", "ns", "snapshot")

    def __init__(self, ns: netns.Namespace, snapshot: Snapshot, inode: int | None):
        self.ns = ns
        self.snapshot = snapshot
        self.inode = inode  # tells a namespace created again under the same name
        self.change = None

    @property
    def table_full(self) -> int | None:
        """The estimate of drops for a full table (5.10+), once compared."""
        return None if self.change is None else self.change.deltas.get("table_full")


def own_inode(roots: sysctl.Roots) -> int | None:
    try:
        return os.stat(roots.proc_path("self/ns/net")).st_ino
    except OSError:
        return None


def read_each(roots: sysctl.Roots, namespaces: list[netns.Namespace], source: str = "auto",
              all_netns: bool = False) -> tuple[list[Reading], list]:
    """The counters of each namespace (entered in turn): (readings, [(ns, why not)])."""
    def snapshot(ns):
        where = f"in {ns.describe()}"
        inode = ns.inode if ns.inode is not None else own_inode(roots)
        return read(roots, source, where), inode

    done, unreadable = netns.read_each(namespaces, snapshot, all_netns)
    return [Reading(ns, snap, inode) for ns, (snap, inode) in done], unreadable


def compare_all(data, readings, boot: str | None, now: float, all_netns: bool = False,
                keep=()) -> tuple[dict, list[str]]:
    """Every reading (ctstats.Reading) against the stored ``data``: sets
    each ``reading.change`` (with the 5.10+ drop causes) and returns the
    new state and the notes. ``keep``: names of namespaces not read this
    time whose baselines stay.
    """
    notes = []
    data = data or {}
    stored = data.get("namespaces")
    stored = stored if isinstance(stored, dict) else {}
    old_boot = data.get("boot_id")
    rebooted = None if boot is None or old_boot is None else boot != old_boot
    fresh = 0
    for reading in readings:
        previous = stored.get(reading.ns.name)
        change = reading.change = deltas.compare(previous, reading.snapshot, reading.inode, now,
                                          rebooted, reading.ns.describe())
        d = change.deltas
        if reading.snapshot.has_clash_resolve and not change.baseline:
            d.update(drop_causes(d.get("drop", 0), d.get("insert_failed", 0),
                                 d.get("chaintoolong", 0)))
        fresh += previous is None and bool(stored)
        prefix = reading.ns.prefix(all_netns)
        notes.extend(prefix + note for note in change.notes)
    if fresh and all_netns:
        notes.append(f"baseline stored for {fresh} new namespace" + ("s" if fresh > 1 else ""))
    namespaces = {name: entry for name, entry in stored.items() if name in set(keep)}
    for reading in readings:
        namespaces[reading.ns.name] = deltas.entry(reading.snapshot, reading.inode, now)
    return {"boot_id": boot, "namespaces": namespaces}, notes


def update_baselines(store: state.StateFile, readings, proc_root: str = "/proc",
                     all_netns: bool = False, keep=()) -> list[str]:
    """Compare with the baseline in ``store`` and save the new one, under its
    lock (which the caller holds). Returns the notes; raises StateError."""
    now = deltas.clock()
    data, note = store.load()
    notes = [note] if note else []
    if data is not None and not isinstance(data.get("namespaces"), dict):
        notes.append(f"state {store.path} held no namespaces: baseline reset")
        data = None
    new, more = compare_all(data, readings, state.boot_id(proc_root), now, all_netns, keep)
    store.save(new)
    return notes + more


def report_section(roots: sysctl.Roots | None = None, source: str = "auto") -> dict:
    """The counters of the current namespace for conntrack-report, as JSON-able data.

    Totals count since the namespace was created or nf_conntrack loaded;
    each CPU's value is modulo 2^32. Raises ProbeError (ModuleMissing when
    nf_conntrack is not loaded). No state is read or written.
    """
    snap = read(roots or sysctl.Roots(), source)
    totals = snap.totals()
    estimate = None
    if snap.has_clash_resolve:
        estimate = table_full(totals.get("drop", 0), totals.get("insert_failed", 0),
                              totals.get("chaintoolong", 0))
    return {
        "source": snap.source,
        "origin": snap.origin,
        "entries": snap.entries,
        "counters": list(snap.names),
        "totals": totals,
        "table_full_drops": estimate,
        "cpus": [dict(values, cpu=cpu) for cpu, values in snap.cpus],
    }
