"""check_conntrack_tuning: which conntrack settings will bite?

Persistence: compares the running max, hash size and timeouts with what the
next boot applies (sysctl.d and /etc/sysctl.conf in systemd-sysctl's order,
hashsize= in modprobe.d or on the kernel command line, else the kernel's
default); warns about a conntrack sysctl that is applied before a loadable
nf_conntrack is loaded (lost), keys this kernel does not have, and EL's
IPTABLES_MODULES_UNLOAD=yes (every firewall restart resets the table).
Sizing: the kernel memory a full table pins as a share of RAM, the max
against the kernel's own default for this RAM, entries per bucket at a full
table. Timeouts: each TCP/UDP/ICMP/generic timeout against a limit.

Every finding has an id (--ignore ID silences it, shell patterns allowed),
the evidence and the fix: the command for now and the line that persists
it. The worst finding is on the first line, all of them with -v.
--config-root reads /etc, /run, /usr and /lib under another directory (a
host's root mounted in a container).
"""

from __future__ import annotations

import argparse

import nagiosplugin

from .. import defaults
from ..errors import ModuleMissing
from ..kernel import sizing
from ..nagios import options, plugin
from ..tuning import Analysis, Facts, ignored
from ..tuning.findings import FINDING_IDS, TIMEOUTS, Finding, Thresholds, finding_ids

NAME = "CONNTRACK TUNING"


class Tuning(nagiosplugin.Resource):
    def __init__(self, args, limits: Thresholds):
        self.args = args
        self.limits = limits
        self.facts: Facts | None = None
        self.analysis: Analysis | None = None
        self.missing = None
        self.shown: list[Finding] = []
        self.details: list[str] = []

    def probe(self):
        args = self.args
        namespaces, all_netns = options.namespaces(args)
        try:
            facts = Facts(options.roots(args), args.config_root, namespaces, all_netns)
        except ModuleMissing as exc:
            self.missing = str(exc)
            return [nagiosplugin.Metric("nf_conntrack", str(exc), context="missing")]
        analysis = Analysis(facts, self.limits)
        self.facts, self.analysis = facts, analysis
        findings = analysis.findings
        self.shown = [f for f in findings if not ignored(f, args.ignore)]
        self.details = analysis.details + [f"ignored: [{f.id}] {f.title}" for f in findings
                                           if ignored(f, args.ignore)]
        size = analysis.sizing
        metrics = [nagiosplugin.Metric(f.id, f, context="finding") for f in self.shown]
        return [
            *metrics,
            nagiosplugin.Metric("memory_share", size.share, "%", min=0, context="memory_share"),
            nagiosplugin.Metric("full_table", size.full_bytes, "B", min=0, context="perfdata"),
            nagiosplugin.Metric("max", facts.max, min=0, context="perfdata"),
            nagiosplugin.Metric("default_ratio", size.default_ratio, min=0,
                                context="default_ratio"),
            nagiosplugin.Metric("full_load_factor", size.full_load, min=0,
                                context="full_load_factor"),
            nagiosplugin.Metric("findings", len(self.shown), min=0, context="perfdata"),
        ]

    def status_text(self, results) -> str:
        if self.missing:
            return self.missing
        if not self.shown:
            size = self.analysis.sizing
            return (f"nothing to fix: max {self.facts.max} ({size.default_ratio:.2f} x kernel "
                    f"default), {size.full_load:.2f} entries per bucket when full, full table "
                    f"{sizing.fmt_bytes(size.full_bytes)} = {size.share:.1f}% of RAM, running "
                    "values match the boot configuration, timeouts within limits"
                    + self.unread_note())
        worst = self.shown[0]
        text = f"{worst.title} [{worst.id}]"
        more = [f.id for f in self.shown[1:]]
        if more:
            listed = ", ".join(more[:4]) + (", ..." if len(more) > 4 else "")
            text += f"; {len(more)} more: {listed} (see -v)"
        return text + self.unread_note()

    def unread_note(self) -> str:
        missed = len(self.facts.unreadable)
        return f"; timeouts of {missed} namespaces not readable (see -v)" if missed else ""


class FindingContext(nagiosplugin.Context):
    def evaluate(self, metric, resource):
        finding = metric.value
        return self.result_cls(plugin.STATES[finding.severity], finding.title, metric)


class RangesContext(plugin.PerfContext):
    """Perfdata with the ranges the analysis applied; the state comes from findings."""

    def __init__(self, name, warning=None, critical=None):
        super().__init__(name)
        self.ranges = (warning, critical)

    def performance(self, metric, resource):
        return plugin.performance(metric.name, metric.value, metric.uom, *self.ranges,
                                  metric.min, metric.max)


class Summary(plugin.Summary):
    def verbose(self, results):
        resource = plugin.first_resource(results)
        if resource is None:
            return []
        lines = []
        for finding in resource.shown:
            lines += finding.lines()
        return lines + resource.details


def thresholds(args) -> Thresholds:
    return Thresholds(nagiosplugin.Range, args.memory_warning, args.memory_critical,
                      args.hash_warning, args.default_warning, dict(args.timeout_limit or []))


def finding_pattern(text: str) -> str:
    """argparse type for --ignore: a finding id, or a shell pattern that matches one."""
    import fnmatch  # only when --ignore is given

    if not any(fnmatch.fnmatchcase(known, text) for known in finding_ids()):
        raise argparse.ArgumentTypeError(
            f"{text!r} matches no finding id ({', '.join(FINDING_IDS)})")
    return text


timeout_limit = plugin.named_range(
    TIMEOUTS.__contains__, f"one of {', '.join(TIMEOUTS)}",
    normalize=lambda name: name.replace("nf_conntrack_", ""))


def parser():
    p = plugin.base_parser("check_conntrack_tuning", __doc__, NAME)
    p.add_argument("--config-root", default="/", metavar="DIR", type=plugin.directory,
                   help="read /etc, /run, /usr and /lib under DIR (default /)")
    p.add_argument("--ignore", action="append", default=[], metavar="ID", type=finding_pattern,
                   help="silence the finding ID (repeatable; shell patterns such as "
                        "'timeout-*' allowed)")
    p.add_argument("--memory-warning", type=plugin.nagios_range, metavar="RANGE",
                   help="percent of RAM a full table may pin before it warns "
                        f"(default {defaults.TUNING['memory_warning']})")
    p.add_argument("--memory-critical", type=plugin.nagios_range, metavar="RANGE",
                   help="percent of RAM a full table may pin before it is critical "
                        f"(default {defaults.TUNING['memory_critical']})")
    p.add_argument("--default-warning", type=plugin.nagios_range, metavar="RANGE",
                   help="max as a multiple of the kernel's default for this RAM that is "
                        f"fine (default {defaults.TUNING['default_warning']})")
    p.add_argument("--hash-warning", type=plugin.nagios_range, metavar="RANGE",
                   help="entries per bucket at a full table that are fine "
                        f"(default {defaults.TUNING['hash_warning']})")
    p.add_argument("--timeout-limit", type=timeout_limit, action="append", metavar="NAME=RANGE",
                   help="limit for one timeout in seconds, e.g. "
                        "tcp_timeout_established=300:172800 (repeatable; defaults in --help "
                        "text of the README)")
    return p


@nagiosplugin.guarded(verbose=0)
def main(argv=None):
    args = parser().parse_args(argv)
    limits = thresholds(args)
    check = plugin.check(
        Tuning(args, limits),
        FindingContext("finding"),
        RangesContext("memory_share", limits.memory_warning, limits.memory_critical),
        RangesContext("default_ratio", limits.default_warning),
        RangesContext("full_load_factor", limits.hash_warning),
        plugin.PerfContext("perfdata"),
        plugin.StateContext("missing", plugin.STATES[args.missing]),
        Summary(),
        name=NAME,
    )
    plugin.run(check, args)

