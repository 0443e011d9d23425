"""check_conntrack_table: what fills the connection-tracking table?

Reads every entry of the table (/proc/net/nf_conntrack, or the ctnetlink
dump `conntrack -L` where the kernel has no proc file) and counts them by
protocol, TCP state and flag (ASSURED, UNREPLIED, NAT-ed), and by a key you
pick (--top-by): source, destination, destination port, source+destination
+port, zone or mark. -w/-c are Nagios ranges on the share of max held by
the biggest group (--share-of entries: share of the entries present);
--warning-state/--critical-state NAME=RANGE alert on the count of a state or
flag. Needs root (or CAP_NET_ADMIN with --source netlink).
"""

from __future__ import annotations

import time

import nagiosplugin
from nagiosplugin.state import Unknown

from .. import defaults
from ..errors import ModuleMissing, ProbeError
from ..kernel import ctdump, netns, sysctl
from ..nagios import options, plugin

NAME = "CONNTRACK TABLE"
TCP_STATES = ("established", "syn_sent", "syn_recv", "fin_wait", "close_wait",
              "last_ack", "time_wait", "close")
COUNT_LABELS = ("total", "tcp", "udp", "icmp", "other", *TCP_STATES,
                "assured", "unreplied", "nated")


class NamespaceTable:
    """One namespace's dump: the tally, the count the kernel gave before it."""

    def __init__(self, ns: netns.Namespace, tally: ctdump.Tally, count: int, seconds: float):
        self.ns = ns
        self.tally = tally
        self.count = count
        self.seconds = seconds


def dump_namespaces(roots, namespaces, all_netns, source="auto", keys=("dst",)):
    """Dump and count each namespace; returns (tables, unreadable, max).

    Stops after the namespace in which the timeout struck (its tally says
    ``interrupted``).
    """
    limit, _ = sysctl.read_max(roots)

    def dump(ns):
        tally = ctdump.Tally(keys)
        start = time.monotonic()
        count, _ = sysctl.read_count(roots)
        ctdump.dump(roots, tally, source, expected=count)
        return NamespaceTable(ns, tally, count, time.monotonic() - start)

    done, unreadable = netns.read_each(namespaces, dump, all_netns,
                                       stop=lambda table: table.tally.interrupted)
    tables = [table for _, table in done]
    for table in tables:
        tally = table.tally
        if tally.entries == 0 and tally.lines:
            raise ProbeError(
                f"none of the {tally.lines} lines of {tally.source} looks like a "
                f"conntrack entry (first: {tally.sample.decode('ascii', 'replace')!r})"
            )
    return tables, unreadable, limit


def counts(totals: dict) -> dict[str, int]:
    """The perfdata counts (fw_conntrack's names and a few more) of one tally."""
    proto = totals["protocol"]
    state = totals["state"]
    out = {"total": totals["entries"], "tcp": proto["tcp"], "udp": proto["udp"],
           "icmp": proto["icmp"] + proto["icmpv6"]}
    out["other"] = out["total"] - out["tcp"] - out["udp"] - out["icmp"]
    for name in TCP_STATES:
        out[name] = state[f"tcp:{name}"]
    for flag in ("assured", "unreplied", "nated"):
        out[flag] = totals["flag"][flag]
    return out


def _share(part: int, whole: int) -> float:
    return 100.0 * part / whole if whole else 0.0


def section(table: NamespaceTable, limit: int, top: int) -> dict:
    """One namespace's table as plain data."""
    tally = table.tally
    totals = tally.totals()
    groups = {}
    for key, grp in tally.groups.items():
        groups[key] = [
            {"key": text, "entries": n, "share_of_entries": round(_share(n, tally.entries), 3),
             "share_of_max": round(_share(n, limit), 3)}
            for text, n in grp.top(top)
        ]
    return {
        "namespace": table.ns.name,
        "source": tally.source,
        "entries": tally.entries,
        "count_before_dump": table.count,
        "max": limit,
        "seconds": round(table.seconds, 3),
        "interrupted": tally.interrupted,
        "lines_not_understood": tally.garbage,
        "families": dict(totals["family"]),
        "protocols": dict(totals["protocol"].most_common()),
        "states": dict(totals["state"].most_common()),
        "flags": {f: totals["flag"][f] for f in ("assured", "unreplied", "nated")},
        "counts": counts(totals),
        "top": groups,
        "top_error": {k: g.error for k, g in tally.groups.items() if g.error},
    }


def report_section(roots, top=5, keys=("dst", "src", "dport"), source="auto",
                   namespace=None) -> dict:
    """The table's contents for conntrack-report: JSON-able, no nagiosplugin objects.

    ``roots`` is a sysctl.Roots; ``namespace`` a netns.Namespace (default: the
    current one). Raises ProbeError (not root, module missing, ...) on failure.
    """
    ns = namespace or netns.Namespace.current()
    tables, _, limit = dump_namespaces(roots, [ns], False, source, tuple(keys))
    return section(tables[0], limit, top)


class TableDump(nagiosplugin.Resource):
    """Every entry of the table of each selected namespace, counted."""

    def __init__(self, args):
        self.args = args
        self.roots = sysctl.Roots(args.proc_root, args.sys_root)
        self.tables: list[NamespaceTable] = []
        self.unreadable = []
        self.all_netns = False
        self.max = 0
        self.missing = None
        self.details: list[str] = []
        self.counts: dict[str, int] = {}
        self.worst: NamespaceTable | None = None
        self.top_share = 0.0

    @property
    def name(self):
        return NAME

    def probe(self):
        args = self.args
        try:
            namespaces, self.all_netns = options.namespaces(args)
            self.tables, self.unreadable, self.max = dump_namespaces(
                self.roots, namespaces, self.all_netns, args.source, (args.top_by,))
        except ModuleMissing as exc:
            self.missing = str(exc)
            return [nagiosplugin.Metric("nf_conntrack", str(exc), context="missing")]
        return list(self.metrics())

    def basis(self, table: NamespaceTable) -> int:
        return table.tally.entries if self.args.share_of == "entries" else self.max

    def biggest(self, table: NamespaceTable):
        top = table.tally.groups[self.args.top_by].top(1)
        return top[0] if top else (None, 0)

    def metrics(self):
        summed: dict[str, int] = dict.fromkeys(COUNT_LABELS, 0)
        for table in self.tables:
            for label, value in counts(table.tally.totals()).items():
                summed[label] += value
        self.counts = summed
        self.worst = max(self.tables,
                         key=lambda t: _share(self.biggest(t)[1], self.basis(t)))
        self.top_share = _share(self.biggest(self.worst)[1], self.basis(self.worst))
        for label in COUNT_LABELS:
            yield nagiosplugin.Metric(label, summed[label], min=0,
                                      context=f"count:{label}")
        yield nagiosplugin.Metric("top_share", self.top_share, "%", min=0, max=100,
                                  context="top_share")
        yield nagiosplugin.Metric("max", self.max, min=0, context="max")
        interrupted = [t for t in self.tables if t.tally.interrupted]
        if interrupted:
            where = interrupted[0]
            yield nagiosplugin.Metric(
                "timeout",
                f"timed out after {self.args.timeout} s reading {where.tally.source}, "
                "counted so far",
                context="timeout")
        self._explain()

    def _inside(self, table: NamespaceTable) -> str:
        return "" if table.ns.path is None else f" inside netns {table.ns.name}"

    def _explain(self) -> None:
        args = self.args
        words = ctdump.KEY_WORDS[args.top_by]
        for table in self.tables:
            tally = table.tally
            how = "read in chunks by cat in a child process" if tally.piped else "read in chunks"
            self.details.append(
                f"{tally.source}{self._inside(table)}: {tally.entries} entries "
                f"({how}, {table.seconds:.2f} s; the kernel counted {table.count} "
                "just before)")
            totals = tally.totals()
            self.details.append("protocols: " + _listing(totals["protocol"]))
            if totals["state"]:
                self.details.append("states: " + _listing(totals["state"]))
            self.details.append("families: " + _listing(totals["family"]))
            self.details.append("flags: " + ", ".join(
                f"{f} {totals['flag'][f]}" for f in ("assured", "unreplied", "nated")))
            grp = tally.groups[args.top_by]
            rows = grp.top(args.top)
            basis = "entries" if args.share_of == "entries" else "max"
            self.details.append(f"{'rank':>4} {'entries':>9} {'% entries':>9} "
                                f"{'% max':>7}  {words}")
            for rank, (text, n) in enumerate(rows, 1):
                self.details.append(f"{rank:>4} {n:>9} {_share(n, tally.entries):>9.1f} "
                                    f"{_share(n, self.max):>7.1f}  {text}")
            if grp.error:
                self.details.append(
                    f"more than {grp.limit} distinct {words} values: counts may be low "
                    f"by up to {grp.error} (rare values were dropped to bound memory)")
            if tally.garbage:
                self.details.append(
                    f"{tally.garbage} lines not understood, first: "
                    f"{tally.sample.decode('ascii', 'replace')!r}")
            self.details.append(f"thresholds -w/-c on the biggest group's share of {basis}")
        for ns, why in self.unreadable:
            self.details.append(f"netns {ns.name} not read: {why}")

    def status_text(self, results) -> str:
        if self.missing:
            return self.missing
        args = self.args
        hints = {r.metric.name: r.hint for r in results if r.metric and r.hint
                 and int(r.state) > 0}
        table = self.worst
        tally = table.tally
        words = ctdump.KEY_WORDS[args.top_by]
        prefix = ""
        if self.all_netns:
            prefix = f"{len(self.tables)} namespaces, {self.counts['total']} entries; "
            prefix += f"worst netns {table.ns.name}: "
        elif table.ns.path is not None:
            prefix = f"netns {table.ns.name}: "
        basis = "entries" if args.share_of == "entries" else "max"
        if tally.interrupted:
            head = f"{tally.entries} of {table.count} entries"
        else:
            head = f"{tally.entries} entries ({_share(tally.entries, self.max):.1f}% of max " \
                   f"{self.max})"
        rows = tally.groups[args.top_by].top(3)
        if rows:
            text, n = rows[0]
            part = (f"top {words} {text} holds {n} ({self.top_share:.1f}% of {basis}"
                    + (f", {hints['top_share']})" if "top_share" in hints else ")"))
            if len(rows) > 1:
                part += ", then " + ", ".join(f"{t} ({m})" for t, m in rows[1:])
            head += f"; {part}"
        parts = [prefix + head, self._protocols()]
        flags = [f"{f} {self.counts[f]}" for f in ("assured", "unreplied", "nated")]
        parts.append(", ".join(flags))
        for label in COUNT_LABELS:
            if label in hints:
                parts.append(f"{label} {self.counts[label]} ({hints[label]})")
        text = "; ".join(parts)
        if "timeout" in hints:
            text = hints["timeout"] + ": " + text
        if self.unreadable:
            text += f"; {len(self.unreadable)} namespaces not readable (see -v)"
        return text

    def _protocols(self) -> str:
        c = self.counts
        out = []
        if c["tcp"]:
            states = [f"{s} {c[s]}" for s in TCP_STATES if c[s]]
            out.append(f"tcp {c['tcp']}" + (f" ({', '.join(states)})" if states else ""))
        out += [f"{p} {c[p]}" for p in ("udp", "icmp", "other") if c[p]]
        return ", ".join(out) or "no entries"


def _listing(counter) -> str:
    return ", ".join(f"{k} {v}" for k, v in counter.most_common()) or "none"


state_threshold = plugin.named_range(
    COUNT_LABELS.__contains__, f"one of {', '.join(COUNT_LABELS)}")


def parser():
    p = plugin.base_parser("check_conntrack_table", __doc__, NAME)
    p.add_argument("-w", "--warning", type=plugin.nagios_range, metavar="RANGE",
                   help="share of max (in percent) held by the biggest group that warns "
                        f"(default {defaults.TABLE['warning']}; none with --share-of entries)")
    p.add_argument("-c", "--critical", type=plugin.nagios_range, metavar="RANGE",
                   help="share that is critical (default "
                        f"{defaults.TABLE['critical']}; none with --share-of entries)")
    p.add_argument("--share-of", choices=("max", "entries"), default="max",
                   help="what -w/-c are a share of: nf_conntrack_max (default) or the "
                        "entries present")
    p.add_argument("--top-by", choices=sorted(ctdump.KEYS), default="dst",
                   help="group entries by source, destination, destination port, "
                        "source+destination+port, zone or mark (default dst)")
    p.add_argument("--top", type=plugin.positive_int, default=5, metavar="N",
                   help="groups listed at -v (default 5)")
    p.add_argument("--warning-state", type=state_threshold, action="append", default=[],
                   metavar="NAME=RANGE",
                   help="count of a state or flag that warns, e.g. time_wait=20000 or "
                        "unreplied=50000 (repeatable; names: the perfdata labels)")
    p.add_argument("--critical-state", type=state_threshold, action="append", default=[],
                   metavar="NAME=RANGE", help="the same, critical")
    p.add_argument("--source", choices=("auto", "proc", "netlink"), default="auto",
                   help="proc: /proc/net/nf_conntrack (or ip_conntrack); netlink: "
                        "`conntrack -L`; auto (default): proc where the kernel has it")
    return p


def share_ranges(args):
    if args.share_of == "entries":
        return args.warning, args.critical
    return (args.warning or nagiosplugin.Range(defaults.TABLE["warning"]),
            args.critical or nagiosplugin.Range(defaults.TABLE["critical"]))


@nagiosplugin.guarded(verbose=0)
def main(argv=None):
    args = parser().parse_args(argv)
    warning, critical = share_ranges(args)
    warn_state = dict(args.warning_state)
    crit_state = dict(args.critical_state)
    contexts = [
        plugin.ThresholdContext(f"count:{label}", warn_state.get(label),
                                crit_state.get(label))
        for label in COUNT_LABELS
    ]
    check = nagiosplugin.Check(
        TableDump(args),
        plugin.ThresholdContext("top_share", warning, critical, unit="%"),
        *contexts,
        plugin.PerfContext("max"),
        plugin.StateContext("timeout", Unknown),
        plugin.StateContext("missing", plugin.STATES[args.missing]),
        plugin.Summary(),
        name=NAME,
    )
    plugin.run(check, args)
