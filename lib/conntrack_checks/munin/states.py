"""The states graph: fw_conntrack's fields, read through the table module in bounded time.

Munin's own fw_conntrack reads every entry on every run (22 s for 77,000
entries in one field report, and a timeout). Here the table of the
namespace munin-node runs in is read by kernel/dump.py: up to
env.states_sample entries, the rest estimated from that sample (the dump
walks the keyed hash table, so its first entries are a uniform random
sample), and never past a deadline. Reading the table needs root.
"""

from __future__ import annotations

import time

from ..errors import ProbeError
from ..kernel import dump, netns
from .graphs import number

# fw_conntrack's fields, in its order, with its labels and drawing.
FIELDS = (
    ("established", "Established", "AREA"),
    ("fin_wait", "FIN_WAIT", "STACK"),
    ("time_wait", "TIME_WAIT", "STACK"),
    ("syn_sent", "SYN_SENT", "STACK"),
    ("udp", "UDP connections", "STACK"),
    ("assured", "Assured", "LINE2"),
    ("nated", "NATed", "LINE1"),
    ("total", "Total", None),
)
# Munin gives a plugin 60 s; the rest of the run needs little.
SECONDS = 20.0


def wanted(settings) -> bool:
    return settings.states == "yes" or (settings.states == "auto" and settings.root)


def read(roots, settings) -> tuple[dict[str, int] | None, str | None]:
    """(fw_conntrack's values or None, why not)."""
    try:
        table = dump.read_table(roots, "auto", settings.states_sample,
                                time.monotonic() + SECONDS, keys=(),
                                ns=netns.Namespace("host", None))
    except ProbeError as exc:
        return None, f"states not read: {exc}"
    if not table.usable:
        return None, (f"states not read: {table.read} entries in {SECONDS:g}s, too few "
                      "for an estimate")
    return dump.counts(table.totals()), None


def block(read_values, max_entries: int | None, settings):
    values = read_values[0]
    config = [
        "graph_title Connections through firewall",
        "graph_args -l 0",
        "graph_vlabel Connections",
        "graph_category network",
        "graph_info The entries of the conntrack table of the namespace munin-node runs "
        "in, by state, with fw_conntrack's fields and meaning (an operator replacing "
        "fw_conntrack keeps the graph's history under the same field names). A table of "
        f"more than {settings.states_sample} entries (env.states_sample) is read that far "
        "and the rest estimated from that sample, and reading stops after "
        f"{SECONDS:g} s. Needs user root in plugin-conf.d.",
    ]
    for field, label, draw in FIELDS:
        config.append(f"{field}.label {label}")
        config.append(f"{field}.draw {draw}" if draw else f"{field}.graph no")
        config.append(f"{field}.type GAUGE")
    if max_entries:
        config += [f"total.warning {number(max_entries * settings.warning / 100)}",
                   f"total.critical {number(max_entries * settings.critical / 100)}"]
    out = []
    for field, _, _ in FIELDS:
        value = None if values is None else values.get(field)
        out.append(f"{field}.value {'U' if value is None else value}")
    return "conntrack.states", config, out
