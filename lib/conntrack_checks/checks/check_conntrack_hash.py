"""check_conntrack_hash: is the conntrack hash table sized for its max?

Every lookup walks one hash chain; the average chain length is the load
factor: entries per bucket. Now = count / buckets; when full = max / buckets.
Kernels up to 5.14 sized max at 4 entries per bucket (8 when hashsize= was
given), kernels from 5.15 at 1; kube-proxy aims at 4. Past 8 per bucket
lookups slow down; from 5.15 the kernel refuses inserts into chains longer
than about 64 (counted as chaintoolong and insert_failed), which average
chains of 32 begin to reach.

The hash table is shared by all network namespaces, so with --all-netns the
load now sums the entries of every namespace.

-w/-c: load factor now (default 8 and 32). --warning-full/--critical-full:
load factor at a full table (default 8, no critical: a sizing problem is
not an outage yet).
"""

from __future__ import annotations

import nagiosplugin

from .. import defaults
from ..nagios import options, plugin
from ..nagios.usage import TableResource

NAME = "CONNTRACK HASH"


class ConntrackHash(TableResource):
    """Entries per hash bucket, now and at a full table."""

    def __init__(self, args):
        super().__init__(options.roots(args), lambda: options.namespaces(args),
                         want_buckets=True)

    def metrics(self):
        total = sum(row.count for row in self.counts)
        self.total = total
        yield nagiosplugin.Metric("load_factor", total / self.buckets, min=0,
                                  context="load_factor")
        yield nagiosplugin.Metric("full_load_factor", self.max / self.buckets, min=0,
                                  context="full_load_factor")
        yield nagiosplugin.Metric("buckets", self.buckets, min=0, context="perfdata")
        yield nagiosplugin.Metric("count", total, min=0, context="perfdata")
        if self.all_netns:
            self.details.append(
                f"load now counts the entries of all {len(self.counts)} namespaces: "
                "they share one hash table"
            )
        if self.max <= self.buckets:
            self.details.append("at least one bucket per entry: nothing to change")
            return
        suggest = max(self.max, 1024)
        self.details.append(
            f"to change the hash size now: sysctl -w net.netfilter.nf_conntrack_buckets="
            f"{suggest} (kernel 4.8+; older: echo {suggest} > "
            "/sys/module/nf_conntrack/parameters/hashsize); to keep it: add "
            f"'options nf_conntrack hashsize={suggest}' to "
            "/etc/modprobe.d/nf_conntrack.conf (and rebuild the initramfs if "
            "nf_conntrack loads from it); one bucket per entry is the 5.15+ default"
        )

    def text(self, results) -> str:
        hints = {r.metric.name: r.hint for r in results if r.hint}
        full = self.max / self.buckets
        now = self.total / self.buckets
        where = ""
        if self.all_netns:
            where = f" in {len(self.counts)} namespaces"
        elif self.counts[0].ns.path is not None:
            where = f" in netns {self.counts[0].ns.name}"
        text = (f"{self.buckets} buckets for max {self.max}: "
                f"{full:.2f} entries per bucket when full")
        if "full_load_factor" in hints:
            text += f" ({hints['full_load_factor']})"
        text += f", {now:.2f} now ({self.total} entries{where}"
        if "load_factor" in hints:
            text += f", {hints['load_factor']}"
        return text + ")"


def parser():
    limits = defaults.HASH
    p = plugin.base_parser("check_conntrack_hash", __doc__, NAME)
    p.add_argument("-w", "--warning", type=plugin.nagios_range, metavar="RANGE",
                   default=nagiosplugin.Range(limits["warning"]),
                   help=f"entries per bucket now that warn (default {limits['warning']})")
    p.add_argument("-c", "--critical", type=plugin.nagios_range, metavar="RANGE",
                   default=nagiosplugin.Range(limits["critical"]),
                   help="entries per bucket now that are critical "
                        f"(default {limits['critical']})")
    p.add_argument("--warning-full", type=plugin.nagios_range, metavar="RANGE",
                   default=nagiosplugin.Range(limits["warning_full"]),
                   help="entries per bucket at a full table that warn "
                        f"(default {limits['warning_full']})")
    p.add_argument("--critical-full", type=plugin.nagios_range, metavar="RANGE",
                   help="entries per bucket at a full table that are critical "
                        "(no default)")
    return p


@nagiosplugin.guarded(verbose=0)
def main(argv=None):
    args = parser().parse_args(argv)
    check = plugin.check(
        ConntrackHash(args),
        plugin.ThresholdContext("load_factor", args.warning, args.critical),
        plugin.ThresholdContext("full_load_factor", args.warning_full, args.critical_full),
        plugin.PerfContext("perfdata"),
        plugin.StateContext("missing", plugin.STATES[args.missing]),
        plugin.Summary(),
        name=NAME,
    )
    plugin.run(check, args)
