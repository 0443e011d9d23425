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
# net_ratelimit's interval (net.core.message_cost, 5 s): the kernel prints "N callbacks
# suppressed" in the first call after it, right before that call's own message. While
# table-full lines come at most this far apart, conntrack keeps calling, and that call
# is conntrack's: a count is looked for only in the NEAR bytes before each table-full
# message. The count's record and the table-full one are written by one CPU one after
# the other (lib/ratelimit.c, net/core/utils.c); other CPUs' table-full lines may come
# between (each is searched before too), and in a file of every facility another
# writer's line. NEAR holds the count's line (about 90 bytes and the host name) and
# about one more.
RATE = 5.0
NEAR = 256
# Bytes of lines kept from one block for the next while undecided (see _block_ends).
PENDING = 4 << 20
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
        self._open: float | None = None  # the table-full line whose stretch add_block is in
        self._pending: bytearray | None = None  # lines of a stretch not searched yet (_block_ends)
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
        only where they can still be attributed (see _suppressed_between),
        not in the rest of the block. A table-full line that says what the
        one before it said, stamped as it was, costs a few comparisons:
        dense incidents put a hundred thousand such lines in a GiB.
        """
        size = len(buffer) if size is None else size
        find, rfind, startswith = buffer.find, buffer.rfind, buffer.startswith
        key, supp_key = logmsg.CONNTRACK_KEY, logmsg.SUPPRESSED_KEY
        data = self.data
        since = self.since if self.since is not None else float("-inf")
        rows = data["events"]
        row = rows[-1] if rows else None
        last_ct = data.get("last_ct")
        opened = None if last_ct == self._too_late_after else last_ct  # see self._open
        full, rate, near = TABLE_FULL, RATE, NEAR
        # The lines counted, for data["lines"]: table-full ones by a position in them,
        # others as (when, None, start, end, buffer) (a buffer kept from an earlier block).
        counted: list = []
        last = None  # (when, netns) of the newest table-full line counted
        last_end = 0  # where it ends (the loop has no time to say more)
        run = None  # its count row, while each line found is a table-full one just like it
        # The text of the last table-full line found from cut on (at first one that
        # cannot match: no key after its 2 bytes), its time stamp (no line starts with
        # a newline) and whether that has a fixed length (no space to check after it).
        tail, stamp, fixed = b"--" + bytes(len(key)), b"\n", True
        tail_said = when = second = None
        # RFC 3339 stamps with a fraction differ on every line: the last one's up to
        # the fraction (no line starts with a newline), its zone and the space after
        # it, where that starts, and its time without the fraction (see _fraction_key).
        head, zone, zone_at, base = b"\n", b"", 0, 0.0
        pending = self._pending is not None
        any_full = False
        lo = 0  # the lines after the last one found start here
        at = find(key, 0, size)
        while at >= 0:
            cut = at - 2
            if startswith(tail, cut):  # as the last table-full line: the end is known
                end = cut + len(tail)
                start = rfind(b"\n", 0, cut) + 1
                same = None
                if run is None:
                    pass
                elif startswith(stamp, start) and (
                        fixed or buffer[start + len(stamp):start + len(stamp) + 1] == b" "):
                    same = when
                elif startswith(head, start) and startswith(zone, start + zone_at) \
                        and buffer[start + 20:start + zone_at].isdigit():
                    same = base + float(buffer[start + 19:start + zone_at])
                    if int(same) != second or same < since:
                        same = None
                if same is not None:
                    # The same text as the table-full line found last, in the same second
                    # (to its fraction): the same count row, a stretch still open (when -
                    # opened is under a second).
                    if lo < start:
                        found = find(supp_key, cut - near if cut - near > lo else lo, start)
                        if found >= 0:
                            data["last_ct"] = last_ct
                            self._suppressed_from(buffer, found, lo, start, counted)
                    if same != when:
                        stamp = bytes(buffer[start:start + zone_at + len(zone) - 1])
                        when = opened = last_ct = same
                        last = (when, last[1])
                    run[2] += 1
                    counted.append(cut)
                    last_end = lo = end
                    at = find(key, end, size)
                    continue
                said, like_tail = tail_said, True
            else:
                start = rfind(b"\n", 0, at) + 1
                end = find(b"\n", at, size) + 1 or size
                said = self._said_at(buffer, start, end, cut)
                if said is None:
                    at = find(key, end, size)
                    continue
                like_tail = said[0] == TABLE_FULL and cut >= start and buffer[end - 1] == 10
                if like_tail:
                    tail, tail_said = bytes(buffer[cut:end]), said
            if not (startswith(stamp, start) and
                    (fixed or buffer[start + len(stamp):start + len(stamp) + 1] == b" ")):
                if startswith(head, start) and startswith(zone, start + zone_at) \
                        and buffer[start + 20:start + zone_at].isdigit():
                    # the same second and zone as the last stamp: only its own fraction
                    stamp = bytes(buffer[start:start + zone_at + len(zone) - 1])
                    when = base + float(buffer[start + 19:start + zone_at])
                else:
                    stamp, fixed = self._stamp_at(buffer, start, end)
                    when = self._time_of_stamp(stamp)
                    head, zone, zone_at, base = self._fraction_key(buffer, start, stamp)
                second = int(when)
            kind = said[0]
            if pending:  # the lines before this one, from earlier blocks
                pending = False
                data["last_ct"], self._open = last_ct, opened
                self._pending_before(kind, when, start, counted)
                opened = self._open
            if opened is not None and lo < start:
                if kind == full and when - opened <= rate:
                    # only the NEAR bytes before its message (see RATE)
                    found = find(supp_key, cut - near if cut - near > lo else lo, start)
                    if found >= 0:
                        data["last_ct"] = last_ct
                        self._suppressed_from(buffer, found, lo, start, counted)
                else:
                    data["last_ct"], self._open = last_ct, opened
                    self._suppressed_between(buffer, lo, start, kind, when, counted)
                    opened = self._open
            run = None
            if kind == full:
                any_full = True
                opened = last_ct = when
                if when >= since:
                    netns = said[1]
                    if row is not None and row[0] == second and row[1] == netns:
                        row[2] += 1
                    else:
                        self.name(netns)
                        row = [second, netns, 1]
                        rows.append(row)
                    last = (when, netns)
                    counted.append(start)
                    last_end = end
                    if like_tail:
                        run = row
            else:
                if last_ct is not None:
                    data["last_ct"] = last_ct
                self._take(kind, said[2], when, buffer, start, end, counted)
            lo = end
            at = find(key, end, size)
        if last_ct is not None:
            data["last_ct"] = last_ct
        self._open = opened
        if opened is not None and lo < size:
            self._block_ends(buffer, lo, size, counted)
        if self._open is None and last_ct is not None and not any_full:
            self._too_late_after = last_ct
        if last is not None:  # last_end: the end of that line
            start = rfind(b"\n", 0, last_end - 1) + 1
            data["last"] = [*last, logmsg.line_text(bytes(buffer[start:last_end]))]
        self._keep_lines(buffer, size, counted)

    def flush(self) -> None:
        """The end of the log (for now): search what add_block left undecided."""
        pending, self._pending = self._pending, None
        if pending is not None and self._open is not None:
            counted: list = []
            self._suppressed_between(pending, 0, len(pending), None, None, counted)
            self._keep_lines(pending, len(pending), counted)

    def _keep_lines(self, buffer, size: int, counted: list) -> None:
        """The newest MAX_LINES of the lines counted, as text, in data["lines"]."""
        if not counted:
            return
        lines = self.data["lines"]
        stamp, fixed, when = b"\n", True, 0.0  # no line starts with a newline
        for item in counted[-MAX_LINES:]:
            if isinstance(item, int):  # a table-full line of this buffer, up to its key
                start = buffer.rfind(b"\n", 0, item) + 1
                end = buffer.find(b"\n", item, size) + 1 or size
                if not (buffer.startswith(stamp, start) and fixed):
                    stamp, fixed = self._stamp_at(buffer, start, end)
                    when = self._time_of_stamp(stamp)
                lines.append([when, logmsg.line_text(bytes(buffer[start:end]))])
            else:
                lines.append([item[0], logmsg.line_text(bytes(item[4][item[2]:item[3]]))])
        del lines[:-MAX_LINES]

    def _block_ends(self, buffer, lo: int, size: int, counted: list) -> None:
        """The lines after the last one found, in a stretch: searched now, or kept (up to
        PENDING bytes) while the next table-full line may still come within RATE, which
        would leave only the NEAR bytes before it to search (see RATE)."""
        pending = self._pending
        last_line = buffer.rfind(b"\n", lo, size - 1) + 1 or lo
        when = self._time_of_stamp(self._stamp_at(buffer, last_line, size)[0])
        kept = len(pending) if pending is not None else 0
        if when - self._open <= RATE and kept + size - lo <= PENDING:
            if pending is None:
                self._pending = bytearray(memoryview(buffer)[lo:size])
            else:
                pending += memoryview(buffer)[lo:size]
            return
        if pending is not None:
            self._pending = None
            self._suppressed_between(pending, 0, kept, None, None, counted)
            if self._open is None:
                return
        self._suppressed_between(buffer, lo, size, None, None, counted)

    def _pending_before(self, kind: str, when: float, start: int, counted: list) -> None:
        """Decide on the lines kept from earlier blocks, now that the line found at
        ``start`` of this block is known: only their last bytes before a table-full line
        within RATE, else all of them (as far as the stretch goes)."""
        pending, self._pending = self._pending, None
        if self._open is None:
            return
        if kind == TABLE_FULL and when - self._open <= RATE:
            window = len(pending) - (NEAR - start)
            if window < len(pending):
                found = pending.find(logmsg.SUPPRESSED_KEY, max(0, window))
                if found >= 0:
                    self._suppressed_from(pending, found, 0, len(pending), counted)
        else:
            self._suppressed_between(pending, 0, len(pending), None, None, counted)

    def _suppressed_between(self, buffer, lo: int, hi: int, kind, when, counted: list) -> None:
        """Count the "suppressed" lines of ``buffer[lo:hi]`` (no line found there) that can
        still be attributed to the table-full line at ``self._open``: up to ATTRIBUTE +
        SLACK after it (to a few KiB).

        ``kind``/``when``: the line found at ``hi`` (None: the block ends there).
        """
        limit = self._open + ATTRIBUTE + SLACK
        stop = hi if kind is not None and when <= limit else \
            self.stretch_end(buffer, lo, hi, limit)
        if stop < hi:
            self._open = None
        self._suppressed_in(buffer, lo, stop, counted)

    def _suppressed_from(self, buffer, at: int, lo: int, hi: int, counted: list) -> None:
        """The counts of the lines of ``buffer[lo:hi]`` (between lines add_block found)
        that hold SUPPRESSED_KEY, from the one at ``at`` on."""
        find = buffer.find
        while at >= 0:
            start = buffer.rfind(b"\n", lo, at) + 1 or lo
            end = find(b"\n", at, hi) + 1 or hi
            n = logmsg.suppressed_count(bytes(buffer[start:end]))
            if n is not None:
                when = self._time_of_stamp(self._stamp_at(buffer, start, end)[0])
                self._take(SUPPRESSED, n, when, buffer, start, end, counted)
            at = find(logmsg.SUPPRESSED_KEY, end, hi)

    def _suppressed_in(self, buffer, lo: int, hi: int, counted: list) -> None:
        """The counts of ``buffer[lo:hi]``, lines between those add_block found: none
        of them holds CONNTRACK_KEY with a message, so a count is all one can say."""
        for start, end in logmsg.lines_with(buffer, logmsg.SUPPRESSED_KEY, lo, hi):
            n = logmsg.suppressed_count(bytes(buffer[start:end]))
            if n is not None:
                when = self._time_of_stamp(self._stamp_at(buffer, start, end)[0])
                self._take(SUPPRESSED, n, when, buffer, start, end, counted)

    def _take(self, kind: str, n: int, when: float, buffer, start: int, end: int,
              counted: list) -> None:
        """An expectation or suppressed line of add_block (as add() does)."""
        data = self.data
        if self.since is not None and when < self.since:
            return
        if kind == EXPECT_FULL:
            rows, n = data["expect"], 1
        else:
            last_ct = data.get("last_ct")
            if last_ct is None or not -EARLY <= when - last_ct <= ATTRIBUTE:
                self.ignored_suppressed += 1
                return
            rows = data["supp"]
        second = int(when)
        if rows and rows[-1][0] == second:  # one row a second: memory stays flat
            rows[-1][1] += n
        else:
            rows.append([second, n])
        counted.append((when, None, start, end, buffer))

    def _said_at(self, buffer, start: int, end: int, cut: int) -> tuple | None:
        """(kind, netns, count) of the line ``buffer[start:end]``, None: nothing counted.

        ``cut``: two bytes before its first CONNTRACK_KEY. Lines that differ only
        before that (time, host, kernel timestamp) say the same: worked out once.
        """
        if cut < start or buffer.find(b"suppressed", start, cut) >= 0:
            found = logmsg.classify(bytes(buffer[start:end]))
            return found and (found.kind, found.netns, found.count)
        tail = bytes(buffer[cut:end])
        said = self._said.get(tail, False)
        if said is False:
            found = logmsg.classify(bytes(buffer[start:end]))
            said = self._said[tail] = found and (found.kind, found.netns, found.count)
            if len(self._said) > CACHE:
                self._said.clear()
        return said

    @staticmethod
    def _stamp_at(buffer, start: int, end: int) -> tuple[bytes, bool]:
        """The bytes that hold the time stamp of the line at ``start`` (and whether that
        key has a fixed length): ``Mmm dd HH:MM:SS``; an RFC 3339 time up to the space
        after it; with a <PRI> first, 48 bytes (rare in files)."""
        first = buffer[start:start + 1]
        if first.isalpha():
            return bytes(buffer[start:min(start + 15, end)]), True
        if first == b"<":
            return bytes(buffer[start:min(start + 48, end)]), True
        space = buffer.find(b" ", start + 11, end)
        return bytes(buffer[start:space if space >= 0 else end]), False

    @staticmethod
    def _fraction_end(stamp: bytes) -> int:
        """Where the fraction of an RFC 3339 stamp from _stamp_at ends (0: it has none)."""
        if stamp[19:20] == b"." and stamp[:1].isdigit():
            end = len(stamp) - len(stamp[20:].lstrip(b"0123456789"))
            if end > 20:
                return end
        return 0

    def _fraction_key(self, buffer, start: int, stamp: bytes) -> tuple[bytes, bytes, int, float]:
        """What add_block compares the next lines' stamps with: (the stamp up to its
        fraction, its zone and the space after it, where that starts, the time without
        the fraction). A line whose stamp has both (and as many digits between) is at
        that time plus its own fraction, as _time_of_stamp says; a stamp without a
        fraction, or one _time_of_stamp reads whole, gives a key no line has."""
        end = self._fraction_end(stamp)
        if end and buffer[start + len(stamp):start + len(stamp) + 1] == b" ":
            base = self._time_of_stamp(stamp[:19] + stamp[end:])
            if base != self.now:
                return stamp[:20], stamp[end:] + b" ", end, base
        return b"\n", b"", 0, 0.0

    def _time_of_stamp(self, stamp: bytes) -> float:
        """The time of a stamp from _stamp_at (now when it holds none).

        RFC 3339 stamps with a fraction (rsyslog's default since Debian 12) differ on
        every line: the time of the stamp without its fraction is what is kept.
        """
        when = self._times.get(stamp)
        if when is None:
            end = self._fraction_end(stamp)
            if end:
                base = self._time_of_stamp(stamp[:19] + stamp[end:])
                if base != self.now:
                    return base + float(stamp[19:end])
            when = self._times[stamp] = logmsg.syslog_time(
                stamp.decode("ascii", "replace"), self.now) or self.now
            if len(self._times) > CACHE:
                self._times.clear()
        return when

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
