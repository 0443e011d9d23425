"""check_conntrack: how full is the connection-tracking table?

Compares the number of tracked connections (nf_conntrack_count, per network
namespace) with the table's limit (nf_conntrack_max, global, applied to each
namespace separately). When a namespace reaches the limit the kernel drops
new connections and logs "table full, dropping packet".

Thresholds -w/-c are Nagios ranges on the usage in percent of max.
--warning-count/--critical-count are ranges on the number of entries; given
alone they replace the percentage defaults, given with -w/-c both apply.
"""

from __future__ import annotations

import math

import nagiosplugin
from nagiosplugin.state import Warn

from .. import defaults
from ..nagios import options, plugin
from ..nagios.plugin import fmt_number
from ..nagios.usage import TableResource, worst_rows

NAME = "CONNTRACK"


class Conntrack(TableResource):
    """The table's count against its max, per namespace."""

    def __init__(self, args):
        super().__init__(options.roots(args), lambda: options.namespaces(args))
        self.expect_max = args.expect_max

    def metrics(self):
        limit = self.max
        for row in self.counts:
            yield nagiosplugin.Metric(self.label("count", row), row.count, min=0,
                                      max=limit or None, context="count")
            if limit:
                yield nagiosplugin.Metric(self.label("usage", row),
                                          100.0 * row.count / limit, "%",
                                          min=0, max=100, context="usage")
        yield nagiosplugin.Metric("max", limit, min=0, context="max")
        if self.all_netns:
            yield nagiosplugin.Metric("namespaces", len(self.counts), min=0,
                                      context="namespaces")
        expect = self.expect_max
        if expect is not None and expect != limit:
            yield nagiosplugin.Metric(
                "expect_max",
                f"nf_conntrack_max is {limit}, expected {expect}: a reboot, module "
                "reload or firewall restart reset it; persist it with "
                f"'net.netfilter.nf_conntrack_max = {expect}' in "
                "/etc/sysctl.d/90-conntrack.conf",
                context="expect_max",
            )
        if self.all_netns:
            for row in sorted(self.counts, key=lambda r: -r.count):
                where = f"net:[{row.ns.inode}]" if row.ns.inode else row.ns.path
                pids = f", pids {','.join(map(str, row.ns.pids))}" if row.ns.pids else ""
                self.details.append(f"{row.ns.name} ({where}{pids}): {self.entries(row)}"
                                    + (")" if limit else ""))
        if self.counts and limit:
            fullest = max(self.counts, key=lambda r: r.count)
            if 100.0 * fullest.count / limit >= 50:
                self.details.append(
                    "to raise the limit now: sysctl -w net.netfilter.nf_conntrack_max="
                    f"{limit * 2}; to keep it: add 'net.netfilter.nf_conntrack_max = "
                    f"{limit * 2}' to /etc/sysctl.d/90-conntrack.conf; to see what fills "
                    "the table: conntrack -L"
                )

    def entries(self, row) -> str:
        if not self.max:
            return f"{row.count} entries, no limit (nf_conntrack_max is 0)"
        return (f"{row.count} of {self.max} entries "
                f"({100.0 * row.count / self.max:.1f}%")

    def text(self, results) -> str:
        rows, verdict = worst_rows(self, results, key=lambda r: r.count)
        parts = []
        for row in rows:
            state, hint = verdict.get(row.ns.label, (None, None))
            entries = self.entries(row)
            if self.max:
                entries += f", {hint})" if hint else ")"
            elif hint:
                entries += f" ({hint})"
            if not self.all_netns or (state and int(state)) or not parts:
                parts.append(row.ns.prefix(self.all_netns) + entries)
        text = "; ".join(parts)
        if self.all_netns:
            bad = sum(1 for s, _ in verdict.values() if int(s) > 0)
            head = (f"{bad} of {len(self.counts)} namespaces over threshold: "
                    if bad else f"{len(self.counts)} namespaces, fullest ")
            text = head + text
            if self.unreadable:
                text += f"; {len(self.unreadable)} not readable (see -v)"
        for result in results:
            if result.metric.name == "expect_max":
                text += "; " + result.hint
        return text


class CountContext(plugin.ThresholdContext):
    """Entries; perfdata thresholds in entries even when set in percent."""

    def __init__(self, warning, critical, usage_warning, usage_critical):
        super().__init__("count", warning, critical)
        self.usage_ranges = (usage_warning, usage_critical)

    def perf_ranges(self, metric):
        if self.warning_range is not None or self.critical_range is not None:
            return self.warning_range, self.critical_range
        if not metric.max:
            return None, None
        return tuple(percent_to_count(r, metric.max) for r in self.usage_ranges)


def percent_to_count(rng, limit: int):
    """The same range in entries: count alerts exactly when usage would."""
    if rng is None:
        return None
    start = rng.start if math.isinf(rng.start) else math.ceil(rng.start * limit / 100)
    end = rng.end if math.isinf(rng.end) else math.floor(rng.end * limit / 100)
    if start > end:
        return None
    spec = ("@" if rng.invert else "") + ("~" if start == -math.inf else fmt_number(start))
    spec += ":" + ("" if end == math.inf else fmt_number(end))
    return nagiosplugin.Range(spec)


def parser():
    p = plugin.base_parser("check_conntrack", __doc__, NAME)
    p.add_argument("-w", "--warning", type=plugin.nagios_range, metavar="RANGE",
                   help="usage in percent of max that warns "
                        f"(default {defaults.CONNTRACK['warning']})")
    p.add_argument("-c", "--critical", type=plugin.nagios_range, metavar="RANGE",
                   help="usage in percent of max that is critical "
                        f"(default {defaults.CONNTRACK['critical']})")
    p.add_argument("--warning-count", type=plugin.nagios_range, metavar="RANGE",
                   help="number of entries that warns (no default)")
    p.add_argument("--critical-count", type=plugin.nagios_range, metavar="RANGE",
                   help="number of entries that is critical (no default)")
    p.add_argument("--expect-max", type=plugin.count_arg, metavar="N",
                   help="WARNING when nf_conntrack_max is not N (the setting was lost)")
    return p


def usage_ranges(args):
    """-w/-c, with the defaults unless count thresholds replace them."""
    counts_given = args.warning_count is not None or args.critical_count is not None
    percent_given = args.warning is not None or args.critical is not None
    if counts_given and not percent_given:
        return None, None
    return (args.warning or nagiosplugin.Range(defaults.CONNTRACK["warning"]),
            args.critical or nagiosplugin.Range(defaults.CONNTRACK["critical"]))


@nagiosplugin.guarded(verbose=0)
def main(argv=None):
    args = parser().parse_args(argv)
    warning, critical = usage_ranges(args)
    check = plugin.check(
        Conntrack(args),
        plugin.ThresholdContext("usage", warning, critical, unit="%"),
        CountContext(args.warning_count, args.critical_count, warning, critical),
        plugin.PerfContext("max"),
        plugin.PerfContext("namespaces"),
        plugin.StateContext("expect_max", Warn),
        plugin.StateContext("missing", plugin.STATES[args.missing]),
        plugin.Summary(),
        name=NAME,
    )
    plugin.run(check, args)
