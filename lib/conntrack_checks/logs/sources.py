"""Where the kernel's messages are read: one source per run, and how each is read.

A source adapter reads what its source added since the position it is
given, feeds the messages to an ``Events`` store (events.py) and returns
the position to store for the next run; what it read goes into a
``ReadResult``. The adapters take their settings as a ``LogOptions``, so
the plugin, conntrack-report and any other caller read the log the same way.
"""

from __future__ import annotations

import os

from ..errors import ProbeError
from .result import ReadResult

AUTO_FILES = ("/var/log/kern.log", "/var/log/messages", "/var/log/syslog")
JOURNAL_DIRS = ("/var/log/journal", "/run/log/journal")
KMSG = "/dev/kmsg"


class LogOptions:
    """What to read and how much: the values a caller gives the source adapters."""

    __slots__ = ("files", "journal_dir", "kmsg", "lookback", "max_bytes", "proc_root", "source",
                 "timeout")

    def __init__(self, source: str = "auto", files=None, max_bytes: int = 512 * 1024 * 1024,
                 timeout: float = 10, lookback: float | None = None, kmsg: str = KMSG,
                 journal_dir: str | None = None, proc_root: str = "/proc"):
        self.source = source  # auto, file, journal or kmsg
        self.files = files  # syslog files to read (None: the first of AUTO_FILES)
        self.max_bytes = max_bytes  # a run reads at most this much of the files
        self.timeout = timeout  # the caller's time limit, seconds (for the backlog's text)
        self.lookback = lookback  # a first run reads this many seconds back (None: baseline)
        self.kmsg = kmsg
        self.journal_dir = journal_dir  # journalctl -D (None: the system journal)
        self.proc_root = proc_root  # for the boot id


def journal_present() -> bool:
    for base in JOURNAL_DIRS:
        try:
            for machine in os.listdir(base):
                if any(n.endswith(".journal") for n in os.listdir(os.path.join(base, machine))):
                    return True
        except OSError:
            continue
    return False


def choose_source(opts: LogOptions) -> tuple[str, list[str]]:
    """(source, files): exactly one view of the kernel's messages.

    The plugin's order, file then journal then /dev/kmsg, prefers what keeps
    every boot's messages and a position that survives a reboot: a syslog
    file (readable with group adm, followed across rotations), then the
    journal; /dev/kmsg holds this boot only, in a ring that may be
    overwritten between checks, and needs CAP_SYSLOG where dmesg_restrict=1.
    conntrack-report reads the other way round (events.report_section): it
    keeps no position and looks at the recent past once, for which
    /dev/kmsg is the most precise (kernel timestamps, kernel records only).
    """
    if opts.source in ("auto", "file"):
        if opts.files:
            return "file", [os.path.abspath(p) for p in opts.files]
        for path in AUTO_FILES:
            if os.path.exists(path):
                return "file", [path]
        if opts.source == "file":
            raise ProbeError("none of " + ", ".join(AUTO_FILES) + " exists: name the "
                             "kernel's log file with --logfile")
    if opts.source == "journal" or (opts.source == "auto" and journal_present()):
        return "journal", []
    return "kmsg", []


def unreadable(path: str, exc: OSError) -> ProbeError:
    if isinstance(exc, PermissionError):
        return ProbeError(f"cannot read {path}: permission denied; add the monitoring user "
                          "to the group that may read it (usermod -aG adm nagios)")
    if isinstance(exc, FileNotFoundError):
        return ProbeError(f"{path} does not exist: check --logfile")
    return ProbeError(f"cannot read {path}: {exc.strerror}")


def read_source(source: str, files: list[str], data: dict, events, result: ReadResult,
                opts: LogOptions, first: bool, deadline: float) -> None:
    """Read ``source`` from the position kept in ``data`` and keep the new one there."""
    if source == "file":
        from .logfile import Budget
        data["files"] = read_files(files, data.get("files", {}), events, result, opts, first,
                                   Budget(opts.max_bytes, deadline))
    elif source == "kmsg":
        data["kmsg"] = read_kmsg(data.get("kmsg", {}), events, result, opts, first, deadline)
    else:
        data["journal"] = read_journal(data.get("journal", {}), events, result, opts, first,
                                       deadline)


def read_files(files, pos: dict, events, result: ReadResult, opts: LogOptions, first: bool,
               budget) -> dict:
    """Each syslog file from its position (a first run without lookback: its end)."""
    import gc

    from . import logfile
    new = {}
    # The scan allocates a count row a second in a long incident and frees nearly
    # all it allocates right away: the cyclic collector's passes over the rows
    # measured 5-10 % of a scan (docs/benchmarks.rst) and find nothing to collect.
    collecting = gc.isenabled()
    gc.disable()
    try:
        for path in files:
            try:
                if path not in pos and not (first and opts.lookback):
                    new[path] = logfile.baseline(path)
                    result.baseline = True
                    result.notes.append(f"baseline at byte {new[path]['off']} of {path}")
                    continue
                new[path], _ = logfile.follow(path, pos.get(path), budget, events.add_block,
                                              events.now, result)
            except OSError as exc:
                raise unreadable(path, exc) from None
        events.flush()
    finally:
        if collecting:
            gc.enable()
    if result.unread:
        result.backlog = (f"backlog: {result.unread} bytes not read yet (budget "
                          f"{opts.max_bytes} bytes / {opts.timeout}s per run); the next run "
                          "continues where this one stopped")
    return new


def read_kmsg(old: dict, events, result: ReadResult, opts: LogOptions, first: bool,
              deadline: float) -> dict:
    """/dev/kmsg records after the stored sequence number of this boot."""
    from .. import state
    from . import kmsg
    boot = state.boot_id(opts.proc_root)
    origin = kmsg.boot_time()
    after = old.get("seq")
    if first and not opts.lookback:
        after = None
        result.baseline = True
        on_record = _ignore
        seen = ReadResult()  # a baseline takes nothing in, as with files and the journal
    else:
        if not first and old.get("boot_id") != boot:
            result.notes.append(
                "rebooted since the last check: kernel messages of the previous boot after "
                f"record {after} were not examined (they are gone from /dev/kmsg)")
            after = -1
        elif first:
            after = None

        def on_record(seq, usec, text):
            events.add_message(origin + usec / 1e6, text)
        seen = result
    kmsg.read(opts.kmsg, after, on_record, deadline, seen)
    result.files_read.append(f"{opts.kmsg} records after {after} to {seen.cursor}")
    if seen.lost:
        result.gaps.append(f"{seen.lost} kernel messages were overwritten in the ring buffer "
                           "before they were read (check more often or enlarge log_buf_len)")
    if not seen.complete:
        result.complete = False
        result.backlog = "backlog: /dev/kmsg not read to the end; the next run continues"
    last = seen.cursor if seen.cursor is not None else after
    result.cursor = last
    if result.baseline:
        result.notes.append(f"baseline at /dev/kmsg record {last}")
    return {"boot_id": boot, "seq": last}


def _ignore(*_):
    pass


def read_journal(old: dict, events, result: ReadResult, opts: LogOptions, first: bool,
                 deadline: float) -> dict:
    """Kernel entries of the journal after the stored cursor."""
    from . import journal
    if first and not opts.lookback:
        seen = journal.read(None, _ignore, tail=True, directory=opts.journal_dir)
        result.baseline = True
        result.cursor = seen.cursor
        result.notes.append("baseline at the newest kernel entry of the journal")
        return {"cursor": seen.cursor, "since": events.now}
    since = events.now - opts.lookback if first else old.get("since")
    journal.read(old.get("cursor"), events.add_message, since=since, deadline=deadline,
                 directory=opts.journal_dir, result=result)
    result.files_read.append(f"journal: {result.records} kernel entries")
    if not result.complete:
        result.backlog = "backlog: the journal was not read to the end; the next run continues"
    return {"cursor": result.cursor, "since": since if result.cursor is None else None}
