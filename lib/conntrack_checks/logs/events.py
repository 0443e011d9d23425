"""The kernel's conntrack messages of every run: counted once, kept small, attributed.

The store is the plugin's state dict (``data``), JSON between runs. Its
count rows are lists, oldest first, read through the accessors below:

- ``events`` ``[second, netns inode or None, count]``: table-full lines
  (None: a line without "in netns N", the host's or a kernel before 6.17);
- ``expect`` ``[second, count]``: "expectation table full" lines;
- ``supp`` ``[second, count]``: "N callbacks suppressed" attributed to
  conntrack (N is the count);
- ``gaps`` ``[time, text]``: why messages may be missing;
- ``lines`` ``[time, text]``: the newest MAX_LINES lines counted, for -v.

Besides them: ``last`` ``[time, netns inode, line]`` (the newest table-full
line), ``last_ct`` (the time of the newest table-full line, also of one
older than --lookback, for attribution), ``names`` (inode -> `ip netns`
name), ``keep`` (seconds kept), ``since`` (a --lookback that did not finish),
and the source's position: ``files`` (logfile.py), ``kmsg`` or ``journal``.
"""

from __future__ import annotations

import time

from ..errors import ProbeError
from . import logmsg
from .logmsg import EXPECT_FULL, TABLE_FULL, LogLine

# Version of the state's layout; the plugin resets a state of another one.
SCHEMA = 1
# Events are kept this long (at least) for the window, the last-event text and retries.
KEEP = 86400.0
# A "callbacks suppressed" line is conntrack's if a table-full line came this soon before.
ATTRIBUTE = 300.0
# ... or this little after it: the log's order and its times may disagree by one
# rate-limit interval (net_ratelimit: 5 s), as the kernel prints the count with
# printk_deferred and syslog stamps have whole seconds.
EARLY = 5.0
# Counts are kept per second for this long, then per minute: the state of a
# day-long incident stays small enough to load and save in a few milliseconds.
FINE = 900.0
MAX_ROWS = 20000  # count rows kept per kind: a day per minute is 1440, with namespaces more
MAX_LINES = 20  # lines kept for -v: two full rate-limit bursts (10 lines each)
COMPACT_AT = 4 * MAX_ROWS  # count rows read before they are merged (see compact)


def when(row: list) -> float:
    """The time of any row (seconds since the epoch)."""
    return row[0]


def count(row: list) -> int:
    """The count of an events, expect or supp row."""
    return row[-1]


def netns(row: list) -> int | None:
    """The namespace inode of an events row (None: the host's, or not said)."""
    return row[1]


class Events:
    """The messages of all runs: per-second counts kept in the state.

    ``data`` is the state's dict; lines are added in log order, so a
    suppressed count can be attributed to the table-full line before it.
    """

    def __init__(self, data: dict, now: float, run_dir: str, since: float | None = None):
        self.data = data
        self.now = now
        self.run_dir = run_dir
        self.since = since  # first run with --lookback: older lines are skipped
        self._names: dict[int, str] | None = None
        self._blocks = None  # the SyslogBlocks that add_block feeds, made on its first call
        self._compact_at = COMPACT_AT  # rows after which add_block calls compact()
        for key in ("events", "expect", "supp", "gaps", "lines"):
            data.setdefault(key, [])
        data.setdefault("names", {})
        self.ignored_suppressed = 0

    def name(self, inode: int | None) -> str | None:
        """The `ip netns` name of a namespace inode, looked up once and kept."""
        if inode is None:
            return None
        key = str(inode)
        names = self.data["names"]
        if key not in names:
            if self._names is None:
                from ..kernel import netns  # only once a namespace has to be named
                self._names = netns.names_by_inode(self.run_dir)
            names[key] = self._names.get(inode)
        return names[key]

    def add_block(self, buffer, size: int | None = None) -> None:
        """A block of complete syslog lines, in log order (see blocks.SyslogBlocks);
        flush() at the log's end."""
        if self._blocks is None:
            from .blocks import SyslogBlocks  # syslog files only: not on the kmsg/journal path
            self._blocks = SyslogBlocks(self)
        self._blocks.add_block(buffer, size)
        if len(self.data["events"]) + len(self.data["supp"]) > self._compact_at:
            self.compact()

    def compact(self) -> None:
        """Counts older than FINE per minute, at most MAX_ROWS of each kind, as prune()
        leaves them: a scan through months of incidents stays in constant memory."""
        fine_since = self.now - FINE
        for key in ("events", "expect", "supp"):
            self.data[key] = per_minute_before(self.data[key], fine_since)[-MAX_ROWS:]
        self._compact_at = max(self._compact_at,
                               2 * (len(self.data["events"]) + len(self.data["supp"])))

    def flush(self) -> None:
        """The end of the log (for now): search what add_block left undecided, and
        the lines counted into ``lines``."""
        if self._blocks is not None:
            self._blocks.flush()

    def add_message(self, when: float, text: bytes) -> None:
        """One kernel message with its time (kmsg, journal)."""
        if b"conntrack" in text or b"suppressed" in text:
            found = logmsg.classify(text)
            if found:
                found.when = when
                self.add(found)

    def add(self, line: LogLine) -> None:
        when = line.when
        if self.since is not None and when < self.since:
            if line.kind == TABLE_FULL:
                self.data["last_ct"] = when
            return
        data = self.data
        if line.kind == TABLE_FULL:
            self.name(line.netns)
            second = self.row_time(when)
            events = data["events"]
            if events and events[-1][0] == second and events[-1][1] == line.netns:
                events[-1][2] += 1
            else:
                events.append([second, line.netns, 1])
            data["last_ct"] = when
            data["last"] = [when, line.netns, line.line]
        elif not self.add_count(line.kind, line.count, when):
            return
        data["lines"].append([when, line.line])
        del data["lines"][:-MAX_LINES]

    def add_count(self, kind: str, n: int, when: float) -> bool:
        """An expectation line, or a suppressed count (``n``) that can be conntrack's:
        counted in its second's row. False: not counted (before --lookback's start, or
        a count with no table-full line close enough before it)."""
        data = self.data
        if self.since is not None and when < self.since:
            return False
        if kind == EXPECT_FULL:
            rows, n = data["expect"], 1
        else:
            last_ct = data.get("last_ct")
            if last_ct is None or not -EARLY <= when - last_ct <= ATTRIBUTE:
                self.ignored_suppressed += 1
                return False
            rows = data["supp"]
        second = self.row_time(when)
        if rows and rows[-1][0] == second:  # one row a second: memory stays flat
            rows[-1][1] += n
        else:
            rows.append([second, n])
        return True

    def row_time(self, when: float) -> int:
        """The time of the count row of a line: its second, or before FINE its minute
        (as prune() leaves it: a long incident makes a row a minute, not a second)."""
        second = int(when)
        return second if second >= self.now - FINE else second - second % 60

    def add_gap(self, text: str) -> None:
        self.data["gaps"].append([self.now, text])

    def prune(self, keep: float) -> None:
        """Forget what is older than ``keep``; merge counts older than FINE per minute."""
        oldest = self.now - keep
        for key in ("events", "expect", "supp", "gaps"):
            self.data[key] = [row for row in self.data[key] if when(row) >= oldest]
        self.compact()
        self.data["gaps"] = self.data["gaps"][-MAX_ROWS:]
        used = {str(netns(row)) for row in self.data["events"]}
        last = self.data.get("last")
        if last:
            used.add(str(last[1]))
        self.data["names"] = {k: v for k, v in self.data["names"].items() if k in used}


def _first(item: tuple) -> int:
    return item[0]


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
    return sorted(([*key, count] for key, count in merged.items()), key=when) + recent


# --- for conntrack-report ------------------------------------------------------------

# The report reads the files with a smaller budget than the plugin: it is one
# look among several sections, not a check that may continue next time.
REPORT_MAX_BYTES = 256 * 1024 * 1024
REPORT_TIMEOUT = 5.0


def report_section(roots, since_seconds: int = 86400, source: str = "auto",
                   logfiles=None, kmsg_path: str = "/dev/kmsg",
                   run_dir: str = "/run/netns") -> dict:
    """Recent table-full messages, read-only (no state is read or written).

    Reads /dev/kmsg (precise, this boot), else the journal, else the syslog
    file (see sources.choose_source for why the plugin's order differs),
    with the plugin's own source adapters as a first run with a lookback of
    ``since_seconds``. Returns JSON-able data; raises ProbeError when
    nothing can be read.
    """
    from . import sources

    now = time.time()
    problems = []
    for candidate in [source] if source != "auto" else ["kmsg", "journal", "file"]:
        data: dict = {}
        events = Events(data, now, run_dir, since=now - since_seconds)
        result = sources.ReadResult()
        opts = sources.LogOptions(candidate, logfiles, REPORT_MAX_BYTES, REPORT_TIMEOUT,
                                  since_seconds, kmsg_path, None, roots.proc)
        try:
            if candidate == "journal" and source == "auto" and not sources.journal_present():
                raise ProbeError("no journal files")
            _, files = sources.choose_source(opts)
            sources.read_source(candidate, files, data, events, result, opts, True,
                                time.monotonic() + REPORT_TIMEOUT)
        except ProbeError as exc:
            problems.append(str(exc))
            continue
        return _report(candidate, since_seconds, data, result)
    raise ProbeError("no kernel log readable: " + "; ".join(problems))


def _report(used: str, since_seconds: int, data: dict, result) -> dict:
    rows = data["events"]
    per: dict = {}
    for row in rows:
        inode = netns(row)
        key = "host" if inode is None else (data["names"].get(str(inode)) or str(inode))
        per[key] = per.get(key, 0) + count(row)
    return {
        "source": used,
        "since_seconds": since_seconds,
        "table_full": sum(count(r) for r in rows),
        "suppressed_estimate": sum(count(r) for r in data["supp"]),
        "expectation_full": sum(count(r) for r in data["expect"]),
        "namespaces": per,
        "first": when(rows[0]) if rows else None,
        "last": data["last"][0] if rows else None,
        "lines": [line for _, line in data["lines"]],
        "lost_records": result.lost,
        "gaps": result.gaps,
    }
