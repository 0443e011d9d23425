"""conntrack-report: everything about the conntrack table, for the person on call.

One command, no options needed: usage per network namespace, hash load,
the kernel's counters since boot, recent "table full" events from the logs,
the top talkers (root) and the tuning findings with their fixes. Each
section comes from the same code as the plugins and stands alone: a section
that cannot be read says "not available" and why, the others still show.
Colour only on a terminal (NO_COLOR turns it off); --json for tools.

Exit status: 0 all sections fine, 1 a warning, 2 something critical, 3 a
mistake in the arguments.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import sys
import time

from .. import __version__, defaults
from ..errors import ModuleMissing, ProbeError
from ..kernel import netns, sysctl
from ..nagios import plugin, usage

STATUS_EXIT = {"ok": 0, "warning": 1, "critical": 2}
COLOURS = {"ok": "32", "warning": "33", "critical": "31", "unknown": "35", "heading": "1",
           "dim": "2"}
# Sections of the other plugins: module, title, keyword arguments of report_section
PEER_SECTIONS = (
    ("counters", "check_conntrack_stats", "Counters since boot", {}),
    ("events", "check_conntrack_log", "Table full events, last 24 hours",
     {"since_seconds": 86400}),
    ("talkers", "check_conntrack_table", "Top talkers", {"top": 5}),
)


class NotAvailable(Exception):
    """A section that cannot be shown; the message says why."""


def usage_section(roots: sysctl.Roots, as_root: bool) -> dict:
    """Entries of each namespace against the max, read as check_conntrack reads them."""
    every = False
    if as_root:  # a --proc-root tree without processes has no namespaces to enter
        try:
            every = bool(netns.discover(roots.proc))
        except ProbeError:
            every = False
    args = argparse.Namespace(proc_root=roots.proc, sys_root=roots.sys, all_netns=every,
                              netns=None, netns_path=None, netns_dir=netns.NETNS_RUN_DIR)
    table = usage.TableResource(args)
    table.want_buckets = True
    table.read()
    warning, critical = ranges(defaults.CONNTRACK, "warning", "critical")
    rows, worst = [], "ok"
    for row in sorted(table.counts, key=lambda r: -r.count):
        percent = 100.0 * row.count / table.max if table.max else None
        state = "ok" if percent is None else state_of(percent, warning, critical)
        worst = max(worst, state, key=STATUS_EXIT.get)
        rows.append({"namespace": row.ns.name if row.ns.path else "this namespace",
                     "inode": row.ns.inode, "entries": row.count,
                     "percent": None if percent is None else round(percent, 1),
                     "status": state})
    section = {"status": worst, "max": table.max, "namespaces": rows,
               "unreadable": [{"namespace": ns.name, "reason": why}
                              for ns, why in table.unreadable],
               "thresholds_percent": {"warning": warning.end, "critical": critical.end}}
    if not as_root:
        section["note"] = ("only this process's namespace: reading the others needs root "
                           "(see contrib/sudoers)")
    elif not every:
        section["note"] = f"only this process's namespace: no processes under {roots.proc}"
    return section, table


def ranges(limits: dict, *names: str) -> list:
    """A check's default thresholds (defaults.py) as Nagios ranges."""
    import nagiosplugin

    return [nagiosplugin.Range(limits[name]) for name in names]


def state_of(value: float, warning, critical) -> str:
    """"ok", "warning" or "critical": the value against Nagios ranges, critical first."""
    if not critical.match(value):
        return "critical"
    return "ok" if warning.match(value) else "warning"


def hash_section(table) -> dict:
    warning, critical, warning_full = ranges(defaults.HASH, "warning", "critical",
                                             "warning_full")
    total = sum(row.count for row in table.counts)
    now, full = total / table.buckets, table.max / table.buckets
    status = state_of(now, warning, critical)
    if status == "ok" and not warning_full.match(full):
        status = "warning"
    return {"status": status, "buckets": table.buckets, "max": table.max, "entries": total,
            "namespaces": len(table.counts), "load_now": round(now, 3),
            "load_when_full": round(full, 3)}


def fullest_namespace(table):
    """The namespace with the most entries when it is not this one, else None."""
    if table is None or not table.counts:
        return None
    row = max(table.counts, key=lambda r: r.count)
    here = [r.count for r in table.counts if r.ns.is_host]
    if row.ns.is_host or (here and row.count <= here[0]):
        return None
    return row.ns


def inside(ns, function, *args):
    """``function(*args)`` run inside the namespace ``ns`` (setns there and back)."""
    with netns.Entering() as entering, entering.inside(ns):
        return function(*args)


def peer_section(module: str, roots: sysctl.Roots, kwargs: dict) -> dict:
    try:
        found = importlib.import_module(f"conntrack_checks.checks.{module}")
    except ImportError as exc:
        raise NotAvailable(f"{module} is not part of this installation ({exc})") from None
    function = getattr(found, "report_section", None)
    if function is None:
        raise NotAvailable(f"{module} has no report_section() in this version")
    return function(roots, **kwargs)


def gather(roots: sysctl.Roots, config_root: str = "/", as_root: bool | None = None) -> dict:
    if as_root is None:
        as_root = os.geteuid() == 0
    report = {"host": os.uname().nodename, "kernel": os.uname().release,
              "generated": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
              "as_root": as_root, "version": __version__, "sections": {}}
    sections = report["sections"]
    table = None

    def run(name, title, call):
        try:
            data = call()
        except (ProbeError, NotAvailable) as exc:
            data = {"available": False, "reason": str(exc)}
        except Exception as exc:  # a broken section must not hide the others
            data = {"available": False, "reason": f"failed: {type(exc).__name__}: {exc}"}
        else:
            data = dict(data, available=True)
        data["title"] = title
        sections[name] = data

    def read_usage():
        nonlocal table
        section, table = usage_section(roots, as_root)
        return section

    run("usage", "Usage per namespace", read_usage)
    run("hash", "Hash table", lambda: hash_section(table) if table else _unavailable(
        sections["usage"]))
    fullest = fullest_namespace(table) if as_root else None
    for name, module, title, kwargs in PEER_SECTIONS:
        if name == "talkers" and fullest is not None:
            kwargs = dict(kwargs, namespace=fullest)
            title += f" (netns {fullest.name}, the fullest)"
        shown = f"{title} (this namespace)" if name == "counters" and fullest else title
        run(name, shown, lambda m=module, k=kwargs: peer_section(m, roots, k))
        if name == "counters" and fullest is not None:
            run("counters_fullest", f"{title} (netns {fullest.name}, the fullest)",
                lambda m=module, k=kwargs: inside(fullest, peer_section, m, roots, k))
    from ..checks.check_conntrack_tuning import report_section

    run("tuning", "Tuning", lambda: report_section(roots, config_root=config_root))
    try:
        sysctl.read_count(roots)
        report["loaded"] = True
    except ModuleMissing as exc:
        report["loaded"] = False
        report["not_loaded"] = str(exc)
    except ProbeError:
        report["loaded"] = True
    return report


def _unavailable(usage_data: dict):
    raise NotAvailable(usage_data.get("reason", "the usage section could not be read"))


def worst_status(report: dict) -> str:
    states = [s.get("status") for s in report["sections"].values() if s.get("available")]
    return max((s for s in states if s in STATUS_EXIT), key=STATUS_EXIT.get, default="ok")


# text -------------------------------------------------------------------------

class Paint:
    def __init__(self, enabled: bool):
        self.enabled = enabled

    def __call__(self, text: str, style: str) -> str:
        code = COLOURS.get(style)
        return f"\033[{code}m{text}\033[0m" if self.enabled and code else text

    def state(self, status: str) -> str:
        return self(status.upper(), status)


def bar(percent: float, width: int = 20) -> str:
    filled = min(width, round(percent / 100 * width))
    return "[" + "#" * filled + "." * (width - filled) + "]"


def render_usage(data: dict, paint: Paint) -> list[str]:
    rows = data["namespaces"]
    width = max([len(r["namespace"]) for r in rows] + [9])
    lines = []
    for row in rows:
        if row["percent"] is None:
            used = f"{row['entries']:>9} entries, no limit (nf_conntrack_max is 0)"
        else:
            used = (f"{row['entries']:>9} of {data['max']}  {row['percent']:5.1f}%  "
                    f"{bar(row['percent'])}")
        state = f"  {paint.state(row['status'])}" if row["status"] != "ok" else ""
        lines.append(f"  {row['namespace']:<{width}}  {used}{state}")
    for missed in data["unreadable"]:
        lines.append(f"  {missed['namespace']}: not readable: {missed['reason']}")
    if data.get("note"):
        lines.append(paint(f"  ({data['note']})", "dim"))
    return lines


def render_hash(data: dict, paint: Paint) -> list[str]:
    return [f"  {data['buckets']} buckets for max {data['max']}: "
            f"{data['load_when_full']:.2f} entries per bucket when full, "
            f"{data['load_now']:.2f} now ({data['entries']} entries in "
            f"{data['namespaces']} namespace{'s' if data['namespaces'] != 1 else ''})"]


def render_tuning(data: dict, paint: Paint) -> list[str]:
    lines = []
    facts = data.get("facts", {})
    if "full_table_bytes" in facts:
        from ..kernel.sizing import fmt_bytes

        lines.append(f"  a full table pins {fmt_bytes(facts['full_table_bytes'])} "
                     f"({facts['memory_share_percent']:.1f}% of RAM, "
                     f"{facts['entry_bytes']} B per entry"
                     + ("" if facts.get("entry_bytes_source") else ", typical size: "
                        "the slab size needs root") + ")")
    if not data["findings"]:
        lines.append("  nothing to fix")
    for finding in data["findings"]:
        lines.append(f"  {paint.state(finding['severity'])} [{finding['id']}] "
                     f"{finding['title']}")
        for evidence in finding["evidence"]:
            lines.append(paint(f"      {evidence}", "dim"))
        for when in ("now", "persist"):
            if finding["fix"].get(when):
                lines.append(f"      {when}: {finding['fix'][when]}")
    return lines


SKIP_KEYS = {"available", "title", "status", "summary"}


def render_generic(data: dict, paint: Paint, indent: str = "  ") -> list[str]:
    """Any other section's dict, readable: scalars as key: value, lists below."""
    lines = []
    if isinstance(data.get("summary"), str):
        lines.append(indent + data["summary"])
    for key, value in data.items():
        if key in SKIP_KEYS:
            continue
        label = key.replace("_", " ")
        if isinstance(value, dict):
            if not value:
                continue
            if all(not isinstance(v, (dict, list)) for v in value.values()):
                lines.append(f"{indent}{label}: " + ", ".join(
                    f"{k.replace('_', ' ')} {_scalar(v)}" for k, v in value.items()))
            else:
                lines.append(f"{indent}{label}:")
                lines += render_generic(value, paint, indent + "  ")
        elif isinstance(value, list):
            if not value:
                lines.append(f"{indent}{label}: none")
                continue
            lines.append(f"{indent}{label}:")
            for item in value:
                if isinstance(item, dict):
                    lines.append(f"{indent}  - " + ", ".join(
                        f"{k.replace('_', ' ')} {_scalar(v)}" for k, v in item.items()
                        if not isinstance(v, (dict, list))))
                else:
                    lines.append(f"{indent}  - {_scalar(item)}")
        else:
            lines.append(f"{indent}{label}: {_scalar(value)}")
    return lines


def _scalar(value) -> str:
    if isinstance(value, float):
        return f"{value:.3f}".rstrip("0").rstrip(".")
    if value is None:
        return "-"
    return str(value)


def when(stamp) -> str:
    if not isinstance(stamp, (int, float)):
        return "-"
    return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(stamp))


def render_counters(data: dict, paint: Paint) -> list[str]:
    totals = data["totals"]
    cpus = len(data.get("cpus") or [])
    lines = [f"  since nf_conntrack loaded (or the namespace was created), from "
             f"{data['origin']}, summed over {cpus} CPUs; {data['entries']} entries now"]
    first = [k for k in ("drop", "early_drop", "insert_failed", "clash_resolve", "chaintoolong",
                         "invalid", "error", "search_restart") if k in totals]
    rest = [k for k in totals if k not in first and totals[k]]
    for keys in (first, rest):
        if keys:
            lines.append("  " + ", ".join(
                paint(f"{k} {totals[k]}", "warning") if k in ("drop", "early_drop",
                                                               "insert_failed") and totals[k]
                else f"{k} {totals[k]}" for k in keys))
    estimate = data.get("table_full_drops")
    if estimate is not None:
        text = f"  packets dropped because the table was full: {estimate}"
        lines.append(paint(text, "warning") if estimate else text)
    return lines


def render_events(data: dict, paint: Paint) -> list[str]:
    count = data["table_full"]
    hours = data.get("since_seconds", 86400) / 3600
    text = (f"  {count} 'table full' message{'s' if count != 1 else ''} in the last "
            f"{fmt_hours(hours)} (source: {data['source']})")
    lines = [paint(text, "critical") if count else text]
    if count:
        if data.get("suppressed_estimate"):
            lines.append(f"  about {data['suppressed_estimate']} more hidden by the kernel's "
                         "rate limit (estimate)")
        lines.append(f"  first {when(data.get('first'))}, last {when(data.get('last'))}")
        per = data.get("namespaces") or {}
        if per:
            lines.append("  by namespace: " + ", ".join(
                f"{k} {v}" for k, v in sorted(per.items(), key=lambda kv: -kv[1])))
    if data.get("expectation_full"):
        lines.append(f"  expectation table full: {data['expectation_full']}")
    shown = data.get("lines") or []
    if shown:
        lines.append(f"  last {min(len(shown), 5)} lines:")
        lines += [paint(f"    {line}", "dim") for line in shown[-5:]]
    if data.get("lost_records"):
        lines.append(f"  {data['lost_records']} kernel log records were lost (buffer overrun)")
    return lines


def fmt_hours(hours: float) -> str:
    return f"{hours:g} hours" if hours != 1 else "hour"


def render_talkers(data: dict, paint: Paint) -> list[str]:
    lines = [f"  {data['entries']} entries read from {data['source']} in "
             f"{data['seconds']:.2f} s" + (" (interrupted)" if data.get("interrupted") else "")]
    for key, rows in (data.get("top") or {}).items():
        if not rows:
            continue
        lines.append(f"  by {key}: " + ", ".join(
            f"{r['key']} {r['entries']} ({r['share_of_entries']:.1f}%)" for r in rows))
    for label in ("states", "protocols"):
        values = data.get(label) or {}
        if values:
            lines.append(f"  {label}: " + ", ".join(f"{k} {v}" for k, v in values.items()))
    flags = data.get("flags") or {}
    if flags:
        lines.append("  " + ", ".join(f"{k} {v}" for k, v in flags.items()))
    return lines


RENDERERS = {"usage": render_usage, "hash": render_hash, "tuning": render_tuning,
             "counters": render_counters, "counters_fullest": render_counters,
             "events": render_events, "talkers": render_talkers}


def render_text(report: dict, paint: Paint) -> str:
    who = "root" if report["as_root"] else "an unprivileged user (some sections need root)"
    lines = [paint(f"conntrack report for {report['host']}", "heading") +
             f", {report['generated']}, kernel {report['kernel']}, run as {who}"]
    if not report.get("loaded", True):
        lines.append(report["not_loaded"])
    lines.append(f"overall: {paint.state(worst_status(report))}")
    for name, data in report["sections"].items():
        heading = paint(f"== {data['title']} ==", "heading")
        status = data.get("status")
        if data["available"] and status in STATUS_EXIT:
            heading += f" {paint.state(status)}"
        lines += ["", heading]
        if not data["available"]:
            lines.append(f"  not available: {data['reason']}")
            continue
        try:
            lines += RENDERERS.get(name, render_generic)(data, paint)
        except (KeyError, TypeError, ValueError, AttributeError):
            lines += render_generic(data, paint)  # a shape this version does not know
    return "\n".join(lines) + "\n"


def use_colour(choice: str, stream) -> bool:
    if choice != "auto":
        return choice == "always"
    return bool(stream.isatty()) and not os.environ.get("NO_COLOR")


class ArgumentParser(argparse.ArgumentParser):
    def error(self, message: str) -> None:
        """Exit 3, not 2: 2 means a critical section."""
        self.print_usage(sys.stderr)
        self.exit(3, f"{self.prog}: error: {message}\n")


def parser() -> argparse.ArgumentParser:
    p = ArgumentParser(prog="conntrack-report", description=__doc__,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("-V", "--version", action="version",
                   version=f"conntrack-report (conntrack-checks) {__version__}")
    p.add_argument("--json", action="store_true", help="JSON for tools instead of text")
    p.add_argument("--color", "--colour", choices=("auto", "always", "never"), default="auto",
                   help="colour: auto (on a terminal unless NO_COLOR is set), always, never")
    p.add_argument("--proc-root", default="/proc", metavar="DIR", type=plugin.directory,
                   help="where the host's procfs is mounted (default /proc)")
    p.add_argument("--sys-root", default="/sys", metavar="DIR", type=plugin.directory,
                   help="where the host's sysfs is mounted (default /sys)")
    p.add_argument("--config-root", default="/", metavar="DIR", type=plugin.directory,
                   help="read /etc, /run, /usr and /lib under DIR (default /)")
    return p


def main(argv=None) -> None:
    args = parser().parse_args(argv)
    report = gather(sysctl.Roots(args.proc_root, args.sys_root), args.config_root)
    if args.json:
        sys.stdout.write(json.dumps(report, indent=2, default=str) + "\n")
    else:
        sys.stdout.write(render_text(report, Paint(use_colour(args.color, sys.stdout))))
    sys.stdout.flush()
    sys.exit(STATUS_EXIT[worst_status(report)])
