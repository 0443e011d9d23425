"""check_conntrack_log end to end: the real kernel, rsyslog, logrotate, journald, /dev/kmsg.

A Lab namespace is filled past a lowered max so the kernel logs "table full
in netns N, dropping packet". A real rsyslogd (imkmsg, its own config, in
the foreground) writes the file, real logrotate rotates it between runs
(delaycompress, then copytruncate), a real systemd-journald (started here;
no systemd as PID 1) reads /dev/kmsg into /run/log/journal. Each source must
report exactly the lines `dmesg` shows for the lab's namespaces, once.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conntrack_checks.kernel.sysctl import Roots
from conntrack_checks.logs.events import report_section
from lab import Lab, need_root_tools
from unprivileged import as_nobody

JOURNALD = "/lib/systemd/systemd-journald"
JOURNAL_RUN = Path("/run/systemd/journal")
LAB_MAX = 40


def wait_for(predicate, what: str, timeout: float = 30.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.2)
    pytest.fail(f"timed out waiting for {what}")


def ring_records(after: int = -1) -> list[tuple[int, int, str]]:
    """(sequence number, facility, text) of each /dev/kmsg record after ``after``.

    Counting lines in ``dmesg`` output would undercount once the ring is full: every new
    line then pushes an old one out, and namespace inodes are reused, so old lines of the
    same inode leave as fast as new ones come. Sequence numbers never repeat.
    """
    records = []
    fd = os.open("/dev/kmsg", os.O_RDONLY | os.O_NONBLOCK)
    try:
        while True:
            try:
                data = os.read(fd, 8192)
            except BlockingIOError:
                break
            except BrokenPipeError:  # overwritten while we read: the next one follows
                continue
            head, _, text = data.decode(errors="replace").partition(";")
            prio, seq = head.split(",")[:2]
            if int(seq) > after:
                records.append((int(seq), int(prio) >> 3, text.split("\n", 1)[0]))
    finally:
        os.close(fd)
    return records


def ring_mark() -> int:
    """The sequence number of the newest record in the ring."""
    return max((seq for seq, _, _ in ring_records()), default=-1)


def dmesg_lines(inodes, after: int) -> int:
    """Table-full lines of these namespaces in the ring after ``after``, any facility."""
    return sum(1 for _, _, text in ring_records(after)
               if any(f"table full in netns {i}, dropping packet" in text for i in inodes))


def journal_lines(inodes) -> int:
    out = subprocess.run([shutil.which("journalctl"), "_TRANSPORT=kernel", "--no-pager", "-q",
                          "-o", "cat"], capture_output=True, text=True).stdout
    return sum(1 for line in out.splitlines()
               if any(f"table full in netns {i}, dropping packet" in line for i in inodes))


def file_lines(directory: Path, inodes) -> int:
    import gzip
    total = 0
    for path in directory.glob("kern.log*"):
        opener = gzip.open if path.suffix == ".gz" else open
        with opener(path, "rt") as handle:
            total += sum(1 for line in handle
                         if any(f"table full in netns {i}, dropping packet" in line
                                for i in inodes))
    return total


class Daemons:
    """rsyslogd and systemd-journald for one test; stop() ends only what it started."""

    def __init__(self, tmp: Path):
        self.tmp = tmp
        self.procs: list[subprocess.Popen] = []
        self.journal_created = False

    def rsyslog(self) -> subprocess.Popen:
        work = self.tmp / "rsyslog"
        work.mkdir()
        conf = self.tmp / "rsyslog.conf"
        conf.write_text('module(load="imkmsg")\n'
                        f'global(workDirectory="{work}")\n'
                        f'kern.* action(type="omfile" file="{self.tmp / "logs" / "kern.log"}")\n')
        proc = subprocess.Popen([shutil.which("rsyslogd"), "-n", "-f", str(conf),
                                 "-i", str(work / "rsyslogd.pid")],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.procs.append(proc)
        return proc

    def journald(self) -> None:
        running = subprocess.run(["pgrep", "-x", "systemd-journal"], capture_output=True)
        if running.returncode == 0:
            return  # the host's own journald already reads /dev/kmsg
        self.journal_created = not JOURNAL_RUN.exists() and not Path("/run/log").exists()
        self.procs.append(subprocess.Popen([JOURNALD], stdout=subprocess.DEVNULL,
                                           stderr=subprocess.DEVNULL))
        wait_for(lambda: (JOURNAL_RUN / "kernel-seqnum").exists(), "journald to read /dev/kmsg")

    def stop(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(10)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
        if self.journal_created:
            shutil.rmtree("/run/log", ignore_errors=True)
            shutil.rmtree(JOURNAL_RUN, ignore_errors=True)


def logrotate(tmp: Path, logs: Path, rsyslog_pid: int, mode: str) -> None:
    conf = tmp / f"logrotate-{mode}.conf"
    if mode == "delaycompress":
        body = (f"    create 0640 root root\n    postrotate\n        /bin/kill -HUP {rsyslog_pid}\n"
                "    endscript\n")
    else:
        body = "    copytruncate\n"
    conf.write_text(f"{logs / 'kern.log'} {{\n    rotate 5\n    compress\n    delaycompress\n"
                    f"    missingok\n{body}}}\n")
    conf.chmod(0o644)
    subprocess.run([shutil.which("logrotate"), "-f", "-s", str(tmp / "logrotate.state"),
                    str(conf)], check=True, capture_output=True, timeout=60)


def counts(output: str) -> tuple[int, int]:
    match = re.search(r"- (\d+) table-full messages? in the last", output)
    assert match, output
    supp = re.search(r"suppressed=(\d+)", output)
    return int(match.group(1)), int(supp.group(1))


@contextlib.contextmanager
def lab_with_daemons(tmp_path: Path, *tools: str):
    """A Lab (max LAB_MAX) with a real rsyslogd writing ``tmp_path``/logs/kern.log (kern.*)
    and a journald reading /dev/kmsg: yields (lab, the logs folder, rsyslogd's process);
    the daemons are stopped after, whatever happened."""
    need_root_tools("ip", "nft", "conntrack", "dmesg", "rsyslogd", "journalctl", "pgrep",
                    *tools)
    if not os.access(JOURNALD, os.X_OK):
        need_root_tools(JOURNALD)
    logs = tmp_path / "logs"
    logs.mkdir()
    daemons = Daemons(tmp_path)
    with Lab(max_entries=LAB_MAX) as lab:
        try:
            rsyslog = daemons.rsyslog()
            daemons.journald()
            wait_for(lambda: (logs / "kern.log").exists() and (logs / "kern.log").stat().st_size,
                     "rsyslog to write kern.log")
            yield lab, logs, rsyslog
        finally:
            daemons.stop()


def test_every_source_reports_the_same_bursts_exactly_once(tmp_path, run_plugin):
    with lab_with_daemons(tmp_path, "logrotate") as (lab, logs, rsyslog):
        sources = {
            "file": ["--logfile", str(logs / "kern.log")],
            "kmsg": ["--source", "kmsg"],
            "journal": ["--source", "journal"],
        }

        def run_all():
            return run_every_source(run_plugin, sources, tmp_path)

        for code, out in run_all().values():
            assert code == 0 and "first run: baseline" in out, out

        # Namespace inodes are reused: older lines with the same number may
        # be in the ring (and so in the file and the journal); count deltas.
        inodes: list[int] = []
        truth = 0
        for phase, mode in ((1, "delaycompress"), (2, "copytruncate")):
            ns = lab.namespace(f"log{phase}")
            inodes.append(os.stat(f"/run/netns/{ns}").st_ino)
            before = (ring_mark(), file_lines(logs, inodes), journal_lines(inodes))
            time.sleep(6)  # past the 5 s rate-limit interval: the next burst is printed
            lab.fill(ns, LAB_MAX + 300)
            wait_for(lambda b=before: dmesg_lines(inodes, b[0]) > 0, "the kernel's lines")
            time.sleep(1)
            burst = dmesg_lines(inodes, before[0])
            assert burst >= 10
            truth += burst
            wait_for(lambda b=before, n=burst: file_lines(logs, inodes) - b[1] == n,
                     "rsyslog to write them")
            wait_for(lambda b=before, n=burst: journal_lines(inodes) - b[2] == n,
                     "journald to store them")
            logrotate(tmp_path, logs, rsyslog.pid, mode)
            if mode == "copytruncate":
                assert (logs / "kern.log.2.gz").exists() and (logs / "kern.log.1").exists()
            results = run_all()
            seen = {name: counts(out) for name, (code, out) in results.items()}
            assert {name: c for name, (c, _) in seen.items()} == \
                dict.fromkeys(sources, truth), results
            assert len({s for _, s in seen.values()}) == 1, results
            for code, out in results.values():
                assert code == 2, out
                assert all(f"[{i}]" in out for i in inodes), out
            again = run_all()
            assert {n: counts(o)[0] for n, (_, o) in again.items()} == \
                dict.fromkeys(sources, truth)
        assert seen["file"][1] > 0, "the second burst printed no 'callbacks suppressed'"
        report = report_section(Roots(), 3600, source="kmsg")
        assert report["source"] == "kmsg" and report["table_full"] >= truth
        assert json.loads(json.dumps(report)) == report
        not_in_group(tmp_path, run_plugin)


def run_every_source(run_plugin, sources: dict, tmp_path: Path) -> dict:
    """check_conntrack_log once per source (name -> its options), each with its own state:
    name -> (exit code, output)."""
    results = {}
    for name, argv in sources.items():
        code, out, err = run_plugin("check_conntrack_log", *argv, "--window", "1h",
                                    "--state-dir", str(tmp_path / f"state-{name}"), "-t", "30")
        assert err == "", err
        results[name] = (code, out)
    return results


def settled(path: Path) -> bool:
    """Has ``path`` stopped growing for half a second?"""
    size = path.stat().st_size
    time.sleep(0.5)
    return path.stat().st_size == size


def kernel_lines(inodes, after: int) -> int:
    """Table-full lines of these namespaces that the kernel itself logged (facility kern)."""
    return sum(1 for _, facility, text in ring_records(after)
               if facility == 0
               and any(f"table full in netns {i}, dropping packet" in text for i in inodes))


def test_userspace_posing_as_the_kernel_is_not_counted(tmp_path, run_plugin):
    """Lines written to /dev/kmsg by a process never count, in /dev/kmsg or the journal,
    nor in a kern.log that rsyslog writes with the kern.* selector; the kernel's own burst
    right after them does, with its namespace."""
    with lab_with_daemons(tmp_path) as (lab, logs, _rsyslog):
        wait_for(lambda: settled(logs / "kern.log"), "rsyslog to copy the ring")
        ns = lab.namespace("posing")
        inodes = [os.stat(f"/run/netns/{ns}").st_ino]
        sources = {"kmsg": ["--source", "kmsg"], "journal": ["--source", "journal"],
                   "file": ["--logfile", str(logs / "kern.log")]}

        def run_all():
            return run_every_source(run_plugin, sources, tmp_path)

        for code, out in run_all().values():
            assert code == 0 and "first run: baseline" in out, out
        # Namespace inodes are reused: older lines with the same number may be in the
        # ring (and so in the file and the journal); count deltas.
        mark = ring_mark()
        before = (journal_lines(inodes), file_lines(logs, inodes))
        posed = f"nf_conntrack: nf_conntrack: table full in netns {inodes[0]}, dropping packet"
        for text in (f"<4>{posed}", posed, f"<12>{posed}",
                     "<4>net_ratelimit: 987654 callbacks suppressed"):
            with open("/dev/kmsg", "w") as kmsg:
                kmsg.write(text + "\n")
        wait_for(lambda: dmesg_lines(inodes, mark) == 3, "the posed lines in the ring")
        assert kernel_lines(inodes, mark) == 0  # facility user, as the kernel gave them
        time.sleep(6)  # past the 5 s rate-limit interval: the next burst is printed
        lab.fill(ns, LAB_MAX + 300)
        wait_for(lambda: kernel_lines(inodes, mark) > 0, "the kernel's lines")
        time.sleep(1)
        burst = kernel_lines(inodes, mark)
        assert burst >= 10
        wait_for(lambda: journal_lines(inodes) - before[0] == 3 + burst,
                 "journald to store them all")
        wait_for(lambda: file_lines(logs, inodes) - before[1] >= burst,
                 "rsyslog to write the burst")
        time.sleep(1)
        # kern.* let none of the posed lines in
        assert file_lines(logs, inodes) - before[1] == burst
        for name, (code, out) in run_all().items():
            full, suppressed = counts(out)
            assert (name, full) == (name, burst), out
            assert suppressed < 987654 and f"[{inodes[0]}] ({burst})" in out, out
            assert code == 2, out


def plugin(name: str) -> str:
    return str(Path(sys.executable).parent / name)


def not_in_group(tmp_path: Path, run_plugin) -> None:
    """The journal and /dev/kmsg as a user outside systemd-journal/adm: UNKNOWN + fix."""
    import tempfile
    base = Path(tempfile.mkdtemp(prefix="ctlog-nobody-"))
    try:
        base.chmod(0o700)
        shutil.chown(base, "nobody")
        for source, words in (("journal", "systemd-journal"), ("kmsg", "CAP_SYSLOG")):
            code, out, err = as_nobody("check_conntrack_log", "--source", source,
                                       "--state-dir", str(base / source), timeout=60)
            assert code == 3 and words in out and out.count("\n") == 1, (out, err)
    finally:
        shutil.rmtree(base)
