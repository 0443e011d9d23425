"""conntrack-report as text: one renderer per section, reading the keys its producer
in sections.py documents (--json prints the gathered dict itself).
"""

from __future__ import annotations

import os
import time

from .sections import STATUS_EXIT, worst_status

COLOURS = {"ok": "32", "warning": "33", "critical": "31", "unknown": "35", "heading": "1",
           "dim": "2"}


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
    exact = data.get("exact", True)
    if exact:
        lines = [f"  {data['entries']} entries read from {data['source']} in "
                 f"{data['seconds']:.2f} s"]
    else:
        lines = [f"  a sample of {data['entries_read']} of {data['entries']} entries read from "
                 f"{data['source']} in {data['seconds']:.2f} s"
                 + (", cut short by the time limit" if data.get("interrupted") else "")
                 + "; counts are estimates, shares +- their 95% margin"]
    for key, rows in (data.get("top") or {}).items():
        if not rows:
            continue
        lines.append(f"  by {key}: " + ", ".join(
            f"{r['key']} {'' if exact else 'about '}{r['entries']} "
            f"({r['share_of_entries']:.1f}%"
            + ("" if exact else f" +- {r['margin_of_entries']:.1f}%") + ")" for r in rows))
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
        lines += RENDERERS[name](data, paint)
    return "\n".join(lines) + "\n"


def use_colour(choice: str, stream) -> bool:
    if choice != "auto":
        return choice == "always"
    return bool(stream.isatty()) and not os.environ.get("NO_COLOR")
