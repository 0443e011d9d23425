"""The conntrack table entry by entry: dumped, parsed and counted in bounded memory.

Two sources give the same line format: ``/proc/net/nf_conntrack`` (or the old
``/proc/net/ip_conntrack``; root only, the table of the reader's namespace)
and the ctnetlink dump ``conntrack -L`` (CAP_NET_ADMIN). Either is read in
big chunks; one compiled pattern per chunk (``findall``, in C) picks the few
fields a line needs and ``Counter`` counts them, so Python does no work per
line. Dumping a big table costs the kernel seconds of CPU: the dump runs in
a child process (``cat`` on the open proc file, or ``conntrack``) on another
CPU while this process parses what already arrived.

A read may stop early: at ``limit`` lines (a sample: both dumps walk the hash
table bucket by bucket, and an entry's bucket comes from a keyed hash with a
per-boot seed mixed with the namespace, so the first entries of a dump are a
uniform random sample of the table), or at a ``deadline`` (time.monotonic()),
checked between reads; a pipe is polled so a dump that hangs cannot hold the
reader past it. Whole lines read before the stop are counted either way.
"""

from __future__ import annotations

import gc
import os
import re
import time
from collections import Counter
from operator import itemgetter

from ..errors import ProbeError
from . import sysctl

PROC_FILES = ("net/nf_conntrack", "net/ip_conntrack")
CONNTRACK_TOOLS = ("/usr/sbin/conntrack", "/sbin/conntrack", "/usr/bin/conntrack")
CAT = ("/usr/bin/cat", "/bin/cat")
SUDOERS = "see contrib/sudoers/conntrack-checks"
CHUNK = 1 << 20
# Tables this small are read in-process: a child would cost more than it saves.
PIPE_FROM = 20000
# Distinct group keys kept; beyond it the rarest are dropped (lossy counting).
KEY_LIMIT = 65536

# One entry of either format, e.g.
#   ipv4 2 tcp 6 431999 ESTABLISHED src=A dst=B sport=1 dport=2 [packets= bytes=]
#   [UNREPLIED] src=B dst=A sport=2 dport=1 [ASSURED] [OFFLOAD] mark=0 zone=0 use=2
# conntrack -L and /proc/net/ip_conntrack lack the "ipv4 2" head; the timeout
# is missing for offloaded flows. The reply tuple equals the swapped original
# unless NAT rewrote it: the pattern checks that with backreferences. It
# starts at the newline before each line (a chunk is given one in front), a
# literal the regex engine skips to quickly, and stops as soon as it knows
# enough: matching the rest of every line would cost more than all the rest.
# ASSURED, after the reply, is counted over the whole chunk with count().
_HEAD = rb"""\n(?:ipv[46]\ +\d+\ +)?
([a-z][a-z0-9_-]*)\ +(\d+)\ +                   # 1 protocol, 2 its number
(?:\d+\ +)?                                     # timeout
(?:([A-Z][A-Z0-9_]*)\ +)?                       # 3 state
src=(?:(?=[^\ \n]*(:)))?(\S+)\ dst=(\S+)\ +     # 4 ':' for IPv6, 5 src, 6 dst
(?:sport=(\d+)\ dport=(\d+)\ +)?                # 7 sport, 8 dport
(?:type=\d+\ code=\d+\ id=(\d+)\ +)?            # 9 ICMP id
(?:[a-z-]+=\S*\ +)*?                            # GRE keys, counters, zone-orig
(\[UNREPLIED\]\ +)?                             # 10
(?:(src)=\6\ dst=\5\ +                          # 11 'src': the reply is not NAT-ed
   (?(7)sport=\8\ dport=\7[\ \n])(?(9)type=\d+\ code=\d+\ id=\9[\ \n])
 |src=)"""
# Only for --top-by mark or zone: the rest of the line.
_TAIL = rb"""
(?:[^\n]*\bmark=(\d+))?                         # 12 (greedy: it is near the end)
(?:[^\n]*\bzone=(\d+))?                         # 13
"""


# Group 4 looks ahead through the source address for a ':' (IPv6). A chunk
# without any ':' cannot hold one: there group 4 is always empty, and the
# lookahead (a fifth of the matching time) is left out.
_V6 = rb"src=(?:(?=[^\ \n]*(:)))?"
_NO_V6 = rb"src=()"


def pattern(marks: bool = False, colons: bool = True) -> re.Pattern:
    """The entry pattern (with mark and zone if asked), compiled on first use.

    ``colons``: the text may hold IPv6 addresses (False: it holds no ':').
    """
    head = _HEAD if colons else _HEAD.replace(_V6, _NO_V6, 1)
    return re.compile(head + _TAIL if marks else head, re.X)  # re caches it

# What each --top-by key groups by: indexes into a findall row (group - 1).
KEYS = {
    "src": (4,),
    "dst": (5,),
    "dport": (0, 7),
    "src-dst-dport": (4, 5, 0, 7),
    "zone": (12,),
    "mark": (11,),
}
KEY_WORDS = {
    "src": "source", "dst": "destination", "dport": "destination port",
    "src-dst-dport": "source, destination and port", "zone": "zone", "mark": "mark",
}
# protocol, number, state, ':', UNREPLIED, not NAT-ed: few distinct values
_CLASS = itemgetter(0, 1, 2, 3, 9, 10)


class TableDenied(ProbeError):
    """The table needs more privilege than this process has."""

    def __init__(self, message: str, what: str):
        super().__init__(message)
        self.what = what


def _getter(key: str):
    fields = KEYS[key]
    if key in ("zone", "mark"):
        # No zone= (conntrack -L, older kernels) is zone 0.
        index = fields[0]
        return lambda row: row[index] or b"0"
    return itemgetter(*fields) if len(fields) > 1 else itemgetter(fields[0])


class Groups:
    """Entries per key value, at most KEY_LIMIT values held.

    When the limit is passed the values with the fewest entries are dropped
    (lossy counting): a count may then be low by at most ``error`` entries,
    and a group that holds more than ``error`` entries is never lost.
    """

    def __init__(self, key: str, limit: int = KEY_LIMIT):
        self.key = key
        self.get = _getter(key)
        self.counts: Counter = Counter()
        self.limit = limit
        self.error = 0

    def update(self, rows) -> None:
        self.counts.update(map(self.get, rows))
        if len(self.counts) > self.limit:
            self.prune()

    def prune(self) -> None:
        # Drop the values counted at most ``floor`` times (doubling it until
        # half the room is free). A value dropped now and again later lost at
        # most the sum of the floors: that sum is the error bound.
        floor = 1
        while True:
            kept = {k: v for k, v in self.counts.items() if v > floor}
            if len(kept) <= self.limit // 2:
                break
            floor *= 2
        self.counts = Counter(kept)
        self.error += floor

    def top(self, n: int) -> list[tuple[str, int]]:
        return [(key_text(self.key, k), v) for k, v in self.counts.most_common(n)]


class DumpCounts:
    """What a dump held: entries by class, groups by key, lines not understood.

    ``limit``: read at most this many lines (None: all); ``deadline``: a
    time.monotonic() value to stop at. ``sampled`` / ``interrupted`` say
    which stopped the read; neither means the whole dump was counted.
    """

    def __init__(self, keys=("dst",), key_limit: int = KEY_LIMIT, limit: int | None = None,
                 deadline: float | None = None):
        self.classes: Counter = Counter()
        self.flags: Counter = Counter()
        self.groups = {k: Groups(k, key_limit) for k in keys}
        marks = bool({"mark", "zone"} & set(keys))
        self.pattern = pattern(marks)
        self.pattern_v4 = pattern(marks, colons=False)
        self.lines = 0
        self.entries = 0
        self.sample: bytes | None = None  # the first line not understood
        self.limit = limit
        self.deadline = deadline
        self.sampled = False  # stopped at ``limit`` lines
        self.interrupted = False  # stopped at the deadline
        self.source = ""
        self.piped = False  # the proc file was read through a cat child

    @property
    def complete(self) -> bool:
        """The whole dump was counted: the counts are exact."""
        return not (self.sampled or self.interrupted)

    def read(self, fd: int) -> None:
        """Count what ``fd`` gives, in place in one buffer (no copies).

        The buffer starts with the newline that ended the previous chunk's
        last whole line, then the partial line carried over, then new data.
        """
        buf = bytearray(CHUNK + 1)
        view = memoryview(buf)
        buf[0:1] = b"\n"
        start = 1
        ready = _poller(fd, self.deadline)
        try:
            while True:
                # Fill the whole buffer first: proc files and pipes give 4 KiB
                # a read, and parsing each bit apart would cost more than it.
                filled = start
                while filled < CHUNK:
                    if ready is not None and not ready():
                        # Count the whole lines read so far, then stop.
                        self.interrupted = True
                        cut = buf.rfind(b"\n", 1, filled) + 1
                        if cut > 1:
                            self._count(buf, cut)
                        return
                    got = os.readv(fd, [view[filled:CHUNK]])
                    if not got:
                        break
                    filled += got
                if filled == CHUNK and start == CHUNK:
                    raise ProbeError(f"a line of more than {CHUNK} bytes: not a conntrack table")
                cut = buf.rfind(b"\n", 1, filled) + 1
                if cut > 1:
                    if self._count(buf, cut):
                        return
                else:
                    cut = 1
                rest = filled - cut
                if filled < CHUNK:  # end of the dump
                    if rest:
                        buf[filled:filled + 1] = b"\n"
                        self._count(buf[cut - 1:filled + 1], rest + 2)
                    return
                buf[1:1 + rest] = buf[cut:filled]
                start = 1 + rest
        finally:
            view.release()

    def _count(self, buf, end: int) -> bool:
        """Count the lines of ``buf[1:end]``; ``buf[0]`` and ``buf[end-1]`` are newlines.

        True when ``limit`` lines have been counted: the sample is complete.
        """
        lines = buf.count(b"\n", 1, end)
        full = self.limit is not None and self.lines + lines >= self.limit
        if full:
            lines = self.limit - self.lines
            end = _after_lines(buf, lines)
            self.sampled = True
        fast = buf.find(b":", 0, end) < 0
        rows = (self.pattern_v4 if fast else self.pattern).findall(buf, 0, end)
        if len(rows) < lines and self.sample is None:
            self.sample = _first_bad(bytes(buf[1:end]), self.pattern)
        self.lines += lines
        self.entries += len(rows)
        self.flags["assured"] += buf.count(b"[ASSURED]", 0, end)
        self.classes.update(map(_CLASS, rows))
        for groups in self.groups.values():
            groups.update(rows)
        return full

    @property
    def garbage(self) -> int:
        return self.lines - self.entries

    def totals(self) -> dict:
        """Entries by family, protocol, state and flag."""
        out = {"entries": self.entries, "family": Counter(), "protocol": Counter(),
               "state": Counter(), "flag": Counter(self.flags)}
        out["flag"]["nated"] = out["flag"]["unreplied"] = 0
        for (proto, num, state, colon, unreplied, plain), n in self.classes.items():
            name = proto.decode("ascii")
            if name == "unknown":
                name = f"proto-{int(num)}"
            out["family"]["ipv6" if colon else "ipv4"] += n
            out["protocol"][name] += n
            if state:
                out["state"][f"{name}:{state.decode('ascii').lower()}"] += n
            if unreplied:
                out["flag"]["unreplied"] += n
            if not plain:
                out["flag"]["nated"] += n
        return out


def _after_lines(buf, lines: int) -> int:
    """The end of the first ``lines`` lines of ``buf[1:]`` (just past the newline of the last)."""
    pos = 0
    for _ in range(lines):
        pos = buf.find(b"\n", pos + 1)
    return pos + 1


def _poller(fd: int, deadline: float | None):
    """A function that waits until ``fd`` can be read: False once ``deadline`` has passed.

    None without a deadline. Regular files (the proc file read in-process)
    are always ready; only the clock is checked for them.
    """
    if deadline is None:
        return None
    import select
    import stat

    if not stat.S_ISFIFO(os.fstat(fd).st_mode):
        return lambda: time.monotonic() < deadline
    poll = select.poll()
    poll.register(fd, select.POLLIN)

    def ready() -> bool:
        left = deadline - time.monotonic()
        return left > 0 and bool(poll.poll(left * 1000))

    return ready


def _first_bad(data, pattern) -> bytes:
    for line in bytes(data).split(b"\n"):
        if not pattern.match(b"\n" + line + b"\n"):
            return line[:120]
    return b""


def key_text(key: str, value) -> str:
    """A group value in words: addresses shortened, '' fields named."""
    if key == "src-dst-dport":
        src, dst, proto, port = value
        return f"{_address(src)} -> {_address(dst)} {_port(proto, port)}"
    if key == "dport":
        return _port(*value)
    if key in ("zone", "mark"):
        return value.decode("ascii") or "0"
    return _address(value)


def _port(proto: bytes, port: bytes) -> str:
    name = proto.decode("ascii")
    return f"{name}/{port.decode('ascii')}" if port else f"{name} (no ports)"


def _address(raw: bytes) -> str:
    text = raw.decode("ascii", "replace")
    if ":" in text:
        import ipaddress  # only for IPv6 addresses shown

        try:
            return str(ipaddress.ip_address(text))
        except ValueError:
            pass
    return text


def read_stream(fd: int, tally: DumpCounts) -> None:
    """Count what ``fd`` gives until its end, the sample size or the deadline.

    The cyclic garbage collector is paused meanwhile: the parsed rows are
    millions of tuples and hold no cycles, yet would trigger scan after scan.
    """
    paused = gc.isenabled()
    gc.disable()
    try:
        tally.read(fd)
    finally:
        if paused:
            gc.enable()


def _first_existing(paths) -> str | None:
    for path in paths:
        if os.path.exists(path):
            return path
    return None


def open_proc(roots: sysctl.Roots) -> tuple[int, str] | None:
    """The proc table file of the current namespace, opened; None if absent."""
    for rel in PROC_FILES:
        path = roots.proc_path(rel)
        try:
            return os.open(path, os.O_RDONLY | os.O_CLOEXEC), path
        except FileNotFoundError:
            continue
        except PermissionError:
            raise TableDenied(
                f"reading the conntrack table needs root (or CAP_NET_ADMIN with "
                f"--source netlink): {path}: permission denied; {SUDOERS}",
                f"{path}: permission denied",
            ) from None
        except OSError as exc:
            raise ProbeError(f"cannot open {path}: {exc.strerror}") from None
    return None


def _widen(fd: int) -> None:
    try:
        import fcntl

        fcntl.fcntl(fd, getattr(fcntl, "F_SETPIPE_SZ", 1031), CHUNK)
    except OSError:
        pass  # a smaller pipe only costs more reads


def _child(cmd, stdin=None):
    import subprocess  # only paid for big tables and the netlink path

    child = subprocess.Popen(cmd, stdin=stdin, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, close_fds=True)
    _widen(child.stdout.fileno())
    return child


def _read_child(child, tally: DumpCounts) -> bytes:
    """Count what the dump child writes; stop it (waited for when it was read to the end,
    killed otherwise) and return what it said on stderr."""
    finished = False
    try:
        read_stream(child.stdout.fileno(), tally)
        finished = tally.complete
    finally:
        err = _stop(child, finished)
    return err


def _stop(child, finished: bool) -> bytes:
    """End the child; its stderr.

    Killed when its output was not read to the end (a sample, a deadline,
    an error): it may still be dumping. After the end it is exiting on its
    own, and a kill then would race that exit and read as a failed dump.
    """
    if not finished and child.poll() is None:
        child.kill()
    child.stdout.close()
    err = child.stderr.read(2000) if child.returncode is None or child.returncode else b""
    child.stderr.close()
    child.wait()
    return err


def dump_proc(roots: sysctl.Roots, tally: DumpCounts, expected: int = 0) -> bool:
    """Count the proc file of the current namespace; False if there is none."""
    opened = open_proc(roots)
    if opened is None:
        return False
    fd, path = opened
    tally.source = path
    cat = _first_existing(CAT)
    try:
        if expected < PIPE_FROM or cat is None:
            read_stream(fd, tally)
            return True
        child = _child([cat], stdin=fd)
        tally.piped = True
    finally:
        os.close(fd)
    err = _read_child(child, tally)
    if child.returncode and tally.complete:
        raise ProbeError(f"cat {path} failed: {_words(err)}")
    return True


def conntrack_tool() -> str | None:
    return _first_existing(CONNTRACK_TOOLS)


def dump_netlink(tally: DumpCounts) -> None:
    """Count `conntrack -L` (a ctnetlink dump) of the current namespace."""
    tool = conntrack_tool()
    if tool is None:
        raise ProbeError(
            "conntrack (conntrack-tools) is not installed, needed where "
            "/proc/net/nf_conntrack is absent: install conntrack-tools"
        )
    tally.source = f"{tool} -L (ctnetlink)"
    child = _child([tool, "-L"], stdin=None)
    err = _read_child(child, tally)
    if child.returncode and tally.complete:
        words = _words(err)
        if any(w in words for w in ("not permitted", "denied", "CAP_NET_ADMIN", "root")):
            raise TableDenied(
                f"reading the conntrack table needs root or CAP_NET_ADMIN: {tool} -L: "
                f"{words}; {SUDOERS}",
                f"{tool} -L: {words}",
            )
        raise ProbeError(f"{tool} -L failed (exit {child.returncode}): {words}")


def _words(err: bytes) -> str:
    text = " ".join(err.decode("utf-8", "replace").split())
    return text.split("): ", 1)[-1][:200] or "no message"


def dump(roots: sysctl.Roots, tally: DumpCounts, source: str = "auto", expected: int = 0) -> None:
    """Count the table of the current namespace from ``source``.

    auto: the proc file where the kernel has one, else `conntrack -L`. A proc
    file that root alone may read is given up for `conntrack -L` when
    conntrack-tools is installed (CAP_NET_ADMIN suffices there).
    """
    denied = None
    if source in ("auto", "proc"):
        try:
            if dump_proc(roots, tally, expected):
                return
        except TableDenied as exc:
            if source == "proc" or conntrack_tool() is None:
                raise
            denied = exc
        if source == "proc":
            raise ProbeError(
                f"no {roots.proc_path(PROC_FILES[0])} (kernel without "
                "CONFIG_NF_CONNTRACK_PROCFS): use --source netlink"
            )
    try:
        dump_netlink(tally)
    except TableDenied as exc:
        if denied is None:
            raise
        raise TableDenied(
            f"reading the conntrack table needs root or CAP_NET_ADMIN: {denied.what}; "
            f"{exc.what}; {SUDOERS}", exc.what) from None
