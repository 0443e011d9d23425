"""What conntrack-munin reads: counts, max, buckets and counters per namespace.

The same readers as the Nagios plugins (kernel/sysctl, kernel/netns,
kernel/ctstats), called with plain values. The kernel counters are turned
into totals that only grow: each run adds the per-CPU deltas since the last
one (ctstats.compare_all: a 32-bit wrap on one CPU is counted across, a
reload or reboot counts from 0), so Munin's DERIVE never sees a sum that
went back. The totals live in a state file in MUNIN_PLUGSTATE.
"""

from __future__ import annotations

from .. import deltas, state
from ..errors import ProbeError
from ..kernel import ctstats, netns, sysctl

PLUGIN = "conntrack-munin"


class Namespaces:
    """One reading of every namespace: count, counters, and the global max/buckets."""

    def __init__(self, roots: sysctl.Roots, settings):
        self.roots = roots
        self.settings = settings
        self.max: int | None = None
        self.buckets: int | None = None
        self.names: list[str] = []  # the host first
        self.counts: dict[str, int] = {}
        self.stats: dict[str, ctstats.Reading] = {}
        self.problems: list[str] = []  # one line each for stderr
        self.totals: dict[str, dict[str, int]] = {}  # growing totals, once accumulated

    def read(self, namespaces: list[netns.Namespace], all_netns: bool) -> None:
        """Raises ModuleMissing, or ProbeError when nothing at all can be read."""
        roots = self.roots
        self.max = sysctl.read_max(roots)[0]
        try:
            self.buckets = sysctl.read_buckets(roots)[0]
        except ProbeError as exc:
            self.problems.append(f"hash: {exc}")

        def inside(ns):
            count = sysctl.read_count(roots)[0]
            try:
                snap = ctstats.read(roots, "auto", f"in {ns.describe()}")
            except ProbeError as exc:
                return count, None, str(exc)
            inode = ns.inode if ns.inode is not None else ctstats.own_inode(roots)
            return count, ctstats.Reading(ns, snap, inode), None

        done, unreadable = netns.read_each(namespaces, inside, all_netns)
        for ns, (count, reading, why) in done:
            self.names.append(ns.name)
            self.counts[ns.name] = count
            if reading is not None:
                self.stats[ns.name] = reading
            else:
                self.problems.append(f"counters of {ns.name}: {why}")
        for ns, why in unreadable:
            self.names.append(ns.name)
            self.problems.append(f"{ns.name} not read: {why}")

    def accumulate(self, state_dir: str) -> None:
        """Add the counters' deltas to the stored totals (under the state's lock)."""
        readings = list(self.stats.values())
        keep = [name for name in self.names if name not in self.stats]
        try:
            with state.StateFile(PLUGIN, ["counters"], state_dir=state_dir) as store:
                data, note = store.load()
                if note:
                    self.problems.append(note)
                new, self.totals = grow(data, readings, keep, state.boot_id(self.roots.proc),
                                        deltas.clock())
                store.save(new)
        except state.StateError as exc:
            self.problems.append(f"kernel counters not graphed: {exc}")
            self.totals = {}


def _valid_totals(totals) -> bool:
    return isinstance(totals, dict) and all(
        type(v) is int and v >= 0 for v in totals.values())


def grow(data, readings, keep, boot: str | None, now: float):
    """(new state, {namespace: {counter: total}}): the stored totals plus the deltas.

    A namespace seen for the first time starts at the kernel's own totals
    (counted since the namespace was created or nf_conntrack loaded); one
    whose baseline is unusable keeps its total this time.
    """
    data = data if isinstance(data, dict) else {}
    new, _ = ctstats.compare_all(data, readings, boot, now, True, keep)
    stored = data.get("totals")
    stored = stored if isinstance(stored, dict) else {}
    totals = {name: stored[name] for name in keep if _valid_totals(stored.get(name))}
    for reading in readings:
        name = reading.ns.name
        before = stored.get(name)
        if not _valid_totals(before):
            totals[name] = reading.snapshot.totals()
        elif reading.change.baseline:
            totals[name] = dict(before)
        else:
            moved = reading.change.deltas
            totals[name] = {n: before.get(n, 0) + moved.get(n, 0)
                            for n in reading.snapshot.names}
    new["totals"] = totals
    return new, totals
