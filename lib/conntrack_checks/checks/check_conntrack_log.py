"""check_conntrack_log: did the kernel drop packets because the conntrack table was full?

Counts the kernel's "table full, dropping packet" messages (every kernel
generation's wording, with the namespace of 6.17+ kernels) in ONE source:
a syslog file (rotations followed by content), the systemd journal or
/dev/kmsg. Each message is counted once, however often the check runs and
however many copies of it run at once.

The state is decided by the messages logged within --window (default 15m),
not by what this run happened to read, so a retry a minute later gives the
same answer and the alert can become HARD. -w/-c are Nagios ranges on that
count: default -w 0 (any dropped packet) and -c 9 (ten lines, a full burst
of the kernel's rate limit: more packets were dropped than were logged).

"net_ratelimit: N callbacks suppressed" counts as conntrack's (an estimate
of unlogged drops) when a table-full line came at most 5 minutes before it,
also in an earlier run. "expectation table full" (conntrack helpers) is a
separate finding. The first run sets a baseline at the end of the log and
is OK; --lookback reports recent history instead.
"""

from __future__ import annotations

import argparse
import json
import re
import time

import nagiosplugin
from nagiosplugin.state import Warn

from .. import defaults, state
from ..errors import ProbeError
from ..logs import events
from ..logs.events import KEEP, SCHEMA, count, netns, when
from ..logs.result import ReadResult
from ..logs.sources import AUTO_FILES, LogOptions, choose_source, read_source
from ..nagios import plugin

NAME = "CONNTRACK LOG"
PLUGIN = "check_conntrack_log"

_DURATION = r"(\d+)([smhd]?)\Z"
_SIZE = r"(\d+)([kmgKMG]?)(?:i?[bB])?\Z"


def duration(text: str) -> int:
    """argparse type: seconds from ``90``, ``90s``, ``15m``, ``2h``, ``1d``."""
    match = re.match(_DURATION, text.strip())
    if not match or int(match.group(1)) < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a duration such as 900, 15m, 2h, 1d")
    return int(match.group(1)) * {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}[match.group(2)]


def size(text: str) -> int:
    """argparse type: bytes from ``1048576``, ``512M``, ``2G``."""
    match = re.match(_SIZE, text.strip())
    if not match or int(match.group(1)) < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a size such as 256M or 2G")
    return int(match.group(1)) * 1024 ** " kmg".index(match.group(2).lower() or " ")


def fmt_duration(seconds: float) -> str:
    seconds = int(seconds)
    for unit, length in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= length and seconds % length == 0:
            return f"{seconds // length}{unit}"
    if seconds >= 3600:
        return f"{seconds // 3600}h{seconds % 3600 // 60}m"
    if seconds >= 60:
        return f"{seconds // 60}m{seconds % 60}s"
    return f"{seconds}s"


def fmt_time(epoch: float, now: float) -> str:
    tm = time.localtime(epoch)
    if time.localtime(now)[:3] == tm[:3]:
        return time.strftime("%H:%M:%S", tm)
    return time.strftime("%Y-%m-%d %H:%M:%S", tm)


# --- namespaces -------------------------------------------------------------------


def host_inode(proc_root: str) -> int | None:
    from ..kernel import netns
    key = netns.host_key(proc_root)
    return None if key is None else key[1]


def target_netns(name: str | None, path: str | None, run_dir: str,
                 proc_root: str) -> int | None:
    """The namespace inode --netns/--netns-path ask for (None: all)."""
    if not (name or path):
        return None
    from ..kernel import netns
    if not name:
        return netns.from_path(path).inode
    try:
        return netns.named(name, run_dir).inode
    except ProbeError:
        if name.isdigit():
            return int(name)
        if name == "host":
            return host_inode(proc_root)
        raise


# --- the check ------------------------------------------------------------------


class KernelLog(nagiosplugin.Resource):
    """The table-full messages of one source, counted once across runs."""

    def __init__(self, args):
        self.args = args
        self.opts = LogOptions(args.source, args.logfile, args.max_bytes, args.timeout,
                               args.lookback, args.kmsg, args.journal_dir, args.proc_root)
        self.details: list[str] = []
        self.scan = ReadResult()
        self.data: dict = {}
        self.now = time.time()
        self.source = ""
        self.files: list[str] = []
        self.state_note: str | None = None
        self.target: int | None = None  # --netns as an inode
        self.host: int | None = None
        self.started = time.monotonic()

    def probe(self):
        args, opts = self.args, self.opts
        self.source, self.files = choose_source(opts)
        target = target_netns(args.netns, args.netns_path, args.netns_dir, args.proc_root)
        parts = [self.source, *self.files] if self.source == "file" else [self.source]
        if self.source == "journal" and opts.journal_dir:
            parts.append(opts.journal_dir)
        if self.source == "kmsg" and opts.kmsg != "/dev/kmsg":
            parts.append(opts.kmsg)
        # Another run holding the state is waited for a third of the time
        # allowed (1 to 5 s); reading gets the rest but 1.5 s, left for
        # saving the state (fsyncs) and printing before the plugin's alarm,
        # which starts with the check, just after this resource was made.
        lock_timeout = max(1.0, min(5.0, args.timeout / 3))
        deadline = self.started + max(1.0, args.timeout - lock_timeout - 1.5)
        with state.StateFile(PLUGIN, parts, args.state_file, args.state_dir,
                             lock_timeout=lock_timeout) as st:
            data, note = st.load()
            if data is not None and (data.get("schema") != SCHEMA
                                     or data.get("source") != self.source):
                data, note = None, f"state {st.path} was of another version: baseline reset"
            self.state_note = note
            first = data is None
            before = None if first else json.dumps(data, sort_keys=True)
            data = data or {"schema": SCHEMA, "source": self.source}
            self.now = time.time()
            # A --lookback scan that does not finish in one run keeps its limit.
            since = self.now - args.lookback if first and args.lookback else data.get("since")
            found = events.Events(data, self.now, args.netns_dir, since)
            read_source(self.source, self.files, data, found, self.scan, opts, first, deadline)
            if found.ignored_suppressed:
                self.details.append(f"{found.ignored_suppressed} 'callbacks suppressed' "
                                    "line(s) without a table-full line shortly before: "
                                    "not counted")
            data.pop("since", None)
            if since is not None and self.scan.backlog:
                data["since"] = since
            for gap in self.scan.gaps:
                found.add_gap(gap)
            # Services with other windows share this state: keep what the longest asked for.
            kept = data.get("keep")
            data["keep"] = max(KEEP, args.window, kept if isinstance(kept, (int, float)) else 0)
            found.prune(data["keep"])
            self.data = data
            if json.dumps(data, sort_keys=True) != before:  # else spare the fsyncs
                st.save(data)
        yield from self.metrics(target)

    # --- evaluation ---------------------------------------------------------------

    def of_target(self, key):
        """The stored rows of ``key``; events only those of --netns (lines without an
        inode are the host's)."""
        rows = self.data[key]
        if key == "events" and self.target is not None:
            rows = [r for r in rows if netns(r) == self.target
                    or (netns(r) is None and self.target == self.host)]
        return rows

    def in_window(self, key):
        oldest = self.now - self.args.window
        return [r for r in self.of_target(key) if when(r) >= oldest]

    def last_time(self) -> float | None:
        """When the newest table-full message (of --netns) was logged, however long ago."""
        if self.target is None:
            last = self.data.get("last")
            return last[0] if last else None
        rows = self.of_target("events")
        return when(rows[-1]) if rows else None

    def metrics(self, target):
        args = self.args
        self.target = target
        self.host = host_inode(args.proc_root) if target is not None else None
        self.rows = self.in_window("events")
        full = sum(count(r) for r in self.rows)
        suppressed = sum(count(r) for r in self.in_window("supp"))
        expect = sum(count(r) for r in self.in_window("expect"))
        gaps = self.in_window("gaps")
        self.counts = (full, suppressed, expect)
        yield nagiosplugin.Metric("table_full", full, min=0, context="table_full")
        yield nagiosplugin.Metric("suppressed", suppressed, min=0, context="perf")
        yield nagiosplugin.Metric("expectation_full", expect, min=0, context="expectation_full")
        yield nagiosplugin.Metric("bytes", self.scan.bytes, "B", min=0, context="perf")
        yield nagiosplugin.Metric("gaps", len(gaps), min=0, context="perf")
        if gaps:
            text = gaps[-1][1] + (f" (and {len(gaps) - 1} more in the last "
                                  f"{fmt_duration(args.window)})" if len(gaps) > 1 else "")
            yield nagiosplugin.Metric("gap", text, context="gap")
        if self.scan.backlog:
            yield nagiosplugin.Metric("backlog", self.scan.backlog, context="backlog")
        if self.state_note:
            yield nagiosplugin.Metric("state", self.state_note, context="state")
        self.verbose_lines()

    def namespaces(self) -> str:
        per: dict = {}
        for row in self.rows:
            per[netns(row)] = per.get(netns(row), 0) + count(row)
        words = []
        for inode, n in sorted(per.items(), key=lambda kv: -kv[1]):
            words.append(f"{self.ns_label(inode)} ({n})")
        return ", ".join(words)

    def ns_label(self, inode) -> str:
        if inode is None:
            return "host"
        name = self.data.get("names", {}).get(str(inode))
        return f"netns {name} [{inode}]" if name else f"netns [{inode}]"

    def status_text(self, results) -> str:
        full, suppressed, expect = self.counts
        window = fmt_duration(self.args.window)
        text = f"{full} table-full message{'s' if full != 1 else ''} in the last {window}"
        if suppressed:
            text += f" (+{suppressed} suppressed, est.)"
        if full:
            last = self.rows[-1]
            text += f", last at {fmt_time(when(last), self.now)}; in {self.namespaces()}"
        else:
            last = self.last_time()
            if last is not None:
                text += (f"; last one {fmt_time(last, self.now)} "
                         f"({fmt_duration(max(0, self.now - last))} ago)")
        if expect:
            text += f"; {expect} 'expectation table full' in the last {window}"
        if self.scan.baseline:
            text += ("; first run: baseline set, older messages not counted "
                     "(--lookback reports them)")
        for name in ("state", "gap", "backlog"):
            for result in results:
                if result.metric.name == name:
                    text += "; " + result.hint
        for note in self.scan.notes:
            if not note.startswith("baseline"):
                text += "; " + note
        return text

    def verbose_lines(self):
        scan = self.scan
        where = {"file": ", ".join(self.files), "kmsg": self.args.kmsg,
                 "journal": self.args.journal_dir or "system journal, _TRANSPORT=kernel"
                 }[self.source]
        taken = "" if self.source == "file" else f"{scan.records} records, "
        self.details.append(f"source: {self.source} ({where}); {taken}{scan.bytes} bytes read")
        self.details.extend(scan.files_read)
        self.details.extend(n for n in scan.notes if n.startswith("baseline"))
        oldest = self.now - self.args.window
        recent = [row for row in self.data.get("lines", []) if when(row) >= oldest]
        if recent:
            self.details.append(f"lines in the last {fmt_duration(self.args.window)} "
                                f"(newest {len(recent)}):")
            self.details.extend(f"  {fmt_time(t, self.now)} {line}" for t, line in recent)
        if self.data.get("events"):
            self.details.append("table full: sysctl -w net.netfilter.nf_conntrack_max=<higher>; "
                                "check_conntrack shows how full it is now")


def parser():
    p = plugin.base_parser(PLUGIN, __doc__, NAME, kernel=False)
    plugin.add_netns_options(p, "count only the messages of the namespace `ip netns` calls "
                                "NAME (or of inode NAME, or of the host)",
                             "count only the messages of the namespace of a file such as "
                             "/proc/PID/ns/net")
    state.add_state_options(p)
    p.add_argument("--source", choices=("auto", "file", "journal", "kmsg"), default="auto",
                   help="where to read the kernel's messages: auto (default) takes the first "
                        "of --logfile, " + ", ".join(AUTO_FILES) + ", the journal, /dev/kmsg")
    p.add_argument("--logfile", action="append", metavar="PATH",
                   help="syslog file with the kernel's messages (repeatable); rotated copies "
                        "next to it (.1, .2.gz, -YYYYMMDD) are followed")
    p.add_argument("--journal-dir", metavar="DIR", help="read this journal directory "
                   "(journalctl -D) instead of the system journal")
    p.add_argument("--kmsg", default="/dev/kmsg", help=argparse.SUPPRESS)
    limits = defaults.LOG
    p.add_argument("-w", "--warning", type=plugin.nagios_range,
                   default=nagiosplugin.Range(limits["warning"]), metavar="RANGE",
                   help="table-full messages within --window that warn "
                        f"(default {limits['warning']}: any)")
    p.add_argument("-c", "--critical", type=plugin.nagios_range,
                   default=nagiosplugin.Range(limits["critical"]), metavar="RANGE",
                   help="table-full messages within --window that are critical "
                        f"(default {limits['critical']}: ten lines are a full rate-limit burst)")
    p.add_argument("--warning-expect", type=plugin.nagios_range,
                   default=nagiosplugin.Range(limits["warning_expect"]), metavar="RANGE",
                   help="'expectation table full' messages within --window that warn "
                        f"(default {limits['warning_expect']})")
    p.add_argument("--window", type=duration, default=900, metavar="DURATION",
                   help="messages logged this long ago decide the state (default 15m; make it "
                        "at least max_check_attempts x retry_interval)")
    p.add_argument("--lookback", type=duration, metavar="DURATION",
                   help="first run: count the messages of this recent past instead of "
                        "setting a silent baseline")
    p.add_argument("--max-bytes", type=size, default=512 * 1024 * 1024, metavar="SIZE",
                   help="read at most this much per run (default 512M); the rest waits for "
                        "the next run")
    p.add_argument("--on-gap", choices=sorted(plugin.STATES), default="warning",
                   help="state when messages may have been lost (rotated copy missing, "
                        "ring buffer overwritten; default warning)")
    return p


@nagiosplugin.guarded(verbose=0)
def main(argv=None):
    args = parser().parse_args(argv)
    check = plugin.check(
        KernelLog(args),
        plugin.ThresholdContext("table_full", args.warning, args.critical),
        plugin.ThresholdContext("expectation_full", args.warning_expect, None),
        plugin.PerfContext("perf"),
        plugin.StateContext("gap", plugin.STATES[args.on_gap]),
        plugin.StateContext("backlog", Warn),
        plugin.StateContext("state", Warn),
        plugin.Summary(),
        name=NAME,
    )
    plugin.run(check, args)

