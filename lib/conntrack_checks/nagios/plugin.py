"""Nagios plumbing written once for every plugin of the suite.

Arguments that exit 3 (UNKNOWN) as the plugin guidelines want, Nagios
ranges checked before they reach nagiosplugin, perfdata without exponents
or booleans, contexts for fixed states, and the options every plugin shares.
"""

from __future__ import annotations

import argparse
import os
import re
import sys

import nagiosplugin
from nagiosplugin.state import Critical, Ok, Unknown, Warn

from .. import __version__, speed
from ..words import describe_violation, fmt_number

UNKNOWN_EXIT = 3

speed.untranslated_phrases()  # why: speed.py
STATES = {"ok": Ok, "warning": Warn, "critical": Critical, "unknown": Unknown}

_NUMBER = r"-?\d+(?:\.\d+)?"
# Compiled on first use (re caches it): default thresholds are Range objects.
_RANGE = rf"@?(?:(?:~|{_NUMBER}):)?(?:{_NUMBER})?\Z"


class ArgumentParser(argparse.ArgumentParser):
    """argparse that answers --help, --version and mistakes with exit 3 on stdout."""

    def __init__(self, *args, status_name: str, **kwargs):
        kwargs.setdefault("formatter_class", speed.HelpFormatter)
        super().__init__(*args, **kwargs)
        self.status_name = status_name

    def print_help(self, file=None) -> None:
        super().print_help(sys.stdout)

    def error(self, message: str) -> None:
        self.exit(message=f"{self.status_name} UNKNOWN - {message} (see --help)\n")

    def exit(self, status: int = 0, message: str | None = None) -> None:
        if message:
            sys.stdout.write(message)
        sys.stdout.flush()
        sys.exit(UNKNOWN_EXIT)


def nagios_range(text: str) -> nagiosplugin.Range:
    """argparse type: a Nagios range such as ``80``, ``10:``, ``~:5``, ``@10:20``."""
    if not text or text == "@" or not re.match(_RANGE, text):
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a Nagios range ([@]start:end, e.g. 80, 10:, ~:5, @10:20)"
        )
    try:
        return nagiosplugin.Range(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"{text!r}: {exc}") from None


def named_range(valid, names: str, normalize=str.lower, allow_none: bool = False):
    """argparse type for NAME=RANGE options (one threshold per counter or state).

    ``valid(name)`` says whether NAME is known; ``names`` lists them for the
    error message. With ``allow_none``, ``NAME=none`` removes a default.
    """

    def parse(text: str):
        name, sep, spec = text.partition("=")
        name = normalize(name.strip())
        if not sep or not valid(name):
            raise argparse.ArgumentTypeError(f"{text!r} is not NAME=RANGE with NAME {names}")
        if allow_none and spec == "none":
            return name, None
        return name, nagios_range(spec)

    return parse


def directory(text: str) -> str:
    """argparse type: an existing directory (a mistyped root must not read the wrong host)."""
    if not os.path.isdir(text):
        raise argparse.ArgumentTypeError(f"{text!r} is not a directory")
    return text


def positive_int(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number above 0")
    return int(text)


def count_arg(text: str) -> int:
    if not text.isdigit():
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number")
    return int(text)


def fmt_range(rng: nagiosplugin.Range | None) -> str:
    if rng is None:
        return ""
    inf = float("inf")
    out = "@" if rng.invert else ""
    if rng.start == -inf:
        out += "~:"
    elif rng.start != 0:
        out += fmt_number(rng.start) + ":"
    if rng.end != inf:
        out += fmt_number(rng.end)
    return out


def performance(label, value, uom="", warn=None, crit=None, min=None, max=None):
    """A nagiosplugin Performance with every number formatted for Nagios."""
    return nagiosplugin.Performance(
        label,
        fmt_number(value),
        uom or "",
        fmt_range(warn),
        fmt_range(crit),
        "" if min is None else fmt_number(min),
        "" if max is None else fmt_number(max),
    )


class ThresholdContext(nagiosplugin.ScalarContext):
    """ScalarContext whose perfdata is formatted for Nagios and that says why.

    ``perf_ranges(metric)`` may give other ranges for the perfdata than the
    ones evaluated (a count whose thresholds derive from a percentage).
    """

    def __init__(self, name, warning=None, critical=None, unit=""):
        super().__init__(name, warning, critical)
        self.warning_range = warning
        self.critical_range = critical
        self.unit = unit

    def evaluate(self, metric, resource):
        if self.critical_range is not None and not self.critical_range.match(metric.value):
            return self.result_cls(
                Critical, "critical " + describe_violation(self.critical_range, self.unit), metric
            )
        if self.warning_range is not None and not self.warning_range.match(metric.value):
            return self.result_cls(
                Warn, "warning " + describe_violation(self.warning_range, self.unit), metric
            )
        return self.result_cls(Ok, None, metric)

    def perf_ranges(self, metric):
        return self.warning_range, self.critical_range

    def performance(self, metric, resource):
        warn, crit = self.perf_ranges(metric)
        return performance(metric.name, metric.value, metric.uom, warn, crit,
                           metric.min, metric.max)


class PerfContext(nagiosplugin.Context):
    """Perfdata only, never alerts."""

    def performance(self, metric, resource):
        return performance(metric.name, metric.value, metric.uom, None, None,
                           metric.min, metric.max)


class StateContext(nagiosplugin.Context):
    """A fixed state chosen by an option; the metric's value is the hint text."""

    def __init__(self, name, state):
        super().__init__(name)
        self.state = state

    def evaluate(self, metric, resource):
        return self.result_cls(self.state, str(metric.value), metric)


class Summary(nagiosplugin.Summary):
    """Text from the resource: ``resource.status_text(results)`` and ``details``."""

    def ok(self, results):
        return self._text(results)

    def problem(self, results):
        return self._text(results)

    def _text(self, results):
        resource = first_resource(results)
        if resource is None:
            return str(results.first_significant)
        return resource.status_text(results)

    def verbose(self, results):
        lines = []
        for result in results:
            if result.state != Ok:
                lines.append(f"{result.state}: {result.metric.name}: {result.hint}")
        resource = first_resource(results)
        if resource is not None:
            lines.extend(getattr(resource, "details", []))
        return lines


def first_resource(results):
    """The Resource behind the results (a Summary's way to the domain values), or None."""
    for result in results:
        if result.metric is not None and result.metric.resource is not None:
            return result.metric.resource
    return None


def base_parser(prog: str, description: str, status_name: str,
                kernel: bool = True) -> ArgumentParser:
    """A parser with the options every plugin has.

    ``kernel``: also those of the plugins that read the table itself (the
    sysfs root, the state without nf_conntrack, the namespaces to check).
    """
    parser = ArgumentParser(prog=prog, description=description, status_name=status_name)
    parser.add_argument("-V", "--version", action="version",
                        version=f"{prog} (conntrack-checks) {__version__}")
    parser.add_argument("-v", "--verbose", action="count", default=0,
                        help="more output: -v says where each value came from, "
                             "-vv and -vvv add debug detail")
    parser.add_argument("-t", "--timeout", type=positive_int, default=10, metavar="SECONDS",
                        help="give up with UNKNOWN after this many seconds (default 10)")
    parser.add_argument("--proc-root", default="/proc", metavar="DIR", type=directory,
                        help="where the host's procfs is mounted (default /proc)")
    parser.add_argument("--netns-dir", default="/run/netns", help=argparse.SUPPRESS)
    if not kernel:
        return parser
    parser.add_argument("--sys-root", default="/sys", metavar="DIR", type=directory,
                        help="where the host's sysfs is mounted (default /sys)")
    parser.add_argument("--missing", choices=sorted(STATES), default="ok",
                        help="state when nf_conntrack is not loaded (default ok)")
    add_netns_options(parser, "check the network namespace `ip netns` calls NAME (root)",
                      "check the namespace of a namespace file such as /proc/PID/ns/net "
                      "(root)",
                      "check every network namespace of the host; the worst decides (root)")
    return parser


def add_netns_options(parser, name_help: str, path_help: str,
                      all_help: str | None = None) -> None:
    """--netns NAME, --netns-path PATH (and --all-netns with ``all_help``): one of them."""
    ns = parser.add_mutually_exclusive_group()
    ns.add_argument("--netns", metavar="NAME", help=name_help)
    ns.add_argument("--netns-path", metavar="PATH", help=path_help)
    if all_help:
        ns.add_argument("--all-netns", action="store_true", help=all_help)


def check(*objects, name: str) -> nagiosplugin.Check:
    """``nagiosplugin.Check(*objects, name=name)``, also with nagiosplugin 1.3.

    1.3 (Debian 12's and EPEL's python3-nagiosplugin) has no ``name``: it
    names the check after its first resource; the name is replaced here.
    """
    result = nagiosplugin.Check(*objects)
    result.name = name
    return result


def run(check: nagiosplugin.Check, args) -> None:
    """Run the check under the plugin's timeout and exit with its state."""
    check.main(verbose=args.verbose, timeout=args.timeout)


def execute(main) -> None:
    """Run an executable's ``main()``, then end the process at once with its exit code.

    No interpreter teardown (speed.fast_exit, which says what that forbids).
    Tests that call main() itself see SystemExit as usual.
    """
    try:
        main()
        code = 0
    except SystemExit as exc:
        code = exc.code
    if code is None:
        code = 0
    elif not isinstance(code, int):
        print(code, file=sys.stderr)
        code = 1
    speed.fast_exit(code)
