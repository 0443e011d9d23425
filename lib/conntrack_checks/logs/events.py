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
from .logmsg import EXPECT_FULL, SUPPRESSED, TABLE_FULL, LogLine

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
# Lines of one syslog file are in the order they were written, not strictly
# in time order (several writers, each stamping its own lines): a block that
# starts this much later than ATTRIBUTE allows holds no attributable line.
SLACK = 60.0
# Entries kept in each of Events' caches (a few hundred KiB at most).
CACHE = 4096
# Stretches this close are searched as one (fewer calls; a few lines between).
MERGE = 4096
# stretch_end stops bisecting at this many bytes (a few lines of any length).
BISECT_TO = 4096
# Counts are kept per second for this long, then per minute: the state of a
# day-long incident stays small enough to load and save in a few milliseconds.
FINE = 900.0
MAX_ROWS = 20000  # count rows kept per kind: a day per minute is 1440, with namespaces more
MAX_LINES = 20  # lines kept for -v: two full rate-limit bursts (10 lines each)


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
        # The last_ct after which this run's lines were found to be too late for
        # attribution; later ones are later still (see _stretches).
        self._too_late_after: float | None = None
        for key in ("events", "expect", "supp", "gaps", "lines"):
            data.setdefault(key, [])
        data.setdefault("names", {})
        self.ignored_suppressed = 0
        self._said: dict = {}  # line from its first key word on -> (kind, netns, count) or None
        self._times: dict[str, float] = {}  # time stamp -> epoch time

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
        """A block of complete syslog lines, in log order (times from the lines found).

        One search over every byte, for CONNTRACK_KEY; the time is read
        only from the lines it finds. "suppressed" lines are searched for
        only in the stretches after table-full lines where they can still
        be attributed (see _stretches), not in the rest of the block.
        """
        size = len(buffer) if size is None else size
        hits = []
        find, key = buffer.find, logmsg.CONNTRACK_KEY
        at = find(key, 0, size)
        while at >= 0:
            start = buffer.rfind(b"\n", 0, at) + 1
            end = find(b"\n", at, size) + 1 or size
            found = self.line_at(buffer, start, end, at)
            if found is not None:
                hits.append((start, found))
            at = find(key, end, size)
        stretches = self._stretches(buffer, size, hits)
        if stretches:
            seen = {start for start, _ in hits}
            for lo, hi in stretches:
                for start, end in logmsg.lines_with(buffer, logmsg.SUPPRESSED_KEY, lo, hi):
                    found = None if start in seen else self.line_at(buffer, start, end)
                    if found is not None and found.kind == SUPPRESSED:
                        hits.append((start, found))
            hits.sort(key=_first)
        for _, found in hits:
            self.add(found)

    def line_at(self, buffer, start: int, end: int, at: int = -1) -> LogLine | None:
        """What the line ``buffer[start:end]`` says, with its time; None: nothing counted.

        ``at``: where CONNTRACK_KEY is in it, if known. Lines that differ only
        before their first key word (time, host, kernel timestamp) say the
        same: what they say is worked out once.
        """
        if at < 0:
            at = buffer.find(logmsg.CONNTRACK_KEY, start, end)
        cut = at - 2
        if cut < start or buffer.find(b"suppressed", start, cut) >= 0:
            found = logmsg.classify(bytes(buffer[start:end]))
        else:
            tail = bytes(buffer[cut:end])
            said = self._said.get(tail, False)
            if said is False:
                found = logmsg.classify(bytes(buffer[start:end]))
                said = self._said[tail] = found and (found.kind, found.netns, found.count)
                if len(self._said) > CACHE:
                    self._said.clear()
            elif said is None:
                return None
            else:
                found = LogLine(said[0], logmsg.line_text(bytes(buffer[start:end])), said[1],
                                said[2])
        if found is not None:
            found.when = self.time_of(found.line)
        return found

    def time_of(self, line: str) -> float:
        """The time at the start of a syslog line (now when it has none)."""
        stamp = line[:15] if line[:1].isalpha() else line.partition(" ")[0]
        when = self._times.get(stamp)
        if when is None:
            when = self._times[stamp] = logmsg.syslog_time(line, self.now) or self.now
            if len(self._times) > CACHE:
                self._times.clear()
        return when

    def _stretches(self, buffer, size: int, hits: list) -> list[tuple[int, int]]:
        """The parts of ``buffer[:size]`` where a "suppressed" line may still be attributed:
        from a table-full line (or the block's start) up to ATTRIBUTE + SLACK after it."""
        last = self.data.get("last_ct")
        if last == self._too_late_after:
            last = None
        stretches: list[tuple[int, int]] = []
        at = 0
        for start, found in [*hits, (size, None)]:
            if last is not None and at < start:
                limit = last + ATTRIBUTE + SLACK
                stop = start if found is not None and found.when <= limit else \
                    self.stretch_end(buffer, at, start, limit)
                if stop > at:
                    if stretches and stretches[-1][1] >= at - MERGE:
                        at = stretches.pop()[0]  # one search where the lines between are few
                    stretches.append((at, stop))
                if stop < start:
                    last = None
            if found is not None:
                if found.kind == TABLE_FULL:
                    last = found.when
                at = buffer.find(b"\n", start, size) + 1 or size
        if last is None and self.data.get("last_ct") is not None and not any(
                found.kind == TABLE_FULL for _, found in hits):
            self._too_late_after = self.data.get("last_ct")
        return stretches

    def stretch_end(self, buffer, start: int, end: int, limit: float) -> int:
        """Where the lines of ``buffer[start:end]`` pass ``limit`` (to a few KiB): bisection
        on the times of a few lines, whose order in the file is their order in time."""
        last = buffer.rfind(b"\n", start, end - 1) + 1 or start
        if self._line_time(buffer, last) <= limit:
            return end
        end = last  # a line known to be past the limit
        while end - start > BISECT_TO:
            middle = buffer.rfind(b"\n", start, (start + end) // 2) + 1 or start
            if middle == start:
                break
            if self._line_time(buffer, middle) <= limit:
                start = middle
            else:
                end = middle
        return end if self._line_time(buffer, start) <= limit else start

    def _line_time(self, buffer, at: int) -> float:
        """The time of the line starting at ``at``; a line without one is let in (-inf)."""
        head = bytes(buffer[at:at + 64]).decode("ascii", "replace")
        stamp = logmsg.syslog_time(head, self.now)
        return float("-inf") if stamp is None else stamp

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
            second = int(when)
            events = data["events"]
            if events and events[-1][0] == second and events[-1][1] == line.netns:
                events[-1][2] += 1
            else:
                events.append([second, line.netns, 1])
            data["last_ct"] = when
            data["last"] = [when, line.netns, line.line]
        elif line.kind == EXPECT_FULL:
            data["expect"].append([int(when), 1])
        elif line.kind == SUPPRESSED:
            last_ct = data.get("last_ct")
            if last_ct is None or not -EARLY <= when - last_ct <= ATTRIBUTE:
                self.ignored_suppressed += 1
                return
            data["supp"].append([int(when), line.count])
        data["lines"].append([when, line.line])
        del data["lines"][:-MAX_LINES]

    def add_gap(self, text: str) -> None:
        self.data["gaps"].append([self.now, text])

    def prune(self, keep: float) -> None:
        """Forget what is older than ``keep``; merge counts older than FINE per minute."""
        oldest = self.now - keep
        for key in ("events", "expect", "supp", "gaps"):
            rows = [row for row in self.data[key] if when(row) >= oldest]
            if key != "gaps":
                rows = per_minute_before(rows, self.now - FINE)
            self.data[key] = rows[-MAX_ROWS:]
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
