"""What one run read from the kernel's log, whichever source it came from."""

from __future__ import annotations


class ReadResult:
    """Counts and remarks of one pass over a syslog file, /dev/kmsg or the journal.

    The readers (logfile, kmsg, journal) fill in what they can see; the
    source adapters (sources.py) add the notes and the backlog's text.
    """

    __slots__ = ("backlog", "baseline", "bytes", "complete", "cursor", "files_read", "gaps",
                 "lost", "notes", "records", "unread")

    def __init__(self):
        self.records = 0  # /dev/kmsg records, journal entries taken in (files: not counted)
        self.bytes = 0  # bytes taken in
        self.lost = 0  # messages the source says it lost (ring overwritten, journald missed)
        self.gaps: list[str] = []  # why messages may be missing, one text each
        self.complete = True  # False: stopped by the budget or the deadline
        self.unread = 0  # bytes of files left for the next run (0 when unknown)
        self.cursor = None  # where the next run continues: kmsg sequence, journal cursor
        self.backlog: str | None = None  # the status text when not complete
        self.notes: list[str] = []
        self.files_read: list[str] = []  # what was read from where, for -v
        self.baseline = False  # a first run that only found the end
