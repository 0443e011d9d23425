"""The table-full messages graph, read through the log engine (logs/sources.py).

Each run reads the kernel's log from where the last one stopped (its own
state file in MUNIN_PLUGSTATE) and graphs the "table full, dropping packet"
lines it found, and the "callbacks suppressed" counts attributed to them
(an estimate of the lines the rate limit kept out). Without a readable log
source (syslog files need group adm, the journal systemd-journal, /dev/kmsg
CAP_SYSLOG where dmesg_restrict=1) the graph is left out and the reason goes
to stderr (munin-node's log).
"""

from __future__ import annotations

import os
import time

from .. import state
from ..errors import ProbeError
from ..kernel import netns
from ..logs import events, sources
from ..logs.result import ReadResult

PLUGIN = "conntrack-munin"
SCHEMA = 1
SECONDS = 10.0
MAX_BYTES = 64 * 1024 * 1024  # a run reads at most this much of the files; the rest next run


def readable(source: str, files: list[str], opts: sources.LogOptions) -> str | None:
    """Why ``source`` cannot be read by this user, or None."""
    try:
        if source == "file":
            for path in files:
                with open(path, "rb"):
                    pass
        elif source == "kmsg":
            os.close(os.open(opts.kmsg, os.O_RDONLY | os.O_NONBLOCK))
        else:
            journals = [os.path.join(base, machine, name)
                        for base in sources.JOURNAL_DIRS if os.path.isdir(base)
                        for machine in os.listdir(base)
                        if os.path.isdir(os.path.join(base, machine))
                        for name in os.listdir(os.path.join(base, machine))]
            if not any(os.access(p, os.R_OK) for p in journals):
                return "the journal is not readable (group systemd-journal or adm)"
    except OSError as exc:
        where = files[0] if source == "file" else opts.kmsg
        return f"{where}: {exc.strerror} (files need group adm, /dev/kmsg CAP_SYSLOG)"
    return None


class LogReading:
    """The messages found since the previous run, or why there are none."""

    def __init__(self):
        self.messages: int | None = None
        self.suppressed: int | None = None
        self.absent: str | None = None  # no source readable: no graph
        self.problem: str | None = None  # a source, but this run could not read it

    def read(self, state_dir: str, proc_root: str, fetch: bool) -> None:
        opts = sources.LogOptions(max_bytes=MAX_BYTES, timeout=SECONDS, proc_root=proc_root)
        try:
            source, files = sources.choose_source(opts)
        except ProbeError as exc:
            self.absent = str(exc)
            return
        why = readable(source, files, opts)
        if why:
            self.absent = f"table-full messages not graphed: {why}"
            return
        if not fetch:
            return
        try:
            self.count(source, files, opts, state_dir)
        except ProbeError as exc:
            self.problem = f"table-full messages not read: {exc}"

    def count(self, source, files, opts, state_dir) -> None:
        parts = ["log", source, *files]
        with state.StateFile(PLUGIN, parts, state_dir=state_dir) as store:
            data, _ = store.load()
            if data is not None and (data.get("schema") != SCHEMA
                                     or data.get("source") != source):
                data = None
            first = data is None
            data = data or {"schema": SCHEMA, "source": source}
            found = events.Events(data, time.time(), netns.NETNS_RUN_DIR)
            before = total(data, "events"), total(data, "supp")
            result = ReadResult()
            sources.read_source(source, files, data, found, result, opts, first,
                                time.monotonic() + SECONDS)
            if not first:
                self.messages = total(data, "events") - before[0]
                self.suppressed = total(data, "supp") - before[1]
            found.prune(events.KEEP)
            store.save(data)


def total(data: dict, key: str) -> int:
    return sum(events.count(row) for row in data.get(key, []))


def block(reading: LogReading):
    config = [
        "graph_title Conntrack table-full messages",
        "graph_args --base 1000 -l 0",
        "graph_vlabel messages per run",
        "graph_category network",
        "graph_info The kernel's 'table full, dropping packet' lines (all namespaces) "
        "logged since the previous run, read from the kernel's log as check_conntrack_log "
        "does, and the 'callbacks suppressed' counts that followed them: the kernel's rate "
        "limit (10 lines per 5 s) keeps most lines of a burst out, so the count of dropped "
        "packets is in the drop counter, these say when.",
        "messages.label table full messages",
        "messages.min 0",
        "suppressed.label suppressed (estimate)",
        "suppressed.min 0",
        "suppressed.info lines the rate limit kept out after a table-full line (an upper "
        "bound: the limit is shared by the whole network stack)",
    ]
    values = [f"messages.value {'U' if reading.messages is None else reading.messages}",
              f"suppressed.value {'U' if reading.suppressed is None else reading.suppressed}"]
    return "conntrack.log", config, values
