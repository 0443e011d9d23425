"""Syslog file blocks: the conntrack lines found with one search, into an Events store.

check_conntrack_log's full scan must cost about what ``grep -c`` does on any log
(docs/benchmarks.rst), so a block of lines is searched once for CONNTRACK_KEY (with
bytes.find, or in a large read libc's memmem: memsearch.py) and only the lines found
are parsed; "callbacks suppressed" counts are looked for only
where they can still be attributed. The store (rows, attribution, pruning) is
events.Events; this module finds lines and their times.
"""

from __future__ import annotations

from . import logmsg, memsearch
from .events import ATTRIBUTE, FINE, MAX_LINES
from .logmsg import EXPECT_FULL, SUPPRESSED, TABLE_FULL

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
# SEARCH_KEY found this many times in a block where CONNTRACK_KEY is not (a log of
# "worker_connections" or "max_conn" lines from other programs): from then on the
# search is for CONNTRACK_KEY, at its own speed, not 10 x grep's time.
MISSES = 256
# A run reads this much with bytes.find before it searches with memmem (see
# memsearch): a check every minute reads less, and importing ctypes costs about as
# much as reading a megabyte.
MEMMEM_AFTER = 8 << 20
# Lines counted per MiB of a block above which the next block is searched with
# bytes.find: memmem's calls cost more than its speed saves where lines are this close.
DENSE = 64
# The kinds of line a run of lines just like the last one can be made of.
RUNS = (TABLE_FULL, EXPECT_FULL)
# A Stamps.layout that matches no line (no line starts with a newline).
NO_LAYOUT = (b"\n", 0, b"", b"\n", 0.0, 0)
# The seconds of a minute as stamps write them (60: a leap second), and two that no
# stamp has (after 59 and 60 comes the next minute's 00).
SECONDS = (*(b"%02d" % second for second in range(61)), b"\n\n", b"\n\n")


class SyslogBlocks:
    """Feeds an events.Events store from syslog file blocks, in log order."""

    def __init__(self, store):
        self.store = store
        self._said: dict = {}  # line from its first key word on -> (kind, netns, count) or None
        self._recent: list = []  # (time or None, line) of the newest lines counted
        self._key = logmsg.SEARCH_KEY  # CONNTRACK_KEY after MISSES (see add_block)
        self._read = 0  # bytes of blocks so far (see MEMMEM_AFTER)
        self._dense = False  # the last block counted more than DENSE lines a MiB
        self.stamps = Stamps(store.now)
        self.stretch = Stretch(store, self.stamps)

    def add_block(self, buffer, size: int | None = None) -> None:
        """A block of complete syslog lines, in log order (times from the lines found).

        One search over every byte, for SEARCH_KEY; the time is read only
        from the lines it finds. "suppressed" lines are searched for only
        where they can still be attributed (see Stretch.between), not in
        the rest of the block. A table-full line that says what the one
        before it said, in the same second or a few seconds later, costs a few
        comparisons: dense incidents put a hundred thousand such lines in a GiB.
        """
        size = len(buffer) if size is None else size
        find, rfind, startswith = buffer.find, buffer.rfind, buffer.startswith
        key, word, supp_key = self._key, logmsg.CONNTRACK_KEY, self.stretch.key
        # Searches over kilobytes (the next line found, counts in a stretch) with
        # memmem in a large read: a longer needle, no lines found that hold no
        # CONNTRACK_KEY. The short ones (a line's end, NEAR) stay with find.
        self._read += size
        search = memsearch.finder(buffer) if self._read > MEMMEM_AFTER else None
        seek = find
        if search is not None and not self._dense:
            seek, key = search, word
        misses = 0  # lines found by SEARCH_KEY that do not hold CONNTRACK_KEY
        data = self.store.data
        since = self.store.since if self.store.since is not None else float("-inf")
        rows = data["events"]
        row = rows[-1] if rows else None
        fine = self.store.now - FINE  # rows before it count a minute (see Events.row_time)
        last_ct = data.get("last_ct")
        opened = None if last_ct == self.stretch.too_late_after else last_ct  # see Stretch.open
        full, rate, near = TABLE_FULL, RATE, self.stretch.near
        stamps = self.stamps
        # The lines counted, for data["lines"]: table-full ones by a position in them,
        # others as (when, None, start, end, buffer) (a buffer kept from an earlier block).
        counted: list = []
        last = None  # (when, netns) of the newest table-full line counted
        last_end = 0  # where it ends (the loop has no time to say more)
        # Its count row, while each line found is a table-full line just like it (or an
        # expectation line: not run_full), and the rows it is one of.
        run, run_full, run_rows = None, True, rows
        # The text of the last table-full line found from cut on (at first one that
        # cannot match: no key after its 2 bytes) and what it says.
        tail, tail_said = b"--" + bytes(len(word)), None
        tail_len = len(tail)
        # The time of the last line found, its second, and how the next lines' stamps
        # compare with its stamp (see Stamps.layout).
        when = second = None
        head, fzone_at, zone, minute, mbase, send = NO_LAYOUT
        head_len, mlen, run_minute = len(head), len(minute), b"\n"
        # The heads of every second of the minute (None: no such layout, False: not made
        # yet), and the one of the second after when's: a table-full line a second after
        # the last is the commonest in an incident (net_ratelimit lets about two a second
        # through).
        heads, after = None, b"\n"
        # A later table-full line of when's second whose own fraction has not been read
        # (the run below reads it only when a decision needs it: Stamps.in_second).
        fresh = None
        pending = self.stretch.pending is not None
        any_full = False
        lo = 0  # the lines after the last one found start here
        at = seek(key, 0, size)
        while at >= 0:
            cut = at - 2
            if startswith(tail, cut):  # as the last table-full line: the end is known
                start = rfind(b"\n", 0, cut) + 1
                if run is None:
                    later = None
                elif startswith(head, start) and (
                        not fzone_at or startswith(zone, start + fzone_at)):
                    later = 0  # in the second of the line before
                elif startswith(after, start) and (
                        not fzone_at or startswith(zone, start + fzone_at)):
                    later = second + 1 if second + 1 > since else None
                elif startswith(run_minute, start) and (
                        not zone or startswith(zone, start + send)):
                    # a later second of the same minute, at most RATE - 1 later: when -
                    # opened is under RATE (and after since: every line of it counts)
                    digits = buffer[start + mlen:start + mlen + 2]
                    later = mbase + int(digits) if digits.isdigit() and digits <= b"60" and (
                        not fzone_at or (buffer[start + mlen + 2] == 46
                                         and buffer[start + mlen + 3:start + send].isdigit())
                    ) else None
                    if later is not None and not (later - second < rate and later > since):
                        later = None
                else:
                    later = None
                if later is not None:
                    # The same text as the line found last, soon after it. Before a
                    # table-full line only the NEAR bytes can hold a count (see RATE).
                    found = -1
                    if run_full:
                        if lo < start:
                            found = find(supp_key, cut - near if cut - near > lo else lo, start)
                        if found >= 0:
                            if fresh is not None:
                                when = opened = last_ct = stamps.in_second(
                                    buffer, fresh, second, fzone_at, size)
                                last, fresh = (when, last[1]), None
                            data["last_ct"] = last_ct  # what the count is attributed to
                    if later:  # its own second; its time (with a fraction: see fresh)
                        second = when = later
                        head, after = heads[later - mbase], heads[later - mbase + 1]
                        if run_full:
                            opened = last_ct = later
                            last = (when, run[1])
                        if later < fine:  # Events.row_time, inline: once a second
                            later -= later % 60
                        if run[0] == later:
                            run[-1] += 1
                        else:
                            run = [later, run[1], 1] if run_full else [later, 1]
                            run_rows.append(run)
                            if run_full:
                                row = run
                    else:
                        run[-1] += 1
                    if found >= 0:
                        stamps.hint = (head, fzone_at, zone, second, when)
                        self.stretch.counts_from(buffer, found, lo, start, counted)
                    lo = cut + tail_len
                    if run_full:
                        last_end = lo
                        if fzone_at:
                            fresh = start
                    counted.append(cut)
                    at = seek(key, lo, size)
                    continue
                end = cut + tail_len
                said, like_tail = tail_said, True
                # a run that goes on, seconds later (before the chain had the heads)
                continued = second if run is not None else None
            else:
                if not startswith(word, at):  # "_connect", say: not a line to look at
                    misses += 1
                    if misses == MISSES:  # common in this log: the needle that has none
                        key = self._key = word
                    at = seek(key, at + 1, size)
                    continue
                start = rfind(b"\n", 0, at) + 1
                end = find(b"\n", at, size) + 1 or size
                continued = None
                said = self._said_at(buffer, start, end, cut)
                if said is None:
                    at = seek(key, end, size)
                    continue
                like_tail = said[0] in RUNS and cut >= start and buffer[end - 1] == 10
                if like_tail:
                    tail, tail_said = bytes(buffer[cut:end]), said
                    tail_len = len(tail)
            if fresh is not None:  # the time of the table-full line before, for the decisions
                when = opened = last_ct = stamps.in_second(buffer, fresh, second, fzone_at, size)
                last, fresh = (when, last[1]), None
            # This line's time: from the last stamp's second or minute, else parsed.
            if startswith(head, start) and (not fzone_at or startswith(zone, start + fzone_at)):
                if fzone_at:  # the same second: only its own fraction
                    fraction = buffer[start + 19:start + fzone_at]
                    when = second + float(fraction) if fraction[1:].isdigit() else \
                        stamps.exact(buffer, start, end)
            else:
                digits = startswith(minute, start) and (
                    not zone or startswith(zone, start + send)) and \
                    buffer[start + mlen:start + send]
                if digits and digits[:2].isdigit() and digits[:2] <= b"60" and (
                        send == mlen + 2 or (digits[2] == 46 and digits[3:].isdigit())):
                    # the same minute: whole seconds first, then the fraction (as time())
                    when = mbase + int(digits[:2])
                    if send != mlen + 2:
                        when += float(digits[2:])
                    head = buffer[start:start + head_len]
                    if heads:
                        after = heads[int(when) - mbase + 1]
                else:
                    stamp, fixed = stamps.at(buffer, start, end)
                    when = stamps.time(stamp)
                    head, fzone_at, zone, minute, mbase, send = stamps.layout(
                        buffer, start, stamp, fixed)
                    head_len, mlen = len(head), len(minute)
                    # (not with a fraction of more than 6 digits: see layout)
                    heads, after, run_minute = None, b"\n", b"\n"
                    if (fzone_at or send == mlen + 2) and minute != b"\n" \
                            and mbase <= when < mbase + 61:
                        heads = False  # made when a run needs them
                second = int(when)
            kind = said[0]
            if pending:  # the lines before this one, from earlier blocks
                pending = False
                data["last_ct"], self.stretch.open = last_ct, opened
                self.stretch.pending_before(kind, when, start, counted)
                opened = self.stretch.open
            if opened is not None and lo < start:
                if kind == full and when - opened <= rate:
                    # only the NEAR bytes before its message (see RATE)
                    found = find(supp_key, cut - near if cut - near > lo else lo, start)
                    if found >= 0:
                        data["last_ct"] = last_ct
                        self.stretch.counts_from(buffer, found, lo, start, counted)
                else:
                    data["last_ct"], self.stretch.open = last_ct, opened
                    self.stretch.between(buffer, lo, start, kind, when, counted, search)
                    opened = self.stretch.open
            run = None
            if kind == full:
                any_full = True
                opened = last_ct = when
                if supp_key is not said[3]:
                    supp_key, near = self.stretch.use(said[3])
                if when >= since:
                    netns = said[1]
                    counted_in = self.store.row_time(second)
                    if row is not None and row[0] == counted_in and row[1] == netns:
                        row[2] += 1
                    else:
                        if row is None or row[1] != netns:
                            self.store.name(netns)
                        row = [counted_in, netns, 1]
                        rows.append(row)
                    last = (when, netns)
                    counted.append(start)
                    last_end = end
                    # a run takes the lines of a second whole: not the second of since
                    # when stamps have fractions (some of its lines may be before since)
                    if like_tail and (second > since or not fzone_at):
                        run, run_full, run_rows = row, True, rows
            else:
                if last_ct is not None:
                    data["last_ct"] = last_ct
                # a run of expectation lines where no count can be conntrack's
                if take(self.store, kind, said[2], when, buffer, start, end, counted) \
                        and like_tail and opened is None and (second > since or not fzone_at):
                    run_rows = data["expect"]
                    run, run_full = run_rows[-1], False
            if run is not None and heads is not None and (
                    heads or (continued is not None and second - continued < rate)):
                if heads is False:  # the minute's heads, now that a run needs them
                    heads = tuple(minute + two + head[mlen + 2:] for two in SECONDS)
                    run_minute = minute
                after = heads[second - mbase + 1]
            lo = end
            at = seek(key, end, size)
        if fresh is not None:
            when = opened = last_ct = stamps.in_second(buffer, fresh, second, fzone_at, size)
            last = (when, last[1])
        if last_ct is not None:
            data["last_ct"] = last_ct
        self.stretch.open = opened
        if opened is not None and lo < size:
            self.stretch.block_ends(buffer, lo, size, counted, search)
        if self.stretch.open is None and last_ct is not None and not any_full:
            self.stretch.too_late_after = last_ct
        if last is not None:  # last_end: the end of that line
            start = rfind(b"\n", 0, last_end - 1) + 1
            data["last"] = [*last, logmsg.line_text(bytes(buffer[start:last_end]))]
        self._dense = len(counted) << 20 > DENSE * size
        self._keep_lines(buffer, size, counted)

    def flush(self) -> None:
        """The end of the log (for now): search what add_block left undecided."""
        pending, self.stretch.pending = self.stretch.pending, None
        if pending is not None and self.stretch.open is not None:
            counted: list = []
            self.stretch.between(pending, 0, len(pending), None, None, counted)
            self._keep_lines(pending, len(pending), counted)
        self._lines_out()

    def _keep_lines(self, buffer, size: int, counted: list) -> None:
        """The newest MAX_LINES of the lines counted, as bytes until flush() works out
        their times and text (only those of the last blocks are shown)."""
        recent = self._recent
        for item in counted[-MAX_LINES:]:
            if isinstance(item, int):  # a table-full line of this buffer, up to its key
                start = buffer.rfind(b"\n", 0, item) + 1
                end = buffer.find(b"\n", item, size) + 1 or size
                recent.append((None, bytes(buffer[start:end])))
            else:
                recent.append((item[0], bytes(item[4][item[2]:item[3]])))
        del recent[:-MAX_LINES]

    def _lines_out(self) -> None:
        """The lines kept by _keep_lines into data["lines"], with their times."""
        lines = self.store.data["lines"]
        for when, line in self._recent:
            if when is None:
                when = self.stamps.exact(line, 0, len(line))
            lines.append([when, logmsg.line_text(line)])
        self._recent = []
        del lines[:-MAX_LINES]

    def _said_at(self, buffer, start: int, end: int, cut: int) -> tuple | None:
        """(kind, netns, count, the key of the counts after it) of the line
        ``buffer[start:end]``, None: nothing counted.

        ``cut``: two bytes before its first CONNTRACK_KEY. Lines that differ only
        before that (time, host, kernel timestamp) say the same: worked out once.
        """
        if cut < start or buffer.find(b"suppressed", start, cut) >= 0:
            return said_by(bytes(buffer[start:end]))
        tail = bytes(buffer[cut:end])
        said = self._said.get(tail, False)
        if said is False:
            said = self._said[tail] = said_by(bytes(buffer[start:end]))
            if len(self._said) > CACHE:
                self._said.clear()
        return said


def said_by(line: bytes) -> tuple | None:
    """What _said_at keeps of a line (see there)."""
    found = logmsg.classify(line)
    return found and (found.kind, found.netns, found.count, counts_key(line))


def counts_key(line) -> bytes:
    """What the counts after a table-full ``line`` are searched for (see CALLBACKS_KEY)."""
    return logmsg.SUPPRESSED_KEY if logmsg.OLD_WORDING in line else logmsg.CALLBACKS_KEY


def near_for(key: bytes) -> int:
    """NEAR for a search for ``key``: CALLBACKS_KEY comes 8 bytes before SUPPRESSED_KEY
    in a count's line, so the window starts 8 bytes earlier for it."""
    return NEAR + (8 if key == logmsg.CALLBACKS_KEY else 0)


def take(store, kind: str, n: int, when: float, buffer, start: int, end: int,
         counted: list) -> bool:
    """An expectation or suppressed line found in a block, into the store (and, if it
    counted, into ``counted`` for the lines -v shows); True: it counted."""
    if store.add_count(kind, n, when):
        counted.append((when, None, start, end, buffer))
        return True
    return False


class Stretch:
    """The stretch after a table-full line in which a "callbacks suppressed" count can
    still be conntrack's, and the search for counts in it (see RATE and ATTRIBUTE)."""

    def __init__(self, store, stamps):
        self.store = store
        self.stamps = stamps
        self.open: float | None = None  # the table-full line whose stretch add_block is in
        # What its counts are searched for (see logmsg.CALLBACKS_KEY): as after the last
        # table-full line of an earlier run, or what finds every count.
        self.fast = True  # CALLBACKS_KEY may be used (see counts_from)
        self.misses = 0  # lines it found that were no count
        last = store.data.get("last")
        self.use(counts_key(last[2].encode("utf-8", "replace")) if last
                 else logmsg.SUPPRESSED_KEY)
        self.pending: bytearray | None = None  # lines of a stretch not searched yet (block_ends)
        # The last_ct after which this run's lines were found to be too late for
        # attribution; later ones are later still.
        self.too_late_after: float | None = None

    def block_ends(self, buffer, lo: int, size: int, counted: list, search=None) -> None:
        """The lines after the last one found, in a stretch: searched now, or kept (up to
        PENDING bytes) while the next table-full line may still come within RATE, which
        would leave only the NEAR bytes before it to search (see RATE).

        ``search``: memsearch's finder over ``buffer`` (None: ``buffer.find``), here and
        in the methods below."""
        pending = self.pending
        last_line = buffer.rfind(b"\n", lo, size - 1) + 1 or lo
        when = self.stamps.time(self.stamps.at(buffer, last_line, size)[0])
        kept = len(pending) if pending is not None else 0
        if when - self.open <= RATE and kept + size - lo <= PENDING:
            if pending is None:
                self.pending = bytearray(memoryview(buffer)[lo:size])
            else:
                pending += memoryview(buffer)[lo:size]
            return
        if pending is not None:
            self.pending = None
            self.between(pending, 0, kept, None, None, counted)
            if self.open is None:
                return
        self.between(buffer, lo, size, None, None, counted, search)

    def pending_before(self, kind: str, when: float, start: int, counted: list) -> None:
        """Decide on the lines kept from earlier blocks, now that the line found at
        ``start`` of this block is known: only their last bytes before a table-full line
        within RATE, else all of them (as far as the stretch goes)."""
        pending, self.pending = self.pending, None
        if self.open is None:
            return
        if kind == TABLE_FULL and when - self.open <= RATE:
            window = len(pending) - (self.near - start)
            if window < len(pending):
                found = pending.find(self.key, max(0, window))
                if found >= 0:
                    self.counts_from(pending, found, 0, len(pending), counted)
        else:
            self.between(pending, 0, len(pending), None, None, counted)

    def between(self, buffer, lo: int, hi: int, kind, when, counted: list,
                search=None) -> None:
        """Count the "suppressed" lines of ``buffer[lo:hi]`` (no line found there) that can
        still be attributed to the table-full line at ``self.open``: up to ATTRIBUTE +
        SLACK after it (to a few KiB).

        ``kind``/``when``: the line found at ``hi`` (None: the block ends there).
        """
        limit = self.open + ATTRIBUTE + SLACK
        stop = hi if kind is not None and when <= limit else \
            self.stamps.stretch_end(buffer, lo, hi, limit)
        if stop < hi:
            self.open = None
        self.counts_in(buffer, lo, stop, counted, search)

    def counts_from(self, buffer, at: int, lo: int, hi: int, counted: list,
                    search=None) -> None:
        """The counts of the lines of ``buffer[lo:hi]`` (between lines add_block found)
        that hold the key (see logmsg.CALLBACKS_KEY), from the one at ``at`` on."""
        find = buffer.find
        while at >= 0:
            start = buffer.rfind(b"\n", lo, at) + 1 or lo
            end = find(b"\n", at, hi) + 1 or hi
            n = logmsg.suppressed_count(bytes(buffer[start:end]))
            if n is not None:
                when = self.stamps.exact(buffer, start, end)
                take(self.store, SUPPRESSED, n, when, buffer, start, end, counted)
            elif self.key == logmsg.CALLBACKS_KEY:
                self.misses += 1
                if self.misses == MISSES:  # "callback" lines of other programs: the key
                    self.fast = False  # that finds counts only
                    self.use(logmsg.SUPPRESSED_KEY)
            at = find(self.key, end, hi) if search is None else search(self.needle, end, hi)

    def counts_in(self, buffer, lo: int, hi: int, counted: list, search=None) -> None:
        """The counts of ``buffer[lo:hi]``, lines between those add_block found: none
        of them holds CONNTRACK_KEY with a message, so a count is all one can say."""
        at = buffer.find(self.key, lo, hi) if search is None else search(self.needle, lo, hi)
        self.counts_from(buffer, at, lo, hi, counted, search)

    def use(self, key: bytes) -> tuple[bytes, int]:
        """Search counts for ``key`` from now on (CALLBACKS_KEY only while it finds few
        other lines); (the key, its NEAR)."""
        if key == logmsg.CALLBACKS_KEY and not self.fast:
            key = logmsg.SUPPRESSED_KEY
        self.key, self.near = key, near_for(key)
        # memmem's needle: a longer one is faster (see memsearch), at the same place
        self.needle = logmsg.CALLBACKS_WORDS if key == logmsg.CALLBACKS_KEY else key
        return self.key, self.near


class Stamps:
    """The times of syslog lines from their stamps, each distinct stamp parsed once."""

    def __init__(self, now: float):
        self.now = now  # the time of a line without a readable stamp
        self._times: dict[bytes, float] = {}  # time stamp -> epoch time
        self._minutes: dict[bytes, float | bool] = {}  # (see _minute)
        # A line's second and its time, for exact(): true of every line that has its
        # stamp up to the second (zone included), whenever it is used.
        self.hint = (b"\n", 0, b"", 0, 0.0)

    @staticmethod
    def at(buffer, start: int, end: int) -> tuple[bytes, bool]:
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
        """Where the fraction of an RFC 3339 stamp from at() ends (0: it has none)."""
        if stamp[19:20] == b"." and stamp[:1].isdigit():
            if stamp[20:26].isdigit() and not stamp[26:27].isdigit():
                return 26  # microseconds, as rsyslog writes them
            end = len(stamp) - len(stamp[20:].lstrip(b"0123456789"))
            if end > 20:
                return end
        return 0

    def layout(self, buffer, start: int, stamp: bytes, fixed: bool) -> tuple:
        """How add_block reads the next lines' times from this line's ``stamp`` (from
        at()): (head, fzone_at, zone, minute, mbase, send).

        A line that starts with ``head`` (and, where ``fzone_at``, has ``zone`` there)
        is in this line's second, plus its own fraction (bytes 19 to ``fzone_at``). One
        that starts with ``minute`` (and has ``zone`` at ``send``) is ``mbase`` plus its
        seconds (bytes ``len(minute)`` to ``send``): whole seconds first, then the
        fraction, as time() adds them. NO_LAYOUT matches no line.
        """
        if fixed:
            if len(stamp) != 15 or not stamp[:1].isalpha():  # <PRI>: the same stamp only
                return stamp, 0, b"", b"\n", 0.0, 0
            minute = stamp[:13]  # Mmm dd HH:MM:
            mbase = self.time(minute + b"00")
            if mbase == self.now or self._minutes.get(minute) is False:  # see _minute
                return stamp, 0, b"", b"\n", 0.0, 0
            return stamp, 0, b"", minute, int(mbase), 15
        if buffer[start + len(stamp):start + len(stamp) + 1] != b" " or len(stamp) < 19 \
                or stamp[16:17] != b":":
            return NO_LAYOUT
        end = self._fraction_end(stamp)
        zone = stamp[end or 19:]
        mbase = self.time(stamp[:17] + b"00" + zone)
        if mbase == self.now:
            return stamp + b" ", 0, b"", b"\n", 0.0, 0
        mbase = int(mbase)  # (a whole second: add_block's seconds stay ints)
        if end and end <= 26:
            # up to microseconds: a time under the next second (not so with 9 digits,
            # which a double rounds up to it near 1.8e9; those match the whole stamp)
            return stamp[:20], end, zone + b" ", stamp[:17], mbase, end
        return stamp + b" ", 0, zone + b" ", stamp[:17], mbase, end or 19

    def exact(self, buffer, start: int, end: int) -> float:
        """The time of the line at ``start``, its fraction included: in the second of
        ``hint`` (head, fzone_at, zone, second, time; see layout), else parsed."""
        head, fzone_at, zone, second, when = self.hint
        if buffer.startswith(head, start) and (
                not fzone_at or buffer.startswith(zone, start + fzone_at)):
            return self.in_second(buffer, start, second, fzone_at, end) if fzone_at else when
        return self.time(self.at(buffer, start, end)[0])

    def in_second(self, buffer, start: int, second: int, fraction_end: int, end: int) -> float:
        """The time of a line of ``second`` whose fraction ends at ``fraction_end`` (a
        line that matched a layout's head and zone)."""
        fraction = buffer[start + 19:start + fraction_end]
        return second + float(fraction) if fraction[1:].isdigit() else \
            self.time(self.at(buffer, start, end)[0])

    def time(self, stamp: bytes) -> float:
        """The time of a stamp from at() (now when it holds none).

        RFC 3339 stamps with a fraction (rsyslog's default since Debian 12) differ on
        every line: the time of the stamp without its fraction is what is kept; the
        time of a stamp without a fraction, from its minute's (see _minute).
        """
        when = self._times.get(stamp)
        if when is None:
            end = self._fraction_end(stamp)
            if end:
                base = self.time(stamp[:19] + stamp[end:])
                if base != self.now:
                    return base + float(stamp[19:end])
            when = self._minute(stamp)
            if when is None:
                when = logmsg.syslog_time(stamp.decode("ascii", "replace"), self.now) \
                    or self.now
            self._times[stamp] = when
            if len(self._times) > CACHE:
                self._times.clear()
        return when

    def _minute(self, stamp: bytes) -> float | None:
        """The time of ``Mmm dd HH:MM:SS`` or an RFC 3339 stamp without a fraction as
        the time of its minute plus its seconds (a log of many seconds parses each
        minute once); None: parse it whole."""
        if len(stamp) == 15 and stamp[:1].isalpha():
            key, zero, seconds = stamp[:13], stamp[:13] + b"00", stamp[13:15]
        elif len(stamp) >= 19 and stamp[:1].isdigit() and stamp[16:17] == b":":
            key, seconds = stamp[:17] + stamp[19:], stamp[17:19]
            zero = stamp[:17] + b"00" + stamp[19:]
        else:
            return None
        if not seconds.isdigit() or seconds > b"60":
            return None
        base = self._minutes.get(key)
        if base is None:
            base = logmsg.syslog_time(zero.decode("ascii", "replace"), self.now)
            # a traditional stamp's year is chosen by the second (see syslog_time)
            if base is None or (len(stamp) == 15 and abs(base - self.now - 86400) < 120):
                base = False
            self._minutes[key] = base
            if len(self._minutes) > CACHE:
                self._minutes.clear()
        return None if base is False else base + int(seconds)

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
