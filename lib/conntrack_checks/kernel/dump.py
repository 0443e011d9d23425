"""The table of each namespace read in bounded time: exact counts, or estimates from a sample.

A table with more entries than the sample size (nf_conntrack_count, read just
before the dump) is read only up to that many entries. Both dumps walk the
hash table bucket by bucket and an entry's bucket comes from a keyed hash
(a per-boot random seed mixed with the namespace), so the first entries of a
dump are a uniform random sample of the table. A group, state, protocol or
flag seen ``k`` times in a sample of ``n`` is then estimated at ``k / n``
of the exact total, with the 95% Wilson score interval of the share ``k / n``
as its margin. A read stopped by the deadline is such a sample too; it
counts as an answer only when it is big enough for a margin under
MARGIN_LIMIT points whatever the share (``TableRead.usable``).

The functions here take plain values (roots, namespaces, source, keys, sample
size, deadline); only the check module knows argparse and nagiosplugin.
"""

from __future__ import annotations

import math
import time

from ..errors import ProbeError
from . import ctdump, netns, sysctl

# About a tenth of a 1,000,000-entry table's dump; margins of at most 0.31
# points (a share of 50%), 0.19 for a share of 10%.
DEFAULT_SAMPLE = 100000
Z95 = 1.959964  # the normal quantile of a two-sided 95% interval
# A read cut short by the deadline is an answer only if every share it gives
# is known to within this many points (95%): at least 2,398 entries.
MARGIN_LIMIT = 2.0
TCP_STATES = ("established", "syn_sent", "syn_recv", "fin_wait", "close_wait",
              "last_ack", "time_wait", "close")
FLAGS = ("assured", "unreplied", "nated")


def wilson(k: float, n: int, z: float = Z95) -> tuple[float, float]:
    """The Wilson score interval of the share ``k / n`` (fractions, 0..1).

    Unlike the normal approximation ``p +- z sqrt(p (1 - p) / n)`` it stays
    within 0..1 and gives a width to shares of 0 or 1 (a state not seen in
    the sample may still hold a few entries of the table).
    """
    if n <= 0:
        return 0.0, 1.0
    p = k / n
    z2 = z * z
    centre = (p + z2 / (2 * n)) / (1 + z2 / n)
    half = z / (1 + z2 / n) * math.sqrt(p * (1 - p) / n + z2 / (4 * n * n))
    return max(0.0, centre - half), min(1.0, centre + half)


def margin(k: float, n: int) -> float:
    """Half the width of the 95% interval of ``k / n``, in percentage points."""
    low, high = wilson(k, n)
    return 50.0 * (high - low)


def worst_margin(n: int) -> float:
    """The margin of a share of 50%, the widest a sample of ``n`` gives."""
    return margin(n / 2, n)


class TableRead:
    """One namespace's dump: its counts, the kernel's count just before, the time taken.

    ``exact``: the whole table was read, the counts are the table's. Otherwise
    the counts are a sample and ``estimate()``/``totals()`` scale them to
    ``total``, the kernel's count (or the entries read, if more).
    """

    __slots__ = ("count", "counts", "ns", "seconds")

    def __init__(self, ns: netns.Namespace, counts: ctdump.DumpCounts, count: int,
                 seconds: float):
        self.ns = ns
        self.counts = counts
        self.count = count
        self.seconds = seconds

    @property
    def exact(self) -> bool:
        return self.counts.complete

    @property
    def read(self) -> int:
        """Entries read (understood)."""
        return self.counts.entries

    @property
    def total(self) -> int:
        """Entries in the table: those read when exact, else the kernel's count."""
        if self.exact:
            return self.counts.entries
        return max(self.count, self.counts.entries)

    @property
    def usable(self) -> bool:
        """Exact, a sample of the size asked for, or cut short with enough entries."""
        if not self.counts.interrupted:
            return True
        return self.read > 0 and worst_margin(self.read) < MARGIN_LIMIT

    def estimate(self, k: int) -> int:
        """Entries of the table for ``k`` entries read."""
        if self.exact or not self.read:
            return k
        return round(k * self.total / self.read)

    def share(self, k: int) -> float:
        """Percent of the table's entries for ``k`` entries read."""
        return 100.0 * k / self.read if self.read else 0.0

    def margin(self, k: int) -> float:
        """The 95% margin of ``share(k)`` in points; 0 when exact."""
        return 0.0 if self.exact else margin(k, self.read)

    def totals(self) -> dict:
        """Entries by family, protocol, state and flag, estimated for the whole table."""
        totals = self.counts.totals()
        if self.exact:
            return totals
        out = {"entries": self.total}
        for name in ("family", "protocol", "state", "flag"):
            scaled = type(totals[name])()
            for key, k in totals[name].items():
                scaled[key] = self.estimate(k)
            out[name] = scaled
        return out

    def top(self, key: str, n: int) -> list[tuple[str, int, int]]:
        """The ``n`` biggest groups by ``key``: (value in words, entries read, estimate)."""
        return [(text, k, self.estimate(k)) for text, k in self.counts.groups[key].top(n)]


def counts(totals: dict) -> dict[str, int]:
    """The perfdata counts (fw_conntrack's names and a few more) of one table's totals."""
    proto = totals["protocol"]
    state = totals["state"]
    out = {"total": totals["entries"], "tcp": proto["tcp"], "udp": proto["udp"],
           "icmp": proto["icmp"] + proto["icmpv6"]}
    out["other"] = max(0, out["total"] - out["tcp"] - out["udp"] - out["icmp"])
    for name in TCP_STATES:
        out[name] = state[f"tcp:{name}"]
    for flag in FLAGS:
        out[flag] = totals["flag"][flag]
    return out


def read_table(roots: sysctl.Roots, source: str = "auto", sample: int | None = DEFAULT_SAMPLE,
               deadline: float | None = None, keys=("dst",),
               ns: netns.Namespace | None = None) -> TableRead:
    """The table of the current namespace, read whole or up to ``sample`` entries.

    ``source``: auto, proc or netlink (see ctdump.dump); ``sample``: None
    reads every entry; ``deadline``: a time.monotonic() value at which the
    read stops (then ``counts.interrupted``; see ``usable``); ``keys``: the
    group keys to count (ctdump.KEYS). Raises ProbeError (ModuleMissing,
    ctdump.TableDenied, a table nothing of which is understood).
    """
    table = _read(roots, source, sample, deadline, keys,
                  ns or netns.Namespace.current())
    _understood(table)
    return table


def _read(roots, source, sample, deadline, keys, ns) -> TableRead:
    start = time.monotonic()
    count, _ = sysctl.read_count(roots)
    limit = sample if sample is not None and count > sample else None
    dumped = ctdump.DumpCounts(keys, limit=limit, deadline=deadline)
    ctdump.dump(roots, dumped, source, expected=count if limit is None else limit)
    return TableRead(ns, dumped, count, time.monotonic() - start)


def _understood(table: TableRead) -> None:
    dumped = table.counts
    if dumped.entries == 0 and dumped.lines:
        raise ProbeError(
            f"none of the {dumped.lines} lines of {dumped.source} looks like a "
            f"conntrack entry (first: {dumped.sample.decode('ascii', 'replace')!r})"
        )


def read_namespaces(roots: sysctl.Roots, namespaces: list[netns.Namespace], all_netns: bool,
                    source: str = "auto", keys=("dst",), sample: int | None = DEFAULT_SAMPLE,
                    deadline: float | None = None):
    """Read each namespace's table; returns (tables, unreadable, max).

    With a deadline each namespace gets an equal part of the time left when
    its turn comes (a quick one leaves its rest to the next); namespaces not
    reached before the deadline are listed as unreadable.
    """
    limit, _ = sysctl.read_max(roots)
    left = [len(namespaces)]

    def read(ns):
        until = None
        if deadline is not None:
            now = time.monotonic()
            until = now + max(0.0, deadline - now) / max(1, left[0])
        left[0] -= 1
        return _read(roots, source, sample, until, keys, ns)

    def late(_table) -> bool:
        return deadline is not None and time.monotonic() >= deadline

    done, unreadable = netns.read_each(namespaces, read, all_netns, stop=late)
    tables = [table for _, table in done]
    for table in tables:
        _understood(table)
    seen = {id(ns) for ns, _ in done} | {id(ns) for ns, _ in unreadable}
    unreadable += [(ns, "not read: no time was left") for ns in namespaces
                   if id(ns) not in seen]
    return tables, unreadable, limit


def _percent(part: float, whole: float) -> float:
    return 100.0 * part / whole if whole else 0.0


def section(table: TableRead, limit: int, top: int) -> dict:
    """One namespace's table as plain, JSON-able data (estimates when not exact)."""
    totals = table.totals()
    groups = {}
    for key in table.counts.groups:
        rows = []
        for text, k, n in table.top(key, top):
            row = {"key": text, "entries": n, "share_of_entries": round(table.share(k), 3),
                   "share_of_max": round(_percent(n, limit), 3)}
            if not table.exact:
                row["margin_of_entries"] = round(table.margin(k), 3)
            rows.append(row)
        groups[key] = rows
    dumped = table.counts
    return {
        "namespace": table.ns.name,
        "source": dumped.source,
        "entries": table.total,
        "entries_read": dumped.entries,
        "exact": table.exact,
        "count_before_dump": table.count,
        "max": limit,
        "seconds": round(table.seconds, 3),
        "interrupted": dumped.interrupted,
        "lines_not_understood": dumped.garbage,
        "families": dict(totals["family"]),
        "protocols": dict(totals["protocol"].most_common()),
        "states": dict(totals["state"].most_common()),
        "flags": {f: totals["flag"][f] for f in FLAGS},
        "counts": counts(totals),
        "top": groups,
        "top_error": {k: g.error for k, g in dumped.groups.items() if g.error},
    }


def report_section(roots: sysctl.Roots, top: int = 5, keys=("dst", "src", "dport"),
                   source: str = "auto", namespace: netns.Namespace | None = None,
                   sample: int | None = DEFAULT_SAMPLE, deadline: float | None = None) -> dict:
    """The table's contents for conntrack-report: JSON-able, no nagiosplugin objects.

    ``namespace``: a netns.Namespace (default: the current one). Tables bigger
    than ``sample`` are estimated from a sample (``exact`` false). Raises
    ProbeError (not root, module missing, ...) on failure.
    """
    ns = namespace or netns.Namespace.current()
    tables, _, limit = read_namespaces(roots, [ns], False, source, tuple(keys), sample,
                                       deadline)
    return section(tables[0], limit, top)
