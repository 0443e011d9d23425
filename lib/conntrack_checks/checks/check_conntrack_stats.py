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
Defaults: -w early_drop_delta=0 (entries evicted: the table is at its
limit). Kernels with the clashres column (5.10+ and backports) split the
drops: table_full = drop - (insert_failed - chaintoolong), clash_drop = the
rest (failed inserts of racing packets); defaults -c table_full_delta=0, -w
clash_drop_delta=0, and -w insert_failed_rate above about 1 per minute
(0.017/s, 1/min, 1/check). Older kernels cannot tell the causes apart:
-c drop_delta=0, and no default on insert_failed, which there also counts
the clashes the kernel resolved (the packet was kept).

Perfdata and -v show only the counters this kernel keeps: columns it prints
as a constant 0 (new, ignore, delete on 5.10+) are left out.

The first run stores a baseline and is OK. Root is needed only for other
namespaces and for the netlink source (CAP_NET_ADMIN).
"""

from __future__ import annotations

import argparse
import re

import nagiosplugin
from nagiosplugin.state import Ok, Unknown

from .. import defaults, state
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
# Counters worked out from others on kernels with clashres (ctstats.drop_causes).
CAUSES = ("table_full", "clash_drop")


threshold = plugin.named_range(
    lambda label: re.match(LABEL, label),  # compiled only when -w/-c is given
    "a perfdata label such as drop_delta or insert_failed_rate", normalize=str, allow_none=True)


def thresholds(rate_per: str, warning=(), critical=()) -> dict[str, tuple]:
    """{label: (warning, critical, applies)}: the defaults, replaced per label
    by the given (label, Range) pairs; ``applies`` as in defaults.STATS (None for
    a label given: it applies on every kernel)."""
    merged: dict[str, list] = {}
    for label, (warn, crit, applies) in defaults.STATS.items():
        merged[label] = [None if warn is None else nagiosplugin.Range(warn[rate_per]),
                         None if crit is None else nagiosplugin.Range(crit[rate_per]),
                         applies]
    given = [(label, rng, 0) for label, rng in warning or []]
    given += [(label, rng, 1) for label, rng in critical or []]
    for label in {label for label, _, _ in given}:
        merged[label] = [None, None, None]
    for label, rng, index in given:
        merged[label][index] = rng
    return {label: tuple(value) for label, value in merged.items()
            if value[:2] != [None, None]}


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


class ConntrackStats(nagiosplugin.Resource):
    """The kernel's conntrack counters of one or many namespaces, against the last run."""

    def __init__(self, args, limits: dict[str, tuple]):
        self.args = args
        self.limits = limits
        self.roots = Roots(args.proc_root, args.sys_root)
        self.rows: list[ctstats.Reading] = []
        self.unreadable: list[tuple[netns.Namespace, str]] = []
        self.all_netns = False
        self.missing = None
        self.state_error = None
        self.state_path = None
        self.notes: list[str] = []
        self.details: list[str] = []
        self.row_of: dict[str, tuple[ctstats.Reading, str]] = {}

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
        self.rows, self.unreadable = ctstats.read_each(self.roots, namespaces,
                                                       self.args.source, self.all_netns)

    def update(self, store: state.StateFile) -> None:
        """Compare with the stored baseline and store the new one (under the lock)."""
        try:
            self.notes += ctstats.update_baselines(
                store, self.rows, self.roots.proc, self.all_netns,
                keep=[ns.name for ns, _ in self.unreadable])
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

    def label(self, name: str, row: ctstats.Reading, counter: str) -> str:
        label = f"{name}_{row.ns.label}" if self.all_netns else name
        self.row_of[label] = (row, counter)
        return label

    def applies(self, label: str, row: ctstats.Reading) -> bool:
        """A threshold on ``label`` is evaluated for this kernel's counters."""
        limit = self.limits.get(label)
        return limit is not None and limit[2] in (None, row.snapshot.has_clash_resolve)

    def wanted(self, name: str, row: ctstats.Reading, label: str = "") -> bool:
        """In the perfdata: every counter unless --counters, and every threshold."""
        chosen = self.args.counters
        return chosen is None or name in chosen or self.applies(label, row)

    def metrics(self):
        per = self.args.rate_per
        if self.state_error:
            yield nagiosplugin.Metric("state", self.state_error, context="state_error")
        for row in self.rows:
            totals = row.snapshot.totals()
            names = row.snapshot.filled
            for name in names:
                if self.wanted(name, row):
                    yield nagiosplugin.Metric(self.label(name, row, name), totals[name], "c",
                                              min=0, context="counter")
            change = row.change
            if change is None or change.baseline or self.state_error:
                continue
            names = names + [name for name in CAUSES if name in change.deltas]
            for name in names:
                for kind, value in (("delta", change.deltas[name]),
                                    ("rate", change.rate(name, per))):
                    label = f"{name}_{kind}"
                    if value is None or not self.wanted(name, row, label):
                        continue
                    context = label if self.applies(label, row) else kind
                    yield nagiosplugin.Metric(self.label(label, row, name), value, min=0,
                                              context=context)
        if self.all_netns:
            yield nagiosplugin.Metric("namespaces", len(self.rows), min=0, context="counter")
        StatsDetails(self).explain()

    def status_text(self, results) -> str:
        return StatsWords(self).status_text(results)


class StatsWords:
    """The status line: what moved, in words, worst namespace first."""

    def __init__(self, resource: ConntrackStats):
        self.res = resource
        self.per = resource.args.rate_per

    def rate_text(self, row: ctstats.Reading, name: str) -> str:
        rate = row.change.rate(name, self.per)
        if rate is None or self.per == "check":
            return ""
        return f"{plugin.fmt_number(rate)}{RATE_UNIT[self.per]}"

    def drop_cause(self, row: ctstats.Reading, count: int, hints: dict) -> str:
        """': table full', ': failed inserts (clashes), ...', with each cause's hints."""
        full = row.table_full
        if full is None or not count:
            return ""

        def hint(name):
            return f" ({', '.join(hints[name])})" if hints.get(name) else ""

        if full == count:
            return ": table full" + hint("table_full")
        if full == 0:
            return ": failed inserts (clashes), not a full table" + hint("clash_drop")
        return (f": {full} table full{hint('table_full')}, {count - full} failed inserts "
                f"(clashes){hint('clash_drop')}")

    def words(self, row: ctstats.Reading, name: str, hints: dict, first: bool = True) -> str:
        """One counter's change in words, e.g. '685 packets dropped since ...'."""
        change = row.change
        count = change.deltas.get(name, 0)
        notes = [self.rate_text(row, name)]
        cause = ""
        if name == "drop":
            what = f"{plural(count, 'packet', 'packets')} dropped"
            cause = self.drop_cause(row, count, hints)
        elif name == "early_drop":
            what = f"{plural(count, 'entry', 'entries')} evicted early"
            cause = ": the table is at its limit"
        elif name == "insert_failed":
            what = f"{plural(count, 'insert', 'inserts')} failed"
            if not row.snapshot.has_clash_resolve:
                notes.append("including resolved clashes")
        else:
            what = f"{name} +{count}"
        notes = ", ".join(n for n in notes if n)
        since = f" since the last check{duration(change.elapsed)}" if first else ""
        hint = ", ".join(hints.get(name, []))
        return (what + (f" ({notes})" if notes else "") + since + cause
                + (f" ({hint})" if hint else ""))

    def quiet(self, rows: list[ctstats.Reading]) -> str:
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
        notes = [self.rate_text(rows[0], "insert_failed") if len(rows) == 1 else ""]
        if not rows[0].snapshot.has_clash_resolve:
            notes.append("including resolved clashes")
        notes = ", ".join(n for n in notes if n)
        if total["insert_failed"] and notes:
            parts[2] += f" ({notes})"
        elapsed = [r.change.elapsed for r in rows if r.change.elapsed is not None]
        since = "since the last check" + (duration(max(elapsed)) if elapsed else "")
        return ", ".join(parts) + " " + since

    @staticmethod
    def totals(row: ctstats.Reading) -> str:
        totals = row.snapshot.totals()
        return ", ".join(f"{name} {totals[name]}" for name in MAIN if name in totals)

    def alerts(self, results) -> dict[int, list]:
        """{id(row): [(state, counter, hint)]} of the results that are not OK."""
        alerts: dict[int, list] = {}
        for result in results:
            found = self.res.row_of.get(result.metric.name) if result.metric else None
            if found is None or result.state == Ok:
                continue
            row, name = found
            alerts.setdefault(id(row), []).append((result.state, name, result.hint))
        return alerts

    def row_words(self, row: ctstats.Reading, found: list) -> str:
        """The alerts of one row; the drop causes are said with the drops."""
        hints: dict[str, list[str]] = {}
        order: list[str] = []
        names = [*MAIN, *row.snapshot.names]

        def said_as(name):
            return "drop" if name in CAUSES else name

        def rank(alert):  # worst first, then drops, evictions, failed inserts, the rest
            return -int(alert[0]), names.index(said_as(alert[1]))

        for _, name, hint in sorted(found, key=rank):
            said = said_as(name)
            if said not in order:
                order.append(said)
            hints.setdefault(name, [])
            if hint and hint not in hints[name]:
                hints[name].append(hint)
        return "; ".join(self.words(row, name, hints, i == 0) for i, name in enumerate(order))

    def status_text(self, results) -> str:
        res = self.res
        if res.missing:
            return res.missing
        if res.state_error:
            shown = [row.ns.prefix(res.all_netns) + self.totals(row) for row in res.rows]
            return (f"{res.state_error}; read (totals since the counters started): "
                    + "; ".join(shown))
        alerts = self.alerts(results)
        counted = [r for r in res.rows if not r.change.baseline]
        parts = []
        for row in sorted(res.rows, key=lambda r: -max(
                (int(s) for s, _, _ in alerts.get(id(r), [])), default=0)):
            prefix = row.ns.prefix(res.all_netns)
            if id(row) in alerts:
                parts.append(prefix + self.row_words(row, alerts[id(row)]))
            elif not res.all_netns:
                parts.append(prefix + (
                    f"baseline stored ({self.totals(row)} since the counters started); "
                    "deltas from the next run" if row.change.baseline else self.quiet([row])))
        if res.all_netns:
            if alerts:
                head = f"{len(alerts)} of {len(res.rows)} namespaces alert: "
                if len(parts) > 3:
                    parts[3:] = [f"{len(parts) - 3} more (see -v)"]
            else:
                head = f"{len(res.rows)} namespaces: "
                parts.append(self.quiet(counted) if counted else
                             "baseline stored; deltas from the next run")
            if res.unreadable:
                parts.append(f"{len(res.unreadable)} not readable (see -v)")
            text = head + "; ".join(parts)
        else:
            text = "; ".join(parts)
        if res.notes:
            text += "; " + "; ".join(res.notes)
        return text


class StatsDetails:
    """The -v lines: sources, state, per-CPU breakdown, thresholds not evaluated."""

    def __init__(self, resource: ConntrackStats):
        self.res = resource
        self.lines = resource.details

    def per_cpu(self, row: ctstats.Reading) -> None:
        """Idle CPUs on one line, and with --all-netns only the namespaces
        whose counters moved (all of them at -vv)."""
        res = self.res
        change = row.change
        counted = change is not None and not change.baseline and not res.state_error
        if res.all_netns and res.args.verbose < 2 and counted and not any(
                change.deltas.values()):
            return
        prefix = row.ns.prefix(res.all_netns)
        if not counted:
            self.lines.append(f"{prefix}per CPU (totals since the counters started):")
        else:
            when = ("elapsed time unknown" if change.elapsed is None
                    else f"{change.elapsed:.1f}s since the last check")
            per = res.args.rate_per
            unit = "per check" if per == "check" else f"per {per}"
            self.lines.append(f"{prefix}per CPU (total, +delta; {when}, rates {unit}):")
        idle = []
        names = row.snapshot.filled
        for cpu, values in row.snapshot.cpus:
            moved = change.per_cpu.get(cpu, {}) if counted else {}
            if not any(values.get(n) for n in names) and not any(moved.get(n) for n in names):
                idle.append(cpu)
                continue
            shown = []
            for name in names:
                value, delta = values.get(name, 0), moved.get(name, 0)
                if value or delta or name in MAIN:
                    shown.append(f"{name} {value}" + (f" (+{delta})" if delta else ""))
            self.lines.append(f"  cpu{cpu}: " + ", ".join(shown))
        if idle:
            self.lines.append(f"  cpu{cpu_ranges(idle)}: every counter 0")

    def explain(self) -> None:
        res = self.res
        for row in res.rows:
            snap = row.snapshot
            inside = "" if row.ns.path is None else f" inside {row.ns.describe()}"
            how = " (procfs)" if snap.source == "proc" else ""
            line = f"{row.ns.prefix(res.all_netns)}counters from {snap.origin}{how}{inside}"
            if snap.source == "netlink" and res.args.source == "auto":
                line += f"; no {res.roots.proc_path(ctstats.STAT_FILES[0])}"
            self.lines.append(line)
        if res.state_path:
            self.lines.append(f"state in {res.state_path}")
        for row in res.rows:
            self.per_cpu(row)
        if res.rows and not res.rows[0].snapshot.has_clash_resolve:
            self.lines.append("insert_failed also counts the clashes this kernel resolved "
                              "(no clashres column): no default threshold on it")
        filled, printed = set(), set()
        for row in res.rows:
            filled.update(row.snapshot.filled)
            printed.update(row.snapshot.names)
            if row.snapshot.has_clash_resolve:
                filled.update(CAUSES)
        for label in sorted(res.limits):
            counter = label.rsplit("_", 1)[0]
            if counter in printed and counter not in filled:
                self.lines.append(f"threshold on {label} not evaluated: this kernel prints "
                                  f"{counter} as a constant 0")
            elif counter not in filled and res.limits[label][2] is None:
                self.lines.append(f"threshold on {label} not evaluated: this kernel has no "
                                  f"{counter} counter")
        for ns, why in res.unreadable:
            self.lines.append(f"netns {ns.name} not read: {why}")


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
    limits = thresholds(args.rate_per, args.warning, args.critical)
    unit = RATE_UNIT[args.rate_per]
    contexts = [
        plugin.ThresholdContext(label, warn, crit, unit=unit if label.endswith("_rate") else "")
        for label, (warn, crit, _) in limits.items()
    ]
    check = plugin.check(
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
