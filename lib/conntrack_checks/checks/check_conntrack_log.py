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
import os
import re
import time

import nagiosplugin
from nagiosplugin.state import Warn

from .. import defaults, state
from ..errors import ProbeError
from ..logs import logmsg
from ..logs.logmsg import EXPECT_FULL, SUPPRESSED, TABLE_FULL, Finding
from ..nagios import plugin

NAME = "CONNTRACK LOG"
PLUGIN = "check_conntrack_log"
AUTO_FILES = ("/var/log/kern.log", "/var/log/messages", "/var/log/syslog")
JOURNAL_DIRS = ("/var/log/journal", "/run/log/journal")
SCHEMA = 1
# Events are kept this long (at least) for the window, the last-event text and retries.
KEEP = 86400.0
# A "callbacks suppressed" line is conntrack's if a table-full line came this soon before.
ATTRIBUTE = 300.0
# Counts are kept per second for this long, then per minute: the state of a
# day-long incident stays small enough to load and save in a few milliseconds.
FINE = 900.0
MAX_ROWS = 20000  # count records kept per kind
MAX_LINES = 20

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


def netns_names(run_dir: str) -> dict[int, str]:
    """Namespace inode -> `ip netns` name (cheap: one stat per name)."""
    names = {}
    try:
        entries = os.listdir(run_dir)
    except OSError:
        return names
    for name in entries:
        try:
            names.setdefault(os.stat(os.path.join(run_dir, name)).st_ino, name)
        except OSError:
            continue
    return names


def host_inode(proc_root: str) -> int | None:
    from ..kernel import netns
    key = netns.host_key(proc_root)
    return None if key is None else key[1]


def target_netns(args) -> int | None:
    """The namespace inode --netns/--netns-path ask for (None: all)."""
    if not (args.netns or args.netns_path):
        return None
    from ..kernel import netns
    if not args.netns:
        return netns.from_path(args.netns_path).inode
    try:
        return netns.named(args.netns, args.netns_dir).inode
    except ProbeError:
        if args.netns.isdigit():
            return int(args.netns)
        if args.netns == "host":
            return host_inode(args.proc_root)
        raise


# --- events -------------------------------------------------------------------------


class Events:
    """The findings of all runs: per-second counts kept in the state.

    ``data`` is the state's dict; findings are added in log order, so a
    suppressed count can be attributed to the table-full line before it.
    """

    def __init__(self, data: dict, now: float, run_dir: str, since: float | None = None):
        self.data = data
        self.now = now
        self.run_dir = run_dir
        self.since = since  # first run with --lookback: older findings are skipped
        self._names: dict[int, str] | None = None
        self._too_late_after: float | None = None  # last_ct for which blocks start too late
        for key in ("events", "expect", "supp", "gaps", "lines"):
            data.setdefault(key, [])
        data.setdefault("names", {})
        self.ignored_suppressed = 0

    def name(self, inode: int | None) -> str | None:
        if inode is None:
            return None
        key = str(inode)
        names = self.data["names"]
        if key not in names:
            if self._names is None:
                self._names = netns_names(self.run_dir)
            names[key] = self._names.get(inode)
        return names[key]

    def block(self, buffer, size: int | None = None) -> None:
        """A block of syslog lines (times from each line)."""
        keys = logmsg.ALL_KEYS if self.may_attribute(buffer) else logmsg.CONNTRACK_KEYS
        hits = logmsg.scan(buffer, size, keys)
        if hits and keys is logmsg.CONNTRACK_KEYS:  # suppressed lines after them count
            hits = sorted(dict(hits + logmsg.scan(buffer, size, logmsg.SUPPRESSED_KEYS)).items())
        for _, line in hits:
            finding = logmsg.classify(line)
            if finding:
                finding.when = logmsg.syslog_time(finding.line, self.now) or self.now
                self.add(finding)

    def may_attribute(self, buffer) -> bool:
        """Could a "suppressed" line in this block count (a table-full line came shortly before)?

        Most blocks start long after the last table-full line: their
        suppressed lines cannot be conntrack's, and are not searched for.
        Blocks come in log order, so once one starts too late, so do the
        next ones until another table-full line is found.
        """
        last_ct = self.data.get("last_ct")
        if last_ct is None or last_ct == self._too_late_after:
            return False
        when = logmsg.syslog_time(bytes(buffer[:64]).decode("ascii", "replace"), self.now)
        if when is not None and when > last_ct + ATTRIBUTE + 60:
            self._too_late_after = last_ct
            return False
        return True

    def message(self, when: float, text: bytes) -> None:
        """One kernel message with its time (kmsg, journal)."""
        if b"conntrack" in text or b"suppressed" in text:
            finding = logmsg.classify(text)
            if finding:
                finding.when = when
                self.add(finding)

    def add(self, finding: Finding) -> None:
        when = finding.when
        if self.since is not None and when < self.since:
            if finding.kind == TABLE_FULL:
                self.data["last_ct"] = when
            return
        data = self.data
        if finding.kind == TABLE_FULL:
            self.name(finding.netns)
            second = int(when)
            events = data["events"]
            if events and events[-1][0] == second and events[-1][1] == finding.netns:
                events[-1][2] += 1
            else:
                events.append([second, finding.netns, 1])
            data["last_ct"] = when
            data["last"] = [when, finding.netns, finding.line]
        elif finding.kind == EXPECT_FULL:
            data["expect"].append([int(when), 1])
        elif finding.kind == SUPPRESSED:
            last_ct = data.get("last_ct")
            if last_ct is None or not -5 <= when - last_ct <= ATTRIBUTE:
                self.ignored_suppressed += 1
                return
            data["supp"].append([int(when), finding.count])
        data["lines"].append([when, finding.line])
        del data["lines"][:-MAX_LINES]

    def gap(self, text: str) -> None:
        self.data["gaps"].append([self.now, text])

    def prune(self, keep: float) -> None:
        """Forget what is older than ``keep``; merge counts older than FINE per minute."""
        oldest = self.now - keep
        for key in ("events", "expect", "supp", "gaps"):
            rows = [row for row in self.data[key] if row[0] >= oldest]
            if key != "gaps":
                rows = per_minute_before(rows, self.now - FINE)
            self.data[key] = rows[-MAX_ROWS:]
        used = {str(row[1]) for row in self.data["events"]}
        last = self.data.get("last")
        if last:
            used.add(str(last[1]))
        self.data["names"] = {k: v for k, v in self.data["names"].items() if k in used}


def per_minute_before(rows: list, fine_since: float) -> list:
    """Count rows ``[second, *what, count]``, those before ``fine_since`` merged per minute.

    A merged row is dated at the start of its minute, so it leaves a window
    at most a minute early.
    """
    merged: dict = {}
    recent = []
    for row in rows:
        if row[0] >= fine_since:
            recent.append(row)
            continue
        key = (row[0] - row[0] % 60, *row[1:-1])
        merged[key] = merged.get(key, 0) + row[-1]
    return sorted(([*key, count] for key, count in merged.items()), key=_time) + recent


def _time(row: list) -> float:
    return row[0]


# --- sources ----------------------------------------------------------------------


def journal_present() -> bool:
    for base in JOURNAL_DIRS:
        try:
            for machine in os.listdir(base):
                if any(n.endswith(".journal") for n in os.listdir(os.path.join(base, machine))):
                    return True
        except OSError:
            continue
    return False


def choose_source(args) -> tuple[str, list[str]]:
    """(source, files): exactly one view of the kernel's messages."""
    if args.source in ("auto", "file"):
        if args.logfile:
            return "file", [os.path.abspath(p) for p in args.logfile]
        for path in AUTO_FILES:
            if os.path.exists(path):
                return "file", [path]
        if args.source == "file":
            raise ProbeError("none of " + ", ".join(AUTO_FILES) + " exists: name the "
                             "kernel's log file with --logfile")
    if args.source == "journal" or (args.source == "auto" and journal_present()):
        return "journal", []
    return "kmsg", []


def unreadable(path: str, exc: OSError) -> ProbeError:
    if isinstance(exc, PermissionError):
        return ProbeError(f"cannot read {path}: permission denied; add the monitoring user "
                          "to the group that may read it (usermod -aG adm nagios)")
    if isinstance(exc, FileNotFoundError):
        return ProbeError(f"{path} does not exist: check --logfile")
    return ProbeError(f"cannot read {path}: {exc.strerror}")


class Scan:
    """What this run read, whatever the source."""

    def __init__(self):
        self.lines = 0
        self.bytes = 0
        self.gaps: list[str] = []
        self.backlog: str | None = None
        self.notes: list[str] = []
        self.read: list[str] = []
        self.baseline = False


def scan_files(files, pos: dict, events: Events, scan: Scan, args, first: bool,
               budget) -> dict:
    from ..logs import logfile
    new = {}
    tally = logfile.Tally()
    for path in files:
        try:
            if path not in pos and not (first and args.lookback):
                new[path] = logfile.baseline(path)
                scan.baseline = True
                scan.notes.append(f"baseline at byte {new[path]['off']} of {path}")
                continue
            new[path], _ = logfile.follow(path, pos.get(path), budget, events.block,
                                          events.now, tally)
        except OSError as exc:
            raise unreadable(path, exc) from None
    scan.lines, scan.bytes = tally.lines, tally.bytes
    scan.gaps.extend(tally.gaps)
    scan.read.extend(tally.read)
    if tally.backlog:
        scan.backlog = (f"backlog: {tally.backlog} bytes not read yet (budget "
                        f"{args.max_bytes} bytes / {args.timeout}s per run); the next run "
                        "continues where this one stopped")
    return new


def scan_kmsg(old: dict, events: Events, scan: Scan, args, first: bool,
              deadline: float) -> dict:
    from ..logs import kmsg
    boot = state.boot_id(args.proc_root)
    origin = kmsg.boot_time()
    after = old.get("seq")
    if first and not args.lookback:
        after = None
        scan.baseline = True
        on_record = _ignore
    else:
        if not first and old.get("boot_id") != boot:
            scan.notes.append(
                "rebooted since the last check: kernel messages of the previous boot after "
                f"record {after} were not examined (they are gone from /dev/kmsg)")
            after = -1
        elif first:
            after = None

        def on_record(seq, usec, text):
            events.message(origin + usec / 1e6, text)
    seen = kmsg.read(args.kmsg, after, on_record, deadline)
    if not scan.baseline:  # a baseline takes nothing in, as with files and the journal
        scan.lines, scan.bytes = seen.records, seen.bytes
    scan.read.append(f"{args.kmsg} records after {after} to {seen.last_seq}")
    if seen.lost:
        scan.gaps.append(f"{seen.lost} kernel messages were overwritten in the ring buffer "
                         "before they were read (check more often or enlarge log_buf_len)")
    if not seen.complete:
        scan.backlog = "backlog: /dev/kmsg not read to the end; the next run continues"
    last = seen.last_seq if seen.last_seq is not None else after
    if scan.baseline:
        scan.notes.append(f"baseline at /dev/kmsg record {last}")
    return {"boot_id": boot, "seq": last}


def _ignore(*_):
    pass


def scan_journal(old: dict, events: Events, scan: Scan, args, first: bool,
                 deadline: float) -> dict:
    from ..logs import journal
    if first and not args.lookback:
        seen = journal.read(None, _ignore, tail=True, directory=args.journal_dir)
        scan.baseline = True
        scan.notes.append("baseline at the newest kernel entry of the journal")
        return {"cursor": seen.cursor, "since": events.now}
    since = events.now - args.lookback if first else old.get("since")
    seen = journal.read(old.get("cursor"), events.message, since=since, deadline=deadline,
                        directory=args.journal_dir)
    scan.lines, scan.bytes = seen.entries, seen.bytes
    scan.gaps.extend(seen.gaps)
    scan.read.append(f"journal: {seen.entries} kernel entries")
    if not seen.complete:
        scan.backlog = "backlog: the journal was not read to the end; the next run continues"
    return {"cursor": seen.cursor, "since": since if seen.cursor is None else None}


# --- the check ------------------------------------------------------------------


class KernelLog(nagiosplugin.Resource):
    """The table-full messages of one source, counted once across runs."""

    def __init__(self, args):
        self.args = args
        self.details: list[str] = []
        self.scan = Scan()
        self.data: dict = {}
        self.now = time.time()
        self.source = ""
        self.files: list[str] = []
        self.state_note: str | None = None
        self.save_error: str | None = None
        self.target: int | None = None  # --netns as an inode
        self.host: int | None = None
        self.started = time.monotonic()

    def probe(self):
        args = self.args
        self.source, self.files = choose_source(args)
        target = target_netns(args)
        parts = [self.source, *self.files] if self.source == "file" else [self.source]
        if self.source == "journal" and args.journal_dir:
            parts.append(args.journal_dir)
        if self.source == "kmsg" and args.kmsg != "/dev/kmsg":
            parts.append(args.kmsg)
        lock_timeout = max(1.0, min(5.0, args.timeout / 3))
        # The plugin's alarm starts with the check, just after this resource was made.
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
            events = Events(data, self.now, args.netns_dir, since)
            self.read_source(data, events, first, deadline)
            data.pop("since", None)
            if since is not None and self.scan.backlog:
                data["since"] = since
            for gap in self.scan.gaps:
                events.gap(gap)
            # Services with other windows share this state: keep what the longest asked for.
            kept = data.get("keep")
            data["keep"] = max(KEEP, args.window, kept if isinstance(kept, (int, float)) else 0)
            events.prune(data["keep"])
            self.events = events
            self.data = data
            if json.dumps(data, sort_keys=True) != before:  # else spare the fsyncs
                st.save(data)
        yield from self.metrics(target)

    def read_source(self, data, events, first, deadline):
        args, scan = self.args, self.scan
        if self.source == "file":
            from ..logs.logfile import Budget
            budget = Budget(args.max_bytes, deadline)
            data["files"] = scan_files(self.files, data.get("files", {}), events, scan, args,
                                       first, budget)
        elif self.source == "kmsg":
            data["kmsg"] = scan_kmsg(data.get("kmsg", {}), events, scan, args, first, deadline)
        else:
            data["journal"] = scan_journal(data.get("journal", {}), events, scan, args, first,
                                           deadline)
        if events.ignored_suppressed:
            self.details.append(f"{events.ignored_suppressed} 'callbacks suppressed' line(s) "
                                "without a table-full line shortly before: not counted")

    # --- evaluation ---------------------------------------------------------------

    def of_target(self, key):
        """The stored rows of ``key``; events only those of --netns (lines without an
        inode are the host's)."""
        rows = self.data[key]
        if key == "events" and self.target is not None:
            rows = [r for r in rows
                    if r[1] == self.target or (r[1] is None and self.target == self.host)]
        return rows

    def in_window(self, key):
        oldest = self.now - self.args.window
        return [r for r in self.of_target(key) if r[0] >= oldest]

    def last_time(self) -> float | None:
        """When the newest table-full message (of --netns) was logged, however long ago."""
        if self.target is None:
            last = self.data.get("last")
            return last[0] if last else None
        rows = self.of_target("events")
        return rows[-1][0] if rows else None

    def metrics(self, target):
        args = self.args
        self.target = target
        self.host = host_inode(args.proc_root) if target is not None else None
        self.rows = self.in_window("events")
        count = sum(r[2] for r in self.rows)
        suppressed = sum(r[1] for r in self.in_window("supp"))
        expect = sum(r[1] for r in self.in_window("expect"))
        gaps = self.in_window("gaps")
        self.counts = (count, suppressed, expect)
        yield nagiosplugin.Metric("table_full", count, min=0, context="table_full")
        yield nagiosplugin.Metric("suppressed", suppressed, min=0, context="perf")
        yield nagiosplugin.Metric("expectation_full", expect, min=0, context="expectation_full")
        yield nagiosplugin.Metric("lines", self.scan.lines, min=0, context="perf")
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
            per[row[1]] = per.get(row[1], 0) + row[2]
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
        count, suppressed, expect = self.counts
        window = fmt_duration(self.args.window)
        text = f"{count} table-full message{'s' if count != 1 else ''} in the last {window}"
        if suppressed:
            text += f" (+{suppressed} suppressed, est.)"
        if count:
            last = self.rows[-1]
            text += f", last at {fmt_time(last[0], self.now)}; in {self.namespaces()}"
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
        self.details.append(f"source: {self.source} ({where}); {scan.lines} lines, "
                            f"{scan.bytes} bytes read")
        self.details.extend(scan.read)
        self.details.extend(n for n in scan.notes if n.startswith("baseline"))
        oldest = self.now - self.args.window
        recent = [row for row in self.data.get("lines", []) if row[0] >= oldest]
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
    check = nagiosplugin.Check(
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


# --- for conntrack-report ------------------------------------------------------------


def report_section(roots, since_seconds: int = 86400, source: str = "auto",
                   logfiles=None, kmsg_path: str = "/dev/kmsg",
                   run_dir: str = "/run/netns") -> dict:
    """Recent table-full messages, read-only (no state is read or written).

    Reads /dev/kmsg (precise, this boot), else the journal, else the syslog
    file, and returns JSON-able data; raises ProbeError when nothing can be
    read.
    """
    from ..logs.kmsg import boot_time

    now = time.time()
    data: dict = {}
    events = Events(data, now, run_dir, since=now - since_seconds)
    scan = Scan()
    lost = 0
    args = _ReportArgs(since_seconds, logfiles)
    order = [source] if source != "auto" else ["kmsg", "journal", "file"]
    problems = []
    used = None
    for candidate in order:
        try:
            if candidate == "kmsg":
                origin = boot_time()
                from ..logs import kmsg
                seen = kmsg.read(kmsg_path, None, lambda seq, usec, text, o=origin:
                                 events.message(o + usec / 1e6, text))
                lost = seen.lost
            elif candidate == "journal":
                from ..logs import journal
                if source == "auto" and not journal_present():
                    raise ProbeError("no journal files")
                seen = journal.read(None, events.message, since=now - since_seconds)
                scan.gaps.extend(seen.gaps)
                lost = seen.lost
            else:
                args.source = "file"
                files = choose_source(args)[1]
                from ..logs.logfile import Budget
                scan_files(files, {}, events, scan, args, True,
                           Budget(args.max_bytes, time.monotonic() + args.timeout))
            used = candidate
            break
        except ProbeError as exc:
            problems.append(str(exc))
    if used is None:
        raise ProbeError("no kernel log readable: " + "; ".join(problems))
    rows = data["events"]
    per: dict = {}
    for _, inode, n in rows:
        key = "host" if inode is None else (data["names"].get(str(inode)) or str(inode))
        per[key] = per.get(key, 0) + n
    return {
        "source": used,
        "since_seconds": since_seconds,
        "table_full": sum(r[2] for r in rows),
        "suppressed_estimate": sum(r[1] for r in data["supp"]),
        "expectation_full": sum(r[1] for r in data["expect"]),
        "namespaces": per,
        "first": rows[0][0] if rows else None,
        "last": data["last"][0] if rows else None,
        "lines": [line for _, line in data["lines"]],
        "lost_records": lost,
        "gaps": scan.gaps,
    }


class _ReportArgs:
    """What choose_source and scan_files ask of the options, for the report."""

    def __init__(self, since_seconds, logfiles):
        self.source = "file"
        self.logfile = logfiles
        self.lookback = since_seconds
        self.max_bytes = 256 * 1024 * 1024
        self.timeout = 5
