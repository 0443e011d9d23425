"""Kernel messages from the systemd journal, through journalctl, by cursor.

``journalctl -o json _TRANSPORT=kernel SYSLOG_FACILITY=0 + _TRANSPORT=driver
--after-cursor=C``: the kernel's own records of every boot (``-k`` would
mean this boot only, and lines logged just before a crash would never be
seen), plus journald's own driver messages for "Missed N kernel messages".
Text that userspace writes to /dev/kmsg reaches the journal with
_TRANSPORT=kernel too, but with the facility the kernel gave it (LOG_USER
when it named none), never 0: it is not passed on. journalctl rather than
python-systemd: it is on every systemd host, needs no compiled module in the
plugin's environment, and its cost is only paid with ``--source journal``.
The cursor is stored only after its entry was counted, so a run killed
midway reads the entries again instead of losing them.

systemd before v255 (#30288) skips the first entry after a cursor whose
entry was vacuumed; nothing outside journalctl can see that happen.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import time

from ..errors import ProbeError
from .result import ReadResult

JOURNALCTL = ("/usr/bin/journalctl", "/bin/journalctl")
KERNEL = 0  # the syslog facility of the kernel's own records (LOG_KERN)
_MISSED = re.compile(r"Missed (\d+) kernel messages|/dev/kmsg buffer overrun")


def journalctl() -> str:
    for path in JOURNALCTL:
        if os.access(path, os.X_OK):
            return path
    raise ProbeError("journalctl not found (no systemd journal here): use --source file or kmsg")


def read(cursor: str | None, on_entry, since: float | None = None, tail: bool = False,
         deadline: float | None = None, directory: str | None = None,
         result: ReadResult | None = None) -> ReadResult:
    """Pass the kernel's entries after ``cursor`` to ``on_entry(epoch, text_bytes)``.

    ``tail``: only find the cursor of the newest entry (a first run's baseline).
    ``since``: entries from that epoch time on (without a cursor).
    Counts are added to ``result`` when one is given.
    """
    cmd = [journalctl(), "-o", "json", "--no-pager", "-q",
           "--output-fields=MESSAGE,_TRANSPORT,SYSLOG_FACILITY"]
    if directory:
        cmd += ["-D", directory]
    if cursor:
        cmd.append(f"--after-cursor={cursor}")
    elif tail:
        cmd += ["-n", "1"]
    elif since is not None:
        cmd.append(f"--since=@{int(since)}")
    cmd += ["_TRANSPORT=kernel", f"SYSLOG_FACILITY={KERNEL}", "+", "_TRANSPORT=driver"]
    seen = ReadResult() if result is None else result
    seen.cursor = cursor
    try:
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                stdin=subprocess.DEVNULL)
    except OSError as exc:
        raise ProbeError(f"cannot run {cmd[0]}: {exc.strerror}") from None
    try:
        for raw in proc.stdout:
            seen.bytes += len(raw)
            try:
                entry = json.loads(raw)
            except ValueError:
                continue
            message = entry.get("MESSAGE")
            if isinstance(message, list):  # not UTF-8: journalctl gives the bytes
                message = bytes(message)
            elif isinstance(message, str):
                message = message.encode("utf-8", "replace")
            else:
                message = b""
            if not tail:
                if entry.get("_TRANSPORT") == "driver":
                    _driver(message, seen)
                elif entry.get("SYSLOG_FACILITY") == str(KERNEL):
                    when = int(entry.get("__REALTIME_TIMESTAMP", 0)) / 1e6 or time.time()
                    seen.records += 1
                    on_entry(when, message)
            seen.cursor = entry.get("__CURSOR", seen.cursor)
            if deadline is not None and time.monotonic() > deadline:
                seen.complete = False
                proc.kill()
                break
    except BaseException:  # the plugin's timeout: a journalctl stuck on a lock must not wait
        proc.kill()
        raise
    finally:
        _, err = proc.communicate()
    if seen.complete and proc.returncode:
        raise ProbeError(_problem(err, proc.returncode))
    if not seen.records and b"insufficient permissions" in err:
        raise ProbeError(_problem(err, proc.returncode))
    return seen


def _driver(message: bytes, seen: ReadResult) -> None:
    match = _MISSED.search(message.decode("utf-8", "replace"))
    if match:
        if match.group(1):
            seen.lost += int(match.group(1))
        seen.gaps.append("journald: " + message.decode("utf-8", "replace"))


def _problem(err: bytes, code: int) -> str:
    text = err.decode("utf-8", "replace").strip().splitlines()
    first = text[0] if text else f"exit status {code}"
    if "insufficient permissions" in first or "ermission denied" in first:
        return ("journalctl cannot open the journal (permission denied): add the monitoring "
                "user to the systemd-journal or adm group (usermod -aG systemd-journal nagios)")
    return f"journalctl failed: {first}"
