"""check_conntrack_table: what fills the connection-tracking table?

Reads the entries of the table (/proc/net/nf_conntrack, or the ctnetlink
dump `conntrack -L` where the kernel has no proc file) and counts them by
protocol, TCP state and flag (ASSURED, UNREPLIED, NAT-ed), and by a key you
pick (--top-by): source, destination, destination port, source+destination
+port, zone or mark. -w/-c are Nagios ranges on the share of max held by
the biggest group (--share-of entries: share of the entries present);
--warning-state/--critical-state NAME=RANGE alert on the count of a state or
flag. Needs root (or CAP_NET_ADMIN with --source netlink).

A table bigger than --sample N entries is read only that far: a dump comes
in hash order, so its first entries are a uniform random sample of the
table. Its counts are then estimates ("about"), the sample's share times
the kernel's exact count, with the 95% margin of the share; --sample all
reads every entry. When -t strikes, what was read is the answer if it gives
every share within 2 points, else UNKNOWN with the shares seen.
"""

from __future__ import annotations

import argparse
import time

import nagiosplugin
from nagiosplugin.state import Unknown

from .. import defaults
from ..errors import ModuleMissing
from ..kernel import ctdump, dump, sysctl
from ..nagios import options, plugin

NAME = "CONNTRACK TABLE"
TCP_STATES = dump.TCP_STATES
COUNT_LABELS = ("total", "tcp", "udp", "icmp", "other", *TCP_STATES,
                "assured", "unreplied", "nated")

# conntrack-report and older callers: the section now lives in kernel/dump.py.
report_section = dump.report_section


def _share(part: int, whole: int) -> float:
    return 100.0 * part / whole if whole else 0.0


class TableDump(nagiosplugin.Resource):
    """The table of each selected namespace: counted whole, or estimated from a sample."""

    def __init__(self, args, deadline: float | None = None):
        self.args = args
        self.deadline = deadline
        self.roots = sysctl.Roots(args.proc_root, args.sys_root)
        self.tables: list[dump.TableRead] = []
        self.unreadable = []
        self.all_netns = False
        self.max = 0
        self.missing = None
        self.details: list[str] = []
        self.counts: dict[str, int] = {}
        self.worst: dump.TableRead | None = None
        self.short: dump.TableRead | None = None  # cut short by the timeout, too few read
        self.estimated = False
        self.top_share = 0.0
        self.top_margin = 0.0

    @property
    def name(self):
        return NAME

    def probe(self):
        args = self.args
        try:
            namespaces, self.all_netns = options.namespaces(args)
            self.tables, self.unreadable, self.max = dump.read_namespaces(
                self.roots, namespaces, self.all_netns, args.source, (args.top_by,),
                args.sample, self.deadline)
        except ModuleMissing as exc:
            self.missing = str(exc)
            return [nagiosplugin.Metric("nf_conntrack", str(exc), context="missing")]
        return list(self.metrics())

    def basis(self, table: dump.TableRead) -> int:
        return table.total if self.args.share_of == "entries" else self.max

    def biggest(self, table: dump.TableRead) -> tuple[str | None, int, int]:
        top = table.top(self.args.top_by, 1)
        return top[0] if top else (None, 0, 0)

    def share(self, table: dump.TableRead) -> tuple[float, float]:
        """The biggest group's share of the basis and its margin, in percent."""
        _, k, n = self.biggest(table)
        if self.args.share_of == "entries":
            return table.share(k), table.margin(k)
        scale = _share(table.total, self.max)
        return _share(n, self.max), table.margin(k) * scale / 100.0

    def metrics(self):
        summed: dict[str, int] = dict.fromkeys(COUNT_LABELS, 0)
        for table in self.tables:
            for label, value in dump.counts(table.totals()).items():
                summed[label] += value
        self.counts = summed
        self.estimated = any(not t.exact for t in self.tables)
        self.short = next((t for t in self.tables if not t.usable), None)
        self.worst = max(self.tables, key=lambda t: self.share(t)[0])
        self.top_share, self.top_margin = self.share(self.worst)
        self.details = details(self.tables, self.unreadable, self.max, self.args)
        yield nagiosplugin.Metric("max", self.max, min=0, context="max")
        if self.short is not None:
            # Too few entries for shares within MARGIN_LIMIT points: no counts
            # as perfdata (a partial count is no value of the table's).
            yield nagiosplugin.Metric(
                "timeout",
                f"timed out after {self.args.timeout} s reading {self.short.counts.source}",
                context="timeout")
            return
        for label in COUNT_LABELS:
            yield nagiosplugin.Metric(label, summed[label], min=0,
                                      context=f"count:{label}")
        yield nagiosplugin.Metric("top_share", self.top_share, "%", min=0, max=100,
                                  context="top_share")

    def _prefix(self, table: dump.TableRead) -> str:
        if self.all_netns:
            return (f"{len(self.tables)} namespaces, {self.counts['total']} entries; "
                    f"worst netns {table.ns.name}: ")
        if table.ns.path is not None:
            return f"netns {table.ns.name}: "
        return ""

    def status_text(self, results) -> str:
        if self.missing:
            return self.missing
        hints = {r.metric.name: r.hint for r in results if r.metric and r.hint
                 and int(r.state) > 0}
        if self.short is not None:
            text = hints["timeout"] + ": " + self._short_text(self.short)
        else:
            text = self._text(hints)
        if self.unreadable:
            text += f"; {len(self.unreadable)} namespaces not readable (see -v)"
        return text

    def _text(self, hints) -> str:
        args = self.args
        table = self.worst
        words = ctdump.KEY_WORDS[args.top_by]
        basis = "entries" if args.share_of == "entries" else "max"
        about = "about " if self.estimated else ""
        head = f"{table.total} entries ({_share(table.total, self.max):.1f}% of max {self.max})"
        rows = table.top(args.top_by, 3)
        if rows:
            text, _, n = rows[0]
            if table.exact:
                part = f"top {words} {text} holds {n} ({self.top_share:.1f}% of {basis}"
            else:
                part = (f"top {words} {text} holds about {n} ({self.top_share:.1f}% +- "
                        f"{self.top_margin:.1f}% of {basis}, from a sample of "
                        f"{table.read}")
                if table.counts.interrupted:
                    part += " cut short by the timeout"
            part += f", {hints['top_share']})" if "top_share" in hints else ")"
            if len(rows) > 1:
                sure = "" if table.exact else "about "
                part += ", then " + ", ".join(f"{t} ({sure}{m})" for t, _, m in rows[1:])
            head += f"; {part}"
        parts = [self._prefix(table) + head, self._protocols(about)]
        parts.append(", ".join(f"{f} {about}{self.counts[f]}" for f in dump.FLAGS))
        for label in COUNT_LABELS:
            if label in hints:
                parts.append(f"{label} {about}{self.counts[label]} ({hints[label]})")
        return "; ".join(parts)

    def _short_text(self, table: dump.TableRead) -> str:
        """What a read cut short too early saw: shares of the entries read, not counts."""
        read = table.read
        text = (f"{self._prefix(table)}{read} of {table.count} entries read, too few for "
                f"shares within {dump.MARGIN_LIMIT:g} points")
        if not read:
            return text
        words = ctdump.KEY_WORDS[self.args.top_by]
        rows = table.top(self.args.top_by, 3)
        part = f"top {words} {rows[0][0]} {table.share(rows[0][1]):.1f}%"
        if len(rows) > 1:
            part += ", then " + ", ".join(f"{t} {table.share(k):.1f}%" for t, k, _ in rows[1:])
        seen = dump.counts(table.counts.totals())
        protocols = ", ".join(f"{p} {table.share(seen[p]):.1f}%"
                              for p in ("tcp", "udp", "icmp", "other") if seen[p])
        flags = ", ".join(f"{f} {table.share(seen[f]):.1f}%" for f in dump.FLAGS)
        return f"{text}; of those read: {part}; {protocols}; {flags}"

    def _protocols(self, about: str = "") -> str:
        c = self.counts
        out = []
        if c["tcp"]:
            states = [f"{s} {c[s]}" for s in TCP_STATES if c[s]]
            out.append(f"tcp {about}{c['tcp']}" + (f" ({', '.join(states)})" if states else ""))
        out += [f"{p} {about}{c[p]}" for p in ("udp", "icmp", "other") if c[p]]
        return ", ".join(out) or "no entries"


def _inside(table: dump.TableRead) -> str:
    return "" if table.ns.path is None else f" inside netns {table.ns.name}"


def details(tables: list[dump.TableRead], unreadable, limit: int, args) -> list[str]:
    """The -v lines: each table's source, counts and ranked groups; namespaces not read."""
    lines: list[str] = []
    for table in tables:
        lines += _table_details(table, limit, args)
    for ns, why in unreadable:
        lines.append(f"netns {ns.name} not read: {why}")
    return lines


def _table_details(table: dump.TableRead, limit: int, args) -> list[str]:
    words = ctdump.KEY_WORDS[args.top_by]
    dumped = table.counts
    how = "read in chunks by cat in a child process" if dumped.piped else "read in chunks"
    if table.exact:
        lines = [f"{dumped.source}{_inside(table)}: {dumped.entries} entries "
                 f"({how}, {table.seconds:.2f} s; the kernel counted {table.count} just before)"]
    else:
        cut = ", cut short by the timeout" if dumped.interrupted else ""
        lines = [f"{dumped.source}{_inside(table)}: a sample of {dumped.entries} of "
                 f"{table.total} entries ({how}{cut}, {table.seconds:.2f} s; the kernel "
                 f"counted {table.count} just before); the counts below are estimates: "
                 f"share in the sample x {table.total}, +- the 95% margin of the share "
                 "(Wilson score interval)"]
    totals = table.totals()
    lines.append("protocols: " + _listing(totals["protocol"]))
    if totals["state"]:
        lines.append("states: " + _listing(totals["state"]))
    lines.append("families: " + _listing(totals["family"]))
    lines.append("flags: " + ", ".join(f"{f} {totals['flag'][f]}" for f in dump.FLAGS))
    rows = table.top(args.top_by, args.top)
    if table.exact:
        lines.append(f"{'rank':>4} {'entries':>9} {'% entries':>9} {'% max':>7}  {words}")
        lines += [f"{rank:>4} {n:>9} {table.share(n):>9.1f} {_share(n, limit):>7.1f}  {text}"
                  for rank, (text, _, n) in enumerate(rows, 1)]
    else:
        lines.append(f"{'rank':>4} {'entries':>9} {'% entries':>9} {'+-':>5} {'% max':>7}  "
                     f"{words}")
        lines += [f"{rank:>4} {n:>9} {table.share(k):>9.1f} {table.margin(k):>5.1f} "
                  f"{_share(n, limit):>7.1f}  {text}" for rank, (text, k, n) in enumerate(rows, 1)]
    grp = dumped.groups[args.top_by]
    if grp.error:
        lines.append(f"more than {grp.limit} distinct {words} values: counts may be low by up "
                     f"to {table.estimate(grp.error)} (rare values were dropped to bound memory)")
    if dumped.garbage:
        lines.append(f"{dumped.garbage} lines not understood, first: "
                     f"{dumped.sample.decode('ascii', 'replace')!r}")
    basis = "entries" if args.share_of == "entries" else "max"
    if table.exact:
        lines.append(f"thresholds -w/-c on the biggest group's share of {basis}")
    else:
        lines.append(f"thresholds -w/-c on the biggest group's estimated share of {basis} "
                     "(the point estimate; the margin is shown, not used)")
    return lines


def _listing(counter) -> str:
    return ", ".join(f"{k} {v}" for k, v in counter.most_common()) or "none"


def sample_size(text: str) -> int | None:
    """argparse type of --sample: a whole number above 0, or ``all`` (None)."""
    if text == "all":
        return None
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is neither a whole number above 0 nor all")
    return int(text)


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
    p.add_argument("--sample", type=sample_size, default=dump.DEFAULT_SAMPLE, metavar="N|all",
                   help="read at most N entries of a bigger table and estimate its counts "
                        "from them, with their 95%% margin (default "
                        f"{dump.DEFAULT_SAMPLE}); all: read every entry")
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
    started = time.monotonic()
    args = parser().parse_args(argv)
    # Stop reading in time to answer with what was read before -t strikes.
    deadline = started + args.timeout - min(1.0, 0.2 * args.timeout)
    warning, critical = share_ranges(args)
    warn_state = dict(args.warning_state)
    crit_state = dict(args.critical_state)
    contexts = [
        plugin.ThresholdContext(f"count:{label}", warn_state.get(label),
                                crit_state.get(label))
        for label in COUNT_LABELS
    ]
    check = plugin.check(
        TableDump(args, deadline),
        plugin.ThresholdContext("top_share", warning, critical, unit="%"),
        *contexts,
        plugin.PerfContext("max"),
        plugin.StateContext("timeout", Unknown),
        plugin.StateContext("missing", plugin.STATES[args.missing]),
        plugin.Summary(),
        name=NAME,
    )
    plugin.run(check, args)
