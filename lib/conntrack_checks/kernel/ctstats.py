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
"""

from __future__ import annotations

from ..errors import ModuleMissing, ProbeError
from . import sysctl

STAT_FILES = ("net/stat/nf_conntrack", "net/stat/ip_conntrack")
# Column of the proc file -> name of the counter (as ctnetlink names it).
RENAMED = {"clashres": "clash_resolve", "chainlength": "chaintoolong", "icmp_error": "error"}
COUNTER_LIMIT = 2**32
# 17 columns of 9 bytes per CPU: room for thousands of CPUs.
STAT_FILE_LIMIT = 4 * 1024 * 1024
NETLINK_ORIGIN = "ctnetlink (IPCTNL_MSG_CT_GET_STATS_CPU, as conntrack -S)"
SOURCES = ("auto", "proc", "netlink")
PROCFS_MISSING = ("kernel built without CONFIG_NF_CONNTRACK_PROCFS")


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


def table_full(drop: int, insert_failed: int, chaintoolong: int) -> int:
    """Drops for a full table (5.10+): drop - (insert_failed - chaintoolong).

    chaintoolong counts inserts refused for a long hash chain: they bump
    insert_failed but drop no packet; the other failed inserts each drop one.
    """
    clashes = max(0, insert_failed - chaintoolong)
    return min(drop, max(0, drop - clashes))


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


def read_netlink(roots: sysctl.Roots, where: str = "in this namespace") -> Snapshot:
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


def read(roots: sysctl.Roots, source: str = "auto", where: str = "in this namespace") -> Snapshot:
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
