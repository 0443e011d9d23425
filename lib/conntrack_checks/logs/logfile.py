"""Following a syslog file across rotations, by content, without losing a line.

A position is a file's *content* plus an offset: the CRC of its first bytes
(``hlen``, up to 256), the CRC of the 256 bytes before the offset and the
offset itself (after the last complete line consumed). The live file
continues the position only if both CRCs still match there; otherwise the
rotated copies (``.1``, ``.2.gz``, ``-20261123``, ...) are searched, newest
first, for the file that does. That file is read from the offset, every
newer copy in full, then the live file from the start. No copy found: the
old content is gone and the gap is reported.

A copy rotated within the last ``GRACE`` seconds stays on a *drain* list and
is read again on later runs, for the lines a syslog daemon still writes to
the renamed file before it reopens. Only complete lines are consumed;
reading stops when the run's byte or time budget is spent, with the position
saved where it stopped, wherever that is.
"""

from __future__ import annotations

import os
import re
import time
import zlib

from .result import ReadResult

# Bytes read and searched at once: large enough that the per-block costs
# (read(2), the search's set-up, the lines kept for -v, a time check) vanish
# next to the search itself (4 MiB: 2 % fewer instructions than 1 MiB on a
# dense incident, 3-5 % less time in-process, docs/benchmarks.rst), small
# enough to stay in the CPU's last-level cache and keep the memory flat; a
# smaller file gets a buffer of its own size (no page is touched for
# nothing). tests/bench/bench_log.py measures it.
CHUNK = 4 << 20
FINGERPRINT = 256
GRACE = 300.0
# A line longer than this is no kernel line (printk: 1 KiB, rsyslog: 8 KiB);
# only its end is kept.
MAX_LINE = 1 << 16
ARCHIVE = (r"(?:\.(\d{1,3})|[.-](\d{8,14}|\d{4}-\d\d-\d\d(?:-\d+)?))"
                     r"(?:\.(gz|bz2|xz))?\Z")


class Budget:
    """Bytes and seconds this run may spend reading."""

    def __init__(self, max_bytes: int, deadline: float):
        self.left = max_bytes
        self.deadline = deadline

    def spend(self, nbytes: int) -> bool:
        """Account for a chunk; False once the budget is spent."""
        self.left -= nbytes
        return self.left > 0 and time.monotonic() < self.deadline


def _crc(data: bytes) -> str:
    return format(zlib.crc32(data), "08x")


def _open(path: str):
    """A binary reader for a plain or compressed file."""
    if path.endswith(".gz"):
        import gzip
        return gzip.open(path, "rb")
    if path.endswith(".bz2"):
        import bz2
        return bz2.open(path, "rb")
    if path.endswith(".xz"):
        import lzma
        return lzma.open(path, "rb")
    return open(path, "rb", buffering=0)


def _read_exact(handle, size: int) -> bytes:
    parts = []
    while size > 0:
        data = handle.read(size)
        if not data:
            break
        parts.append(data)
        size -= len(data)
    return b"".join(parts)


def _matches(path: str, pos: dict) -> bool:
    """Does ``path`` hold the content ``pos`` describes, up to its offset?"""
    off, hlen = pos["off"], pos["hlen"]
    try:
        if _plain(path):
            st = os.stat(path)
            if st.st_size < off:
                return False
            # An empty position's content matches any file: the inode must
            # agree too (renames keep it).
            if off == 0 and pos.get("ino") not in (None, st.st_ino):
                return False
        with _open(path) as handle:
            head = _read_exact(handle, hlen)
            if len(head) < hlen or _crc(head) != pos["head"]:
                return False
            tlen = min(FINGERPRINT, off)
            if off - tlen > hlen:
                handle.seek(off - tlen)
                tail = _read_exact(handle, tlen)
            else:
                tail = (head + _read_exact(handle, off - hlen))[off - tlen:]
            return len(tail) == tlen and _crc(tail) == pos["tail"]
    except (OSError, EOFError, ValueError):
        return False


def archives(path: str) -> list[str]:
    """Rotated copies of ``path``, oldest first."""
    directory, base = os.path.split(path)
    try:
        names = os.listdir(directory or ".")
    except OSError:
        return []
    found = []
    for name in names:
        if not name.startswith(base) or name == base:
            continue
        match = re.match(ARCHIVE, name[len(base):])
        if not match:
            continue
        number, date = match.group(1), match.group(2)
        rank = -int(number) if number is not None else int(re.sub(r"\D", "", date).ljust(14, "0"))
        path_ = os.path.join(directory, name)
        found.append((rank, _mtime(path_), path_))
    return [p for _, _, p in sorted(found)]


def position_at(path: str, off: int, tail: bytes = b"") -> dict:
    """The position ``off`` bytes into ``path`` (``tail``: bytes just before it, if known)."""
    with _open(path) as handle:
        ino = os.fstat(handle.fileno()).st_ino if _plain(path) else None
        head = _read_exact(handle, min(FINGERPRINT, off))
        tlen = min(FINGERPRINT, off)
        if len(tail) < tlen:
            if off - tlen > len(head):
                handle.seek(off - tlen)
                tail = _read_exact(handle, tlen)
            else:
                tail = (head + _read_exact(handle, off - len(head)))[off - tlen:]
    return {"off": off, "hlen": len(head), "head": _crc(head),
            "tail": _crc(tail[len(tail) - tlen:] if tlen else b""), "ino": ino}


def baseline(path: str) -> dict:
    """The position after the last complete line of ``path`` as it is now."""
    with open(path, "rb", buffering=0) as handle:
        size = os.fstat(handle.fileno()).st_size
        end = size
        while end > 0:
            start = max(0, end - 65536)
            handle.seek(start)
            block = _read_exact(handle, end - start)
            nl = block.rfind(b"\n")
            if nl >= 0:
                end = start + nl + 1
                break
            end = start
    return dict(position_at(path, end), saved=time.time())


def _read(path: str, pos: dict, budget: Budget, result: ReadResult, on_line) -> tuple[dict, bool]:
    """Read ``path`` from ``pos`` to its end or the budget; (new position, finished)."""
    off = pos["off"]
    tail = b""
    done = True
    with _open(path) as handle:
        if off:
            handle.seek(off)
        # One buffer for the whole file: the bytes are searched where they
        # were read, never copied (that, not the search, is what costs).
        buf = bytearray(min(CHUNK, max(4096, _size(path) - off if _plain(path) else CHUNK))
                        + MAX_LINE)
        view = memoryview(buf)
        carry = 0
        while True:
            got = handle.readinto(view[carry:carry + max(4096, min(CHUNK, budget.left))])
            if not got:
                break
            size = carry + got
            last = buf.rfind(b"\n", 0, size) + 1
            if last:
                on_line(buf, last)
                off += last
                tail = (tail + bytes(buf[max(0, last - FINGERPRINT):last]))[-FINGERPRINT:]
                carry = size - last
                buf[:carry] = buf[last:size]
            else:
                carry = size
            if carry > MAX_LINE - 4096:  # a line this long is no kernel line
                drop = carry - 4096  # its start, passed over for good
                off += drop
                tail = bytes(buf[drop - FINGERPRINT:drop])
                buf[:4096] = buf[drop:carry]
                carry = 4096
            result.bytes += got
            if not budget.spend(got):
                done = False
                break
        view.release()
        if not done:
            rest = _remaining(handle, path)
            result.unread += rest + carry
    result.files_read.append(f"{path} from byte {pos['off']} to {off}")
    same = off == pos["off"] and (pos.get("ino") is not None or not _plain(path))
    new = pos if same else position_at(path, off, tail)
    return new, done


def _remaining(handle, path: str) -> int:
    try:
        return max(0, os.fstat(handle.fileno()).st_size - handle.tell())
    except (OSError, ValueError, AttributeError):
        return 0  # compressed: unknown


def follow(path: str, state: dict | None, budget: Budget, on_line, now: float | None = None,
           result: ReadResult | None = None) -> tuple[dict, ReadResult]:
    """Read what was added to ``path`` since ``state``; returns (new state, what was read).

    ``on_line(buffer, size)`` gets ``buffer[:size]``, complete lines, in
    order, each once (the buffer is reused: copy what you keep).
    ``state`` None reads the live file from the start (callers baseline
    first runs with ``baseline()``).
    """
    now = time.time() if now is None else now
    result = result or ReadResult()
    state = dict(state or {"off": 0, "hlen": 0, "head": _crc(b""), "tail": _crc(b"")})
    drains = []
    old_drains = state.pop("drain", [])
    for drain in old_drains:
        drain = _drain(path, drain, budget, result, on_line, now)
        if drain:
            drains.append(drain)
    pos = {k: state.get(k) for k in ("off", "hlen", "head", "tail", "ino")}
    live = os.path.exists(path)
    if live and _matches(path, pos):
        copy = _copied_empty(path, state, old_drains) if pos["off"] == 0 else None
        queue = [(copy, None), (path, None)] if copy else [(path, pos)]
    else:
        copies = archives(path)
        start = None
        for index in range(len(copies) - 1, -1, -1):
            if _matches(copies[index], pos):
                start = index
                break
        if start is None:
            if pos["off"]:
                result.gaps.append(
                    f"{path} was truncated or replaced and no rotated copy holds the "
                    f"{pos['off']} bytes read before: lines written after the last check "
                    "and before that may be lost")
            queue = []
        else:
            queue = [(copies[start], pos)] + [(p, None) for p in copies[start + 1:]]
        if live:
            queue.append((path, None))
        elif not queue:
            raise FileNotFoundError(path)
    # Only the newest copy may still be written to; with no live file the
    # position itself stays in that copy.
    newest_copy = queue[-2][0] if live and len(queue) > 1 else None
    for index, (where, at) in enumerate(queue):
        at = at or {"off": 0, "hlen": 0, "head": _crc(b""), "tail": _crc(b"")}
        pos, done = _read(where, at, budget, result, on_line)
        if not done:
            result.complete = False
            result.unread += sum(_size(p) for p, _ in queue[index + 1:])
            break
        if where == newest_copy and _plain(where) and _mtime(where) > now - GRACE:
            drains.append(dict(pos, until=now + GRACE))
    # "saved": when this position was last confirmed; kept while nothing moves
    # (the plugin then need not rewrite its state).
    same = all(pos.get(k) == state.get(k) for k in ("off", "hlen", "head", "tail", "ino"))
    pos = dict(pos, saved=state["saved"] if same and state.get("saved") else now)
    if drains:
        pos["drain"] = drains
    return pos, result


def _copied_empty(path: str, state: dict, drains: list) -> str | None:
    """The copytruncate copy of a file that was empty at the last check, if any.

    An empty position has no content to recognise; the inode stays with
    copytruncate. The newest rotated copy changed since the last check, and
    not one still being drained, holds what was written meanwhile.
    """
    saved = state.get("saved")
    copies = archives(path)
    if saved is None or not copies:
        return None
    newest = copies[-1]
    try:
        st = os.stat(newest)
    except OSError:
        return None
    if st.st_ctime <= saved or st.st_size == 0:
        return None
    for drain in drains:
        if _matches(newest, {k: drain.get(k) for k in ("off", "hlen", "head", "tail", "ino")}):
            return None
    return newest


def _plain(path: str) -> bool:
    return not path.endswith((".gz", ".bz2", ".xz"))


def _mtime(path: str) -> float:
    try:
        return os.stat(path).st_mtime
    except OSError:
        return 0.0


def _size(path: str) -> int:
    try:
        return os.stat(path).st_size
    except OSError:
        return 0


def _drain(path: str, drain: dict, budget: Budget, result: ReadResult, on_line,
           now: float) -> dict | None:
    """Read lines added to a recently rotated copy; the drain entry to keep, or None."""
    pos = {k: drain.get(k) for k in ("off", "hlen", "head", "tail", "ino")}
    for copy in reversed(archives(path)):
        if not _plain(copy) or not _matches(copy, pos):
            continue
        if _size(copy) > pos["off"]:
            pos, _ = _read(copy, pos, budget, result, on_line)
        if now < drain["until"]:
            return dict(pos, until=drain["until"])
        return None
    return None
