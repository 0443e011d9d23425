"""The Munin plugin protocol for conntrack-munin: autoconf, config, fetch.

Munin runs ``conntrack-munin config`` and then ``conntrack-munin`` (fetch)
every 5 minutes, or config alone with dirtyconfig; autoconf answers
munin-node-configure with ``yes`` or ``no (reason)`` and always exits 0.
"""

from __future__ import annotations

import sys

from ..errors import ModuleMissing, ProbeError
from ..kernel import netns, sysctl
from . import fields, graphs, logs, states
from .readings import Namespaces
from .settings import Settings


def autoconf(roots: sysctl.Roots) -> str:
    """``yes`` where nf_conntrack is loaded; ``no (why)`` otherwise."""
    try:
        sysctl.read_count(roots)
    except ModuleMissing:
        return "no (nf_conntrack is not loaded: no connections are tracked)"
    except ProbeError as exc:
        return f"no ({exc})".replace("\n", " ")
    return "yes"


def namespaces(settings: Settings) -> list[netns.Namespace]:
    """The namespaces to graph, the host first, through env.include/env.exclude."""
    host = netns.Namespace("host", None)
    if settings.namespaces == "host":
        return [host]
    try:
        found = netns.discover(settings.proc_root)
    except ProbeError as exc:
        settings.problems.append(f"other namespaces not read: {exc}")
        return [host]
    return [ns for ns in found if settings.wanted(ns.name)]


def blocks(read: Namespaces, fetching: bool) -> list[tuple[str, list[str], list[str]]]:
    """Every graph of this run, the usage first; reads what only a fetch needs."""
    settings = read.settings
    found = [graphs.usage(read, settings), graphs.hash_load(read)]
    names = fields.namespace_fields(read.names, "counters_")
    found += [graphs.counters(read, name, names[name]) for name in read.names]
    log = logs.LogReading()
    log.read(settings.state_dir, settings.proc_root, fetching)
    if log.absent:
        read.problems.append(log.absent)
    else:
        if log.problem:
            read.problems.append(log.problem)
        found.append(logs.block(log))
    if states.wanted(settings):
        values = states.read(read.roots, settings) if fetching else (None, None)
        if values[1]:
            read.problems.append(values[1])
        found.append(states.block(values, read.max, settings))
    return [block for block in found if block is not None]


def main(argv=None, environ=None, out=None, err=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    out = out or sys.stdout
    err = err or sys.stderr
    command = argv[0] if argv else "fetch"
    settings = Settings(environ)
    roots = sysctl.Roots(settings.proc_root, settings.sys_root)
    if command == "autoconf":
        try:
            out.write(autoconf(roots) + "\n")
        except Exception as exc:  # autoconf must answer, whatever happened
            out.write(f"no (unexpected error: {exc})\n")
        return 0
    if command not in ("config", "fetch"):
        err.write(f"conntrack-munin: unknown command {command!r}: use config, autoconf "
                  "or no argument (fetch)\n")
        return 1
    if not settings.multigraph:
        err.write("conntrack-munin: this is a multigraph plugin: munin-node 1.4 or later "
                  "gives MUNIN_CAP_MULTIGRAPH=1 (munin-run does too)\n")
        return 1
    read = Namespaces(roots, settings)
    try:
        read.read(namespaces(settings), settings.namespaces == "all")
    except ProbeError as exc:
        err.write(f"conntrack-munin: {exc}\n")
        return 1
    fetching = command == "fetch" or settings.dirtyconfig
    if fetching:
        read.accumulate(settings.state_dir)
    lines = []
    for name, config, values in blocks(read, fetching):
        lines.append(f"multigraph {name}")
        if command == "config":
            lines += config
        if fetching:
            lines += values
    out.write("\n".join(lines) + "\n")
    for problem in settings.problems + read.problems:
        err.write(f"conntrack-munin: {problem}\n")
    return 0
