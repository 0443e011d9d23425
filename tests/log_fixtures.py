"""Syslog files written and rotated as rsyslog and logrotate do, and a scripted /dev/kmsg."""

from __future__ import annotations

import gzip
import os
import shutil
import time
from pathlib import Path

from conntrack_checks.logs import kmsg

NOW_FMT = "%b %d %H:%M:%S"


class Log:
    """A syslog file and its rotations in a temporary directory."""

    def __init__(self, tmp_path: Path):
        self.dir = tmp_path
        self.path = tmp_path / "kern.log"
        self.path.write_bytes(b"")
        self.serial = 0
        self.noise(3)

    def line(self, text: str, when: float | None = None) -> bytes:
        stamp = time.strftime(NOW_FMT, time.localtime(when or time.time()))
        return f"{stamp} fw kernel: [{self.serial}.0] {text}\n".encode()

    def ct(self, n: int = 1, to: Path | None = None, netns: int | None = None,
           when: float | None = None) -> None:
        ns = f" in netns {netns}" if netns else ""
        data = b""
        for _ in range(n):
            self.serial += 1
            data += self.line(f"nf_conntrack: nf_conntrack: table full{ns}, dropping packet",
                              when)
        self.append(data, to)

    def text(self, text: str, to: Path | None = None) -> None:
        self.append(self.line(text), to)

    def noise(self, n: int, to: Path | None = None) -> None:
        data = b""
        for _ in range(n):
            self.serial += 1
            data += self.line(f"eth0: link up, serial {self.serial} " + "x" * 40)
        self.append(data, to)

    def append(self, data: bytes, to: Path | None = None) -> None:
        with open(to or self.path, "ab") as handle:
            handle.write(data)

    def rotate(self, compress_now: bool = False, create: bool = True) -> None:
        """logrotate rename+create: .1 -> .2.gz (delaycompress), live -> .1."""
        gens = sorted((p for p in self.dir.glob("kern.log.*")
                       if p.name[9:].split(".")[0].isdigit()),
                      key=lambda p: -int(p.name[9:].split(".")[0]))
        for p in gens:
            n = int(p.name[9:].split(".")[0])
            target = self.dir / f"kern.log.{n + 1}.gz"
            if p.suffix == ".gz":
                p.rename(target)
            else:
                gzip_file(p, target)
        os.rename(self.path, self.dir / "kern.log.1")
        if compress_now:
            gzip_file(self.dir / "kern.log.1", self.dir / "kern.log.1.gz")
        if create:
            self.path.write_bytes(b"")

    def copytruncate(self, compress_now: bool = False) -> None:
        for p in sorted(self.dir.glob("kern.log.*"), reverse=True):
            n = int(p.name.split(".")[2])
            p.rename(self.dir / f"kern.log.{n + 1}{'.gz' if p.suffix == '.gz' else ''}")
        target = self.dir / "kern.log.1"
        shutil.copyfile(self.path, target)
        with open(self.path, "r+b") as handle:
            handle.truncate(0)
        if compress_now:
            gzip_file(target, self.dir / "kern.log.1.gz")


def gzip_file(src: Path, dst: Path) -> None:
    with open(src, "rb") as fin, gzip.open(dst, "wb") as fout:
        shutil.copyfileobj(fin, fout)
    os.utime(dst, (src.stat().st_atime, src.stat().st_mtime))
    src.unlink()


def scripted_kmsg(monkeypatch, records):
    """/dev/kmsg (fd -1) returns ``records`` one per read; every other fd is real."""
    queue = list(records)
    real_read, real_close = os.read, os.close

    def fake_read(fd, size):
        if fd != -1:
            return real_read(fd, size)
        item = queue.pop(0) if queue else BlockingIOError()
        if isinstance(item, Exception):
            raise item
        return item

    monkeypatch.setattr(kmsg, "open_kmsg", lambda path: -1)
    monkeypatch.setattr(kmsg.os, "read", fake_read)
    monkeypatch.setattr(kmsg.os, "close", lambda fd: None if fd == -1 else real_close(fd))
