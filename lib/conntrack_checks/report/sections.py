"""The report's sections: a plain list of (name, title, function), in the order shown.

Each function takes the Host and returns its section as JSON-able data (the
keys the renderers in render.py read; tests/test_report.py checks them
against what each function really produces; "status", ok/warning/critical,
only where a section judges) or raises ProbeError when the section cannot
be read. gather() runs each one on its own: a section that
fails says why and the others still show. The data come from the same
domain functions as the plugins (report_section() beside each reader), the
thresholds from defaults.py: the report never imports a check module.
"""

from __future__ import annotations

import os
import time

from .. import __version__, defaults
from ..errors import ModuleMissing, ProbeError
from ..kernel import ctstats, netns, sysctl
from ..nagios import usage

STATUS_EXIT = {"ok": 0, "warning": 1, "critical": 2}
DAY = 86400


class NotAvailable(Exception):
    """A section that cannot be shown; the message says why."""


class Host:
    """What the sections share: where to read, who reads, and what usage found.

    ``table`` (the counts per namespace) and ``fullest`` (the namespace with
    the most entries when that is not this one, root only) are set by the
    usage section, which runs first; the hash, counters and talkers sections
    use them. ``failed``: {section name: why it is not available}.
    """

    __slots__ = ("as_root", "config_root", "failed", "fullest", "roots", "table")

    def __init__(self, roots: sysctl.Roots, config_root: str, as_root: bool):
        self.roots = roots
        self.config_root = config_root
        self.as_root = as_root
        self.table = None
        self.fullest = None
        self.failed: dict[str, str] = {}


def ranges(limits: dict, *names: str) -> list:
    """A check's default thresholds (defaults.py) as Nagios ranges."""
    import nagiosplugin

    return [nagiosplugin.Range(limits[name]) for name in names]


def state_of(value: float, warning, critical) -> str:
    """"ok", "warning" or "critical": the value against Nagios ranges, critical first."""
    if not critical.match(value):
        return "critical"
    return "ok" if warning.match(value) else "warning"


def usage_section(host: Host) -> dict:
    """Entries of each namespace against the max, read as check_conntrack reads them.

    Keys: status, max, namespaces [{namespace, inode, entries, percent,
    status}], unreadable [{namespace, reason}], thresholds_percent {warning,
    critical}, note (when only this namespace could be read).
    """
    roots = host.roots
    found = []
    if host.as_root:  # a --proc-root tree without processes has no namespaces to enter
        try:
            found = netns.discover(roots.proc)
        except ProbeError:
            found = []
    every = bool(found)
    namespaces = found if every else [netns.Namespace.current()]
    table = usage.TableResource(roots, namespaces, every, want_buckets=True)
    table.read()
    warning, critical = ranges(defaults.CONNTRACK, "warning", "critical")
    rows, worst = [], "ok"
    for row in sorted(table.counts, key=lambda r: -r.count):
        percent = 100.0 * row.count / table.max if table.max else None
        state = "ok" if percent is None else state_of(percent, warning, critical)
        worst = max(worst, state, key=STATUS_EXIT.get)
        rows.append({"namespace": row.ns.name, "inode": row.ns.inode, "entries": row.count,
                     "percent": None if percent is None else round(percent, 1),
                     "status": state})
    section = {"status": worst, "max": table.max, "namespaces": rows,
               "unreadable": [{"namespace": ns.name, "reason": why}
                              for ns, why in table.unreadable],
               "thresholds_percent": {"warning": warning.end, "critical": critical.end}}
    if not host.as_root:
        section["note"] = ("only this process's namespace: reading the others needs root "
                           "(see contrib/sudoers)")
    elif not every:
        section["note"] = f"only this process's namespace: no processes under {roots.proc}"
    host.table = table
    host.fullest = fullest_namespace(table) if host.as_root else None
    return section


def hash_section(table) -> dict:
    """Entries per bucket now and at a full table, against check_conntrack_hash's defaults.

    Keys: status, buckets, max, entries, namespaces, load_now, load_when_full.
    """
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


def hash_load(host: Host) -> dict:
    if host.table is None:
        raise NotAvailable(host.failed.get("usage", "the usage section could not be read"))
    return hash_section(host.table)


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


def counters(host: Host) -> dict:
    """The kernel's counters of this namespace: see ctstats.report_section for the keys."""
    return ctstats.report_section(host.roots)


def counters_in_fullest(host: Host) -> dict | None:
    """The same in the fullest namespace; None (not shown) when there is none."""
    if host.fullest is None:
        return None
    return inside(host.fullest, ctstats.report_section, host.roots)


def events(host: Host) -> dict:
    """Table-full messages of the last 24 hours: see the log's report_section."""
    from ..logs.events import report_section

    return report_section(host.roots, since_seconds=DAY)


def talkers(host: Host) -> dict:
    """The biggest groups of the fullest namespace (else this one), from a sample when big."""
    from ..kernel.dump import report_section

    return report_section(host.roots, top=5, namespace=host.fullest)


def tuning(host: Host) -> dict:
    """The tuning findings and their fixes: the tuning analysis' report_section."""
    import nagiosplugin

    from ..tuning import Thresholds, report_section

    return report_section(host.roots, Thresholds(nagiosplugin.Range),
                          config_root=host.config_root)


SECTIONS = [
    ("usage", "Usage per namespace", usage_section),
    ("hash", "Hash table", hash_load),
    ("counters", "Counters since boot", counters),
    ("counters_fullest", "Counters since boot", counters_in_fullest),
    ("events", "Table full events, last 24 hours", events),
    ("talkers", "Top talkers", talkers),
    ("tuning", "Tuning", tuning),
]


def where(name: str, host: Host) -> str:
    """Which namespace a title names, once the report shows two."""
    if host.fullest is None:
        return ""
    if name == "counters":
        return f" ({netns.Namespace.current().describe()})"
    if name in ("counters_fullest", "talkers"):
        return f" (netns {host.fullest.name}, the fullest)"
    return ""


def run(name: str, function, host: Host) -> dict | None:
    """One section's data, or why it is not available; never raises."""
    try:
        data = function(host)
    except (ProbeError, NotAvailable) as exc:
        return {"available": False, "reason": str(exc)}
    except Exception as exc:  # a broken section must not hide the others
        return {"available": False, "reason": f"failed: {type(exc).__name__}: {exc}"}
    return None if data is None else dict(data, available=True)


def gather(roots: sysctl.Roots, config_root: str = "/", as_root: bool | None = None,
           sections=None) -> dict:
    """The whole report as JSON-able data (``sections``: SECTIONS unless given)."""
    if as_root is None:
        as_root = os.geteuid() == 0
    report = {"host": os.uname().nodename, "kernel": os.uname().release,
              "generated": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
              "as_root": as_root, "version": __version__, "sections": {}}
    host = Host(roots, config_root, as_root)
    for name, title, function in SECTIONS if sections is None else sections:
        data = run(name, function, host)
        if data is None:
            continue
        if not data["available"]:
            host.failed[name] = data["reason"]
        data["title"] = title + where(name, host)
        report["sections"][name] = data
    try:
        sysctl.read_count(roots)
        report["loaded"] = True
    except ModuleMissing as exc:
        report["loaded"] = False
        report["not_loaded"] = str(exc)
    except ProbeError:
        report["loaded"] = True
    return report


def worst_status(report: dict) -> str:
    states = [s.get("status") for s in report["sections"].values() if s.get("available")]
    return max((s for s in states if s in STATUS_EXIT), key=STATUS_EXIT.get, default="ok")
