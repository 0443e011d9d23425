"""conntrack-munin's graphs: each a (name, config lines, value lines) block.

Words follow the Nagios plugins' (check_conntrack, check_conntrack_hash,
check_conntrack_stats); every value comes from readings.Namespaces.
"""

from __future__ import annotations

from .. import defaults
from . import fields

ROOT = "conntrack"
# The kernel counters graphed, where this kernel keeps them (ctstats.Snapshot.filled).
COUNTERS = {
    "drop": "packets dropped: table full (no entry could be allocated), out of memory, "
            "or a failed insert (a clash the kernel could not resolve)",
    "early_drop": "entries evicted to make room for a new one: the table is at its limit",
    "insert_failed": "inserts that failed: lost insert races (clashes; each drops a "
                     "packet) and, from 5.15, chains too long",
    "invalid": "packets conntrack could not classify (ctstate INVALID)",
    "clash_resolve": "insert clashes the kernel resolved: the packet was kept",
    "chaintoolong": "inserts refused for a hash chain too long (also in insert_failed, "
                    "no packet dropped): too few buckets or hash flooding",
    "search_restart": "lookups restarted (a normal sign of churn)",
}
OLD_INSERT_FAILED = ("inserts that failed, including the clashes the kernel then resolved "
                     "(no packet lost; this kernel has no clash_resolve counter): an "
                     "everyday event on busy hosts, no sign of loss by itself")


def number(value: float) -> str:
    """A value as Munin reads it: no exponent, at most 6 decimals."""
    if value == int(value):
        return str(int(value))
    return f"{value:.6f}".rstrip("0").rstrip(".")


def usage(read, settings) -> tuple[str, list[str], list[str]]:
    """Entries per namespace against nf_conntrack_max (check_conntrack)."""
    names = fields.namespace_fields(read.names)
    limit = read.max
    info = ("Entries tracked in each network namespace (nf_conntrack_count, read inside "
            "it) against nf_conntrack_max, one limit each namespace may reach on its own. "
            "At the limit the kernel drops new connections (table full, dropping packet). "
            f"Warning at {settings.warning:g}%, critical at {settings.critical:g}% of max "
            "(env.warning, env.critical), as check_conntrack.")
    if settings.namespaces != "all":
        info += (" Only the namespace munin-node runs in: the others need user root in "
                 "plugin-conf.d.")
    config = [
        "graph_title Conntrack table usage",
        "graph_args --base 1000 -l 0",
        "graph_vlabel entries",
        "graph_category network",
        f"graph_info {info}",
        "graph_order max " + " ".join(names.values()),
        "max.label max",
        "max.draw LINE2",
        "max.info nf_conntrack_max (global)",
    ]
    values = [f"max.value {number(limit)}"]
    for name, field in names.items():
        config += [f"{field}.label {fields.label(name)}", f"{field}.min 0",
                   f"{field}.info entries in {fields.label(where(name, settings))}"]
        if limit:
            config += [f"{field}.warning {number(limit * settings.warning / 100)}",
                       f"{field}.critical {number(limit * settings.critical / 100)}"]
        count = read.counts.get(name)
        values.append(f"{field}.value {'U' if count is None else count}")
    return ROOT, config, values


def where(name: str, settings) -> str:
    if settings.namespaces == "host":
        return "the namespace munin-node runs in"
    return "the host namespace" if name == "host" else f"namespace {name}"


def hash_load(read) -> tuple[str, list[str], list[str]] | None:
    """Entries per hash bucket now and at a full table (check_conntrack_hash)."""
    if not read.buckets:
        return None
    config = [
        "graph_title Conntrack hash table load",
        "graph_args --base 1000 -l 0",
        "graph_vlabel entries per bucket",
        "graph_category network",
        "graph_info Average hash chain length: entries per bucket (nf_conntrack_buckets), "
        "now (the entries of every namespace read: they share one hash table) and when "
        "the table is full (nf_conntrack_max / buckets). Past 8 lookups slow down; from "
        "5.15 chains of about 64 refuse inserts (chaintoolong). As check_conntrack_hash.",
        "load.label now",
        f"load.warning {defaults.HASH['warning']}",
        f"load.critical {defaults.HASH['critical']}",
        "load_full.label at a full table",
        f"load_full.warning {defaults.HASH['warning_full']}",
        "buckets.label buckets",
        "buckets.graph no",
        "buckets.info nf_conntrack_buckets",
    ]
    total = sum(read.counts.values())
    values = [f"load.value {number(total / read.buckets)}",
              f"load_full.value {number(read.max / read.buckets)}",
              f"buckets.value {read.buckets}"]
    return f"{ROOT}.hash", config, values


def counters(read, name: str, graph: str) -> tuple[str, list[str], list[str]] | None:
    """One namespace's kernel counters per second (check_conntrack_stats' deltas)."""
    reading = read.stats.get(name)
    if reading is None:
        return None
    snap = reading.snapshot
    shown = [n for n in COUNTERS if n in snap.filled]
    config = [
        f"graph_title Conntrack kernel counters, {fields.label(name)}",
        "graph_args --base 1000 -l 0",
        "graph_vlabel events per ${graph_period}",
        "graph_category network",
        "graph_period second",
        "graph_info The kernel's own counters of this namespace "
        f"({snap.origin if snap.source == 'proc' else 'ctnetlink, as conntrack -S'}), "
        "summed over CPUs, a per-CPU 32-bit wrap counted across, as check_conntrack_stats "
        "does. Only the counters this kernel keeps are shown.",
        "graph_order " + " ".join(shown),
    ]
    totals = read.totals.get(name)
    values = []
    for counter in shown:
        info = COUNTERS[counter]
        if counter == "insert_failed" and not snap.has_clash_resolve:
            info = OLD_INSERT_FAILED
        config += [f"{counter}.label {counter}", f"{counter}.type DERIVE",
                   f"{counter}.min 0", f"{counter}.info {info}"]
        value = None if totals is None else totals.get(counter)
        values.append(f"{counter}.value {'U' if value is None else value}")
    return f"{ROOT}.{graph}", config, values
