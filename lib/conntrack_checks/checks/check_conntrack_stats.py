"""check_conntrack_stats: did the kernel drop packets because of conntrack?

Reads the kernel's own per-CPU counters (/proc/net/stat/nf_conntrack, or
ctnetlink as `conntrack -S` where the kernel has no such file), sums them
over CPUs and compares them with the previous run (state kept in
--state-dir): deltas since the last check and rates for every counter the
kernel offers. The log line "table full, dropping packet" is rate-limited;
these counters are exact.

Thresholds are Nagios ranges on a delta or a rate, named as in the perfdata:
-w/-c LABEL=RANGE, repeatable, LABEL = COUNTER_delta or COUNTER_rate, RANGE
'none' to drop a default. Thresholds given for a label replace its defaults.
Defaults: -c drop_delta=0 (any dropped packet is CRITICAL), -w
early_drop_delta=0 (entries evicted: the table is at its limit), -w
insert_failed_rate above about 1 per minute (0.017/s, 1/min, 1/check).
On 5.10+ kernels table_full_delta/_rate estimate the drops for a full
table: drop - (insert_failed - chaintoolong).

The first run stores a baseline and is OK. Root is needed only for other
namespaces and for the netlink source (CAP_NET_ADMIN).
"""

from __future__ import annotations

import argparse
import os
import re

import nagiosplugin
from nagiosplugin.state import Ok, Unknown

from .. import defaults, deltas, state
from ..errors import ModuleMissing
from ..kernel import ctstats, netns
from ..kernel.sysctl import Roots
from ..nagios import options, plugin

NAME = "CONNTRACK STATS"
PLUGIN = "check_conntrack_stats"
# Compiled only when -w/-c are given (re caches it).
LABEL = r"[a-z][a-z0-9_]*_(delta|rate)\Z"
# The counters the words and -v always name, even when 0.
MAIN = ("drop", "early_drop", "insert_failed")
RATE_UNIT = {"second": "/s", "minute": "/min", "check": "/check"}


threshold = plugin.named_range(
    lambda label: re.match(LABEL, label),  # compiled only when -w/-c is given
    "a perfdata label such as drop_delta or insert_failed_rate", normalize=str, allow_none=True)


def thresholds(args) -> dict[str, tuple]:
    """{label: (warning, critical)}: the defaults, replaced per label by -w/-c."""
    merged: dict[str, list] = {}
    for table, index in ((defaults.STATS_WARNING, 0), (defaults.STATS_CRITICAL, 1)):
        for label, specs in table.items():
            merged.setdefault(label, [None, None])[index] = nagiosplugin.Range(
                specs[args.rate_per])
    given = [(label, rng, 0) for label, rng in args.warning or []]
    given += [(label, rng, 1) for label, rng in args.critical or []]
    for label in {label for label, _, _ in given}:
        merged[label] = [None, None]
    for label, rng, index in given:
        merged[label][index] = rng
    return {label: tuple(pair) for label, pair in merged.items() if pair != [None, None]}


def plural(count: int, one: str, many: str) -> str:
    return f"{count} {one if count == 1 else many}"


def duration(seconds: float | None) -> str:
    if seconds is None:
        return ""
    if seconds < 10:
        return f" {seconds:.1f}s ago"
    if seconds < 120:
        return f" {seconds:.0f}s ago"
    if seconds < 7200:
        return f" {seconds / 60:.0f}m ago"
    if seconds < 172800:
        return f" {seconds / 3600:.0f}h ago"
    return f" {seconds / 86400:.0f}d ago"


def cpu_ranges(cpus: list[int]) -> str:
    """[0, 2, 3, 4, 7] -> '0,2-4,7'."""
    spans: list[list[int]] = []
    for cpu in cpus:
        if spans and cpu == spans[-1][1] + 1:
            spans[-1][1] = cpu
        else:
            spans.append([cpu, cpu])
    return ",".join(f"{a}" if a == b else f"{a}-{b}" for a, b in spans)


class Row:
    """One namespace: what was read and what changed."""

    __slots__ = ("change", "inode", "ns", "snapshot")

    def __init__(self, ns: netns.Namespace, snapshot: ctstats.Snapshot, inode: int | None):
        self.ns = ns
        self.snapshot = snapshot
        self.inode = inode
        self.change: deltas.Change | None = None

    @property
    def table_full(self) -> int | None:
        """The estimate of drops for a full table (5.10+), once compare() has run."""
        return None if self.change is None else self.change.deltas.get("table_full")


class ConntrackStats(nagiosplugin.Resource):
    """The kernel's conntrack counters of one or many namespaces, against the last run."""

    def __init__(self, args, limits: dict[str, tuple]):
        self.args = args
        self.limits = limits
        self.roots = Roots(args.proc_root, args.sys_root)
        self.rows: list[Row] = []
        self.unreadable: list[tuple[netns.Namespace, str]] = []
        self.all_netns = False
        self.missing = None
        self.state_error = None
        self.state_path = None
        self.notes: list[str] = []
        self.details: list[str] = []
        self.row_of: dict[str, tuple[Row, str]] = {}

    # --- reading --------------------------------------------------------------

    def state_parts(self) -> list[str]:
        args = self.args
        parts = []
        if args.all_netns:
            parts.append("all-netns")
        elif args.netns:
            parts += ["netns", args.netns]
        elif args.netns_path:
            parts += ["netns-path", args.netns_path]
        if self.roots.proc != "/proc":
            parts += ["proc", self.roots.proc]
        if self.roots.sys != "/sys":
            parts += ["sys", self.roots.sys]
        if args.source != "auto":
            parts += ["source", args.source]
        return parts

    def read(self, namespaces: list[netns.Namespace]) -> None:
        def snapshot(ns):
            where = f"in {ns.describe()}"
            inode = ns.inode if ns.inode is not None else self.own_inode()
            return ctstats.read(self.roots, self.args.source, where), inode

        done, self.unreadable = netns.read_each(namespaces, snapshot, self.all_netns)
        self.rows = [Row(ns, snap, inode) for ns, (snap, inode) in done]

    def own_inode(self) -> int | None:
        try:
            return os.stat(self.roots.proc_path("self/ns/net")).st_ino
        except OSError:
            return None

    def compare(self, data: dict | None, now: float) -> dict:
        """Deltas of every row against ``data``; returns the new state."""
        boot = state.boot_id(self.roots.proc)
        if data is not None and not isinstance(data.get("namespaces"), dict):
            self.notes.append(f"state {self.state_path} held no namespaces: baseline reset")
            data = {}
        data = data or {}
        stored = data.get("namespaces", {})
        old_boot = data.get("boot_id")
        rebooted = None if boot is None or old_boot is None else boot != old_boot
        fresh = 0
        for row in self.rows:
            what = row.ns.describe()
            previous = stored.get(row.ns.name)
            row.change = deltas.compare(previous, row.snapshot, row.inode, now, rebooted, what)
            d = row.change.deltas
            if row.snapshot.has_clash_resolve and not row.change.baseline:
                d["table_full"] = ctstats.table_full(d.get("drop", 0), d.get("insert_failed", 0),
                                                     d.get("chaintoolong", 0))
            fresh += previous is None and bool(stored)
            prefix = row.ns.prefix(self.all_netns)
            self.notes.extend(prefix + note for note in row.change.notes)
        if fresh and self.all_netns:
            new = plural(fresh, "new namespace", "new namespaces")
            self.notes.append(f"baseline stored for {new}")
        keep = {ns.name for ns, _ in self.unreadable}
        namespaces = {name: entry for name, entry in stored.items() if name in keep}
        for row in self.rows:
            namespaces[row.ns.name] = deltas.entry(row.snapshot, row.inode, now)
        return {"boot_id": boot, "namespaces": namespaces}

    def update(self, store: state.StateFile) -> None:
        """Compare with the stored baseline and store the new one (under the lock)."""
        now = deltas.clock()
        try:
            data, note = store.load()
            if note:
                self.notes.append(note)
            store.save(self.compare(data, now))
        except state.StateError as exc:
            self.state_error = str(exc)

    def probe(self):
        args = self.args
        try:
            namespaces, self.all_netns = options.namespaces(args)
            store = state.StateFile(PLUGIN, self.state_parts(), state_file=args.state_file,
                                    state_dir=args.state_dir)
            self.state_path = store.path
            try:
                store.__enter__()
            except state.StateError as exc:
                self.read(namespaces)
                self.state_error = str(exc)
            else:
                try:
                    self.read(namespaces)
                    self.update(store)
                finally:
                    store.__exit__()
        except ModuleMissing as exc:
            self.missing = str(exc)
            return [nagiosplugin.Metric("nf_conntrack", str(exc), context="missing")]
        return list(self.metrics())

    # --- metrics --------------------------------------------------------------

    def label(self, name: str, row: Row, counter: str) -> str:
        label = f"{name}_{row.ns.label}" if self.all_netns else name
        self.row_of[label] = (row, counter)
        return label

    def wanted(self, name: str, label: str = "") -> bool:
        """In the perfdata: every counter unless --counters, and every threshold."""
        chosen = self.args.counters
        return chosen is None or name in chosen or label in self.limits

    def context(self, label: str, kind: str) -> str:
        return label if label in self.limits else kind

    def metrics(self):
        per = self.args.rate_per
        if self.state_error:
            yield nagiosplugin.Metric("state", self.state_error, context="state_error")
        for row in self.rows:
            totals = row.snapshot.totals()
            for name in row.snapshot.names:
                if self.wanted(name):
                    yield nagiosplugin.Metric(self.label(name, row, name), totals[name], "c",
                                              min=0, context="counter")
            change = row.change
            if change is None or change.baseline or self.state_error:
                continue
            names = list(row.snapshot.names)
            if "table_full" in change.deltas:
                names.append("table_full")
            for name in names:
                label = f"{name}_delta"
                if self.wanted(name, label):
                    yield nagiosplugin.Metric(self.label(label, row, name), change.deltas[name],
                                              min=0, context=self.context(label, "delta"))
                rate = change.rate(name, per)
                label = f"{name}_rate"
                if rate is not None and self.wanted(name, label):
                    yield nagiosplugin.Metric(self.label(label, row, name), rate, min=0,
                                              context=self.context(label, "rate"))
        if self.all_netns:
            yield nagiosplugin.Metric("namespaces", len(self.rows), min=0, context="counter")
        self.explain()

    # --- words ----------------------------------------------------------------

    def rate_text(self, row: Row, name: str) -> str:
        per = self.args.rate_per
        rate = row.change.rate(name, per)
        if rate is None or per == "check":
            return ""
        return f"{plugin.fmt_number(rate)}{RATE_UNIT[per]}"

    def words(self, row: Row, name: str, hint: str | None, first: bool = True) -> str:
        """One counter's change in words, e.g. '685 packets dropped since ...'."""
        change = row.change
        count = change.deltas.get(name, 0)
        rate = self.rate_text(row, name)
        rate = f" ({rate})" if rate else ""
        cause = ""
        if name in ("drop", "table_full"):
            what = f"{plural(count, 'packet', 'packets')} dropped"
            full = count if name == "table_full" else row.table_full
            if full is not None and count:
                if full == count:
                    cause = ": table full" + (" (estimate)" if name == "table_full" else "")
                elif full == 0:
                    cause = ": failed inserts (clashes), not a full table"
                else:
                    cause = f": {full} table full, {count - full} failed inserts (clashes)"
        elif name == "early_drop":
            what = f"{plural(count, 'entry', 'entries')} evicted early"
            cause = ": the table is at its limit"
        elif name == "insert_failed":
            what = f"{plural(count, 'insert', 'inserts')} failed"
        else:
            what = f"{name} +{count}"
        since = f" since the last check{duration(change.elapsed)}" if first else ""
        return what + rate + since + cause + (f" ({hint})" if hint else "")

    def quiet(self, rows: list[Row]) -> str:
        """The main counters when nothing alerts: 'no packets dropped, ...'."""
        total = {name: sum(r.change.deltas.get(name, 0) for r in rows) for name in MAIN}
        parts = [
            plural(total["drop"], "packet dropped", "packets dropped")
            if total["drop"] else "no packets dropped",
            plural(total["early_drop"], "early drop", "early drops")
            if total["early_drop"] else "no early drops",
            plural(total["insert_failed"], "failed insert", "failed inserts")
            if total["insert_failed"] else "no failed inserts",
        ]
        rate = self.rate_text(rows[0], "insert_failed") if len(rows) == 1 else ""
        if total["insert_failed"] and rate:
            parts[2] += f" ({rate})"
        elapsed = [r.change.elapsed for r in rows if r.change.elapsed is not None]
        since = "since the last check" + (duration(max(elapsed)) if elapsed else "")
        return ", ".join(parts) + " " + since

    def baseline(self, row: Row) -> str:
        totals = row.snapshot.totals()
        values = ", ".join(f"{name} {totals[name]}" for name in MAIN if name in totals)
        return f"baseline stored ({values} since the counters started); deltas from the next run"

    def status_text(self, results) -> str:
        if self.missing:
            return self.missing
        if self.state_error:
            shown = []
            for row in self.rows:
                totals = row.snapshot.totals()
                values = ", ".join(f"{n} {totals[n]}" for n in MAIN if n in totals)
                shown.append(row.ns.prefix(self.all_netns) + values)
            return (f"{self.state_error}; read (totals since the counters started): "
                    + "; ".join(shown))
        alerts: dict[int, list] = {}
        for result in results:
            found = self.row_of.get(result.metric.name) if result.metric else None
            if found is None or result.state == Ok:
                continue
            row, name = found
            alerts.setdefault(id(row), []).append((result.state, name, result.hint))
        counted = [r for r in self.rows if not r.change.baseline]
        parts = []
        for row in sorted(self.rows, key=lambda r: -max(
                (int(s) for s, _, _ in alerts.get(id(r), [])), default=0)):
            found = sorted(alerts.get(id(row), []), key=lambda a: -int(a[0]))
            if found:
                hints: dict[str, list[str]] = {}
                for _, name, hint in found:
                    hints.setdefault(name, [])
                    if hint and hint not in hints[name]:
                        hints[name].append(hint)
                parts.append(row.ns.prefix(self.all_netns) + "; ".join(
                    self.words(row, name, ", ".join(hint), i == 0)
                    for i, (name, hint) in enumerate(hints.items())))
            elif not self.all_netns:
                words = self.baseline(row) if row.change.baseline else self.quiet([row])
                parts.append(row.ns.prefix(self.all_netns) + words)
        if self.all_netns:
            if alerts:
                head = f"{len(alerts)} of {len(self.rows)} namespaces alert: "
                if len(parts) > 3:
                    parts[3:] = [f"{len(parts) - 3} more (see -v)"]
            else:
                head = f"{len(self.rows)} namespaces: "
                parts.append(self.quiet(counted) if counted else
                             "baseline stored; deltas from the next run")
            if self.unreadable:
                parts.append(f"{len(self.unreadable)} not readable (see -v)")
            text = head + "; ".join(parts)
        else:
            text = "; ".join(parts)
        if self.notes:
            text += "; " + "; ".join(self.notes)
        return text

    def per_cpu(self, row: Row) -> None:
        """The -v breakdown; idle CPUs on one line, and with --all-netns only
        the namespaces whose counters moved (all of them at -vv)."""
        change = row.change
        counted = change is not None and not change.baseline and not self.state_error
        if self.all_netns and self.args.verbose < 2 and counted and not any(
                change.deltas.values()):
            return
        prefix = row.ns.prefix(self.all_netns)
        if not counted:
            self.details.append(f"{prefix}per CPU (totals since the counters started):")
        else:
            when = ("elapsed time unknown" if change.elapsed is None
                    else f"{change.elapsed:.1f}s since the last check")
            per = self.args.rate_per
            unit = "per check" if per == "check" else f"per {per}"
            self.details.append(f"{prefix}per CPU (total, +delta; {when}, rates {unit}):")
        idle = []
        for cpu, values in row.snapshot.cpus:
            moved = change.per_cpu.get(cpu, {}) if counted else {}
            if not any(values.values()) and not any(moved.values()):
                idle.append(cpu)
                continue
            shown = []
            for name in row.snapshot.names:
                value, delta = values.get(name, 0), moved.get(name, 0)
                if value or delta or name in MAIN:
                    shown.append(f"{name} {value}" + (f" (+{delta})" if delta else ""))
            self.details.append(f"  cpu{cpu}: " + ", ".join(shown))
        if idle:
            self.details.append(f"  cpu{cpu_ranges(idle)}: every counter 0")

    def explain(self) -> None:
        """The -v lines: sources, state, per-CPU breakdown."""
        details = self.details
        for row in self.rows:
            snap = row.snapshot
            inside = "" if row.ns.path is None else f" inside {row.ns.describe()}"
            how = " (procfs)" if snap.source == "proc" else ""
            line = f"{row.ns.prefix(self.all_netns)}counters from {snap.origin}{how}{inside}"
            if snap.source == "netlink" and self.args.source == "auto":
                line += f"; no {self.roots.proc_path(ctstats.STAT_FILES[0])}"
            details.append(line)
        if self.state_path:
            details.append(f"state in {self.state_path}")
        for row in self.rows:
            self.per_cpu(row)
        names = set()
        for row in self.rows:
            names.update(row.snapshot.names)
            if row.snapshot.has_clash_resolve:
                names.add("table_full")
        for label in sorted(self.limits):
            counter = label.rsplit("_", 1)[0]
            if counter not in names:
                details.append(f"threshold on {label} not evaluated: this kernel has no "
                               f"{counter} counter")
        for ns, why in self.unreadable:
            details.append(f"netns {ns.name} not read: {why}")


def counter_list(text: str) -> set[str]:
    names = {name.strip() for name in text.split(",") if name.strip()}
    if not names or not all(re.match(r"[a-z][a-z0-9_]*\Z", n) for n in names):
        raise argparse.ArgumentTypeError(f"{text!r} is not a comma-separated list of "
                                         "counter names such as drop,early_drop")
    return names


def parser():
    p = plugin.base_parser(PLUGIN, __doc__, NAME)
    state.add_state_options(p)
    p.add_argument("-w", "--warning", type=threshold, action="append", metavar="LABEL=RANGE",
                   help="warn when a delta or rate is outside RANGE, e.g. "
                        "insert_failed_rate=0.1 (repeatable)")
    p.add_argument("-c", "--critical", type=threshold, action="append",
                   metavar="LABEL=RANGE",
                   help="critical when a delta or rate is outside RANGE, e.g. "
                        "drop_delta=0 (repeatable)")
    p.add_argument("--rate-per", choices=("second", "minute", "check"), default="second",
                   help="rates per second (default), per minute, or per check (the delta "
                        "since the last run, however long ago)")
    p.add_argument("--counters", type=counter_list, metavar="LIST",
                   help="counters in the perfdata, e.g. drop,early_drop,insert_failed,"
                        "table_full (default: every counter the kernel offers; thresholds "
                        "are always evaluated and shown)")
    p.add_argument("--source", choices=ctstats.SOURCES, default="auto",
                   help="auto (default): /proc/net/stat/nf_conntrack, else ctnetlink; "
                        "proc or netlink: only that one (netlink needs CAP_NET_ADMIN)")
    return p


@nagiosplugin.guarded(verbose=0)
def main(argv=None):
    args = parser().parse_args(argv)
    limits = thresholds(args)
    unit = RATE_UNIT[args.rate_per]
    contexts = [
        plugin.ThresholdContext(label, warn, crit, unit=unit if label.endswith("_rate") else "")
        for label, (warn, crit) in limits.items()
    ]
    check = nagiosplugin.Check(
        ConntrackStats(args, limits),
        plugin.PerfContext("counter"),
        plugin.PerfContext("delta"),
        plugin.PerfContext("rate"),
        *contexts,
        plugin.StateContext("missing", plugin.STATES[args.missing]),
        plugin.StateContext("state_error", Unknown),
        plugin.Summary(),
        name=NAME,
    )
    plugin.run(check, args)


def report_section(roots: Roots | None = None, source: str = "auto") -> dict:
    """For conntrack-report: see ctstats.report_section."""
    return ctstats.report_section(roots, source)
