"""Reading the kernel's log from /dev/kmsg, record by record, by sequence number.

Each read(2) returns one record ``prio,seq,usec,flags[,...];text\\n`` plus
continuation lines (`` KEY=value``), which are dropped. Readers are
independent (unlike /proc/kmsg, which consumes what it returns): the file is
opened non-blocking, read from the oldest record and left at EAGAIN. The
sequence number is the cursor; a jump past the last seen one means records
were overwritten in the ring before anyone read them (EPIPE while reading
says the same), and they are counted as lost.

Only the kernel's own records are passed on. ``prio`` is facility << 3 |
level, and the kernel's facility is 0; whatever userspace writes to
/dev/kmsg gets another one (LOG_USER when it names none or names 0:
``echo '<4>nf_conntrack: table full' > /dev/kmsg`` arrives as prio 12), so
no process can pose as the kernel here.
"""

from __future__ import annotations

import errno
import os
import time

from ..errors import ProbeError
from .result import ReadResult

KMSG = "/dev/kmsg"
RECORD = 16384  # above the kernel's record limit (8 KiB), else EINVAL
KERNEL = 0  # the syslog facility of the kernel's own records (LOG_KERN)


def boot_time() -> float:
    """Epoch time of the kernel's timestamp 0 (the log's clock stops in suspend)."""
    return time.time() - time.clock_gettime(time.CLOCK_MONOTONIC)


def open_kmsg(path: str = KMSG) -> int:
    try:
        return os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except FileNotFoundError:
        raise ProbeError(f"{path} does not exist (a container without the kernel log?): "
                         "use --source file or journal") from None
    except PermissionError:
        raise ProbeError(f"cannot read {path}: permission denied; kernel.dmesg_restrict=1 "
                         "allows it only with CAP_SYSLOG: run the check as root (see "
                         "contrib/sudoers/conntrack-checks) or use --source file/journal") from None
    except OSError as exc:
        raise ProbeError(f"cannot open {path}: {exc.strerror}") from None


def read(path: str, after: int | None, on_record, deadline: float | None = None,
         result: ReadResult | None = None) -> ReadResult:
    """Pass the kernel's records after sequence number ``after`` to ``on_record(seq, usec, text)``.

    ``after`` None: every record in the ring, nothing counted as lost;
    -1: a new boot, records from 0 on (those overwritten count as lost).
    The result's cursor is the last sequence number seen (``after`` if none);
    counts are added to ``result`` when one is given.
    """
    seen = ReadResult() if result is None else result
    last = after
    fd = open_kmsg(path)
    try:
        while True:
            try:
                record = os.read(fd, RECORD)
            except BlockingIOError:
                break
            except BrokenPipeError:
                continue  # overwritten while reading: the seq jump counts it
            except OSError as exc:
                if exc.errno == errno.EINVAL:
                    raise ProbeError(f"{path}: a record larger than {RECORD} bytes") from None
                if exc.errno == errno.EPERM:
                    raise ProbeError(f"cannot read {path}: operation not permitted; "
                                     "kernel.dmesg_restrict=1 needs CAP_SYSLOG (run as root, "
                                     "see contrib/sudoers/conntrack-checks)") from None
                raise ProbeError(f"cannot read {path}: {exc.strerror}") from None
            if not record:
                break
            header, _, text = record.partition(b";")
            fields = header.split(b",", 3)
            try:
                prio, seq, usec = int(fields[0]), int(fields[1]), int(fields[2])
            except (IndexError, ValueError):
                continue
            if last is not None and seq <= last:
                continue
            if last is not None and seq > last + 1:
                seen.lost += seq - last - 1
            last = seq
            seen.records += 1
            seen.bytes += len(record)  # new records only, like lines: what this run took in
            if prio >> 3 == KERNEL:
                on_record(seq, usec, text.split(b"\n", 1)[0])
            if deadline is not None and time.monotonic() > deadline:
                seen.complete = False
                break
    finally:
        os.close(fd)
    seen.cursor = last
    return seen
