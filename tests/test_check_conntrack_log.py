"""check_conntrack_log through main(): rotations, state, windows and sources on real files."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conntrack_checks.checks import check_conntrack_log as ccl
from conntrack_checks.logs import blocks, events, logfile
from log_fixtures import Log, gzip_file, scripted_kmsg


@pytest.fixture
def log(tmp_path):
    (tmp_path / "log").mkdir()
    return Log(tmp_path / "log")


@pytest.fixture
def check(run_main, tmp_path, log):
    """Run the plugin on ``log``; returns (exit code, count in window, output)."""

    def run(*argv):
        code, out = run_main(ccl.main, "--logfile", str(log.path), "--state-dir",
                             str(tmp_path / "state"), "--window", "1h", *argv)
        match = re.search(r"- (\d+) table-full", out)
        return code, int(match.group(1)) if match else None, out

    return run


def state_of(tmp_path) -> dict:
    files = list((tmp_path / "state").glob("*.json"))
    assert len(files) == 1
    return json.loads(files[0].read_text())["data"]


def test_first_run_is_a_baseline_then_each_line_once(check, log):
    log.ct(5)
    code, count, out = check()
    assert (code, count) == (0, 0) and "first run: baseline" in out
    log.ct(2)
    log.noise(2)
    assert check()[:2] == (1, 2)
    assert check()[:2] == (1, 2)  # nothing new: same answer (a retry stays in its state)
    log.ct(1)
    assert check()[:2] == (1, 3)


def test_a_run_without_news_does_not_rewrite_the_state(check, log, tmp_path):
    check()
    log.ct(1)
    check()
    [path] = (tmp_path / "state").glob("*.json")
    inode = path.stat().st_ino
    assert check()[:2] == (1, 1)
    assert path.stat().st_ino == inode
    log.noise(1)
    check()
    assert path.stat().st_ino != inode


def test_lookback_reports_recent_history_only(check, log):
    log.ct(4, when=time.time() - 7200)
    log.ct(3, when=time.time() - 60)
    code, count, out = check("--lookback", "30m")
    assert (code, count) == (1, 3)
    assert "baseline" not in out


def test_lookback_over_several_runs_keeps_its_limit(check, log, tmp_path):
    for _ in range(20):
        log.noise(100)
        log.ct(1, when=time.time() - 7200)
    for _ in range(5):
        log.noise(100)
        log.ct(1)
    outs = [check("--lookback", "1h", "--max-bytes", "60K") for _ in range(12)]
    assert "backlog" in outs[0][2] and "backlog" not in outs[-1][2]
    assert outs[-1][1] == 5
    assert sum(row[2] for row in state_of(tmp_path)["events"]) == 5  # none older than 1h


def test_window_decides_and_a_retry_stays_critical(check, log, monkeypatch):
    check()
    log.ct(12)
    code, count, out = check()
    assert (code, count) == (2, 12)
    assert check()[:2] == (2, 12)
    later = time.time() + 3700
    monkeypatch.setattr(ccl.time, "time", lambda: later)
    code, count, out = check()
    assert (code, count) == (0, 0)
    assert "last one" in out and "ago" in out


def test_old_lines_in_a_backlog_are_reported_not_alerted(check, log):
    check()
    log.ct(3, when=time.time() - 5 * 3600)
    code, count, out = check()
    assert (code, count) == (0, 0)
    assert "last one" in out


def test_rename_create_with_lines_written_before_rotation(check, log):
    check()
    log.ct(2)
    log.rotate()
    log.ct(1)
    assert check()[:2] == (1, 3)
    assert check()[:2] == (1, 3)


def test_delayed_hup_lines_in_the_renamed_file_are_drained(check, log):
    check()
    log.ct(1)
    log.rotate()
    assert check()[:2] == (1, 1)
    log.ct(2, to=log.dir / "kern.log.1")  # rsyslog has not reopened yet
    log.ct(1)
    assert check()[:2] == (1, 4)
    assert check()[:2] == (1, 4)


def test_immediate_compression_and_inode_reuse(check, log):
    check()
    log.ct(2)
    log.rotate(compress_now=True)
    log.ct(1)
    assert check()[:2] == (1, 3)


def test_delaycompress_over_three_runs(check, log):
    check()
    log.ct(1)
    log.rotate()
    assert check()[:2] == (1, 1)
    log.ct(1)
    log.rotate()  # .1 -> .2.gz, live -> .1
    log.ct(1)
    assert check()[:2] == (1, 3)
    assert check()[:2] == (1, 3)
    assert sorted(p.name for p in log.dir.iterdir()) == ["kern.log", "kern.log.1",
                                                         "kern.log.2.gz"]


@pytest.mark.parametrize("compress", [False, True])
def test_copytruncate_of_a_file_empty_at_the_last_check(check, log, compress):
    log.path.write_bytes(b"")
    check()
    log.ct(2)
    log.copytruncate(compress_now=compress)
    log.ct(1)
    assert check()[:2] == (1, 3)
    assert check()[:2] == (1, 3)


@pytest.mark.parametrize("compress", [False, True])
def test_copytruncate_shorter_and_regrown(check, log, compress):
    log.noise(50)
    check()
    log.ct(2)
    log.copytruncate(compress_now=compress)
    log.ct(1)
    assert check()[:2] == (1, 3)
    log.ct(1)
    log.copytruncate()
    log.noise(200)  # regrown past the old offset
    log.ct(1)
    assert check()[:2] == (1, 5)


def test_several_numeric_rotations_between_runs(check, log):
    check()
    for _ in range(3):
        log.ct(1)
        log.rotate()
    log.ct(1)
    assert check()[:2] == (1, 4)
    assert {p.name for p in log.dir.iterdir()} >= {"kern.log.2.gz", "kern.log.3.gz"}


@pytest.mark.parametrize("names", [
    ["kern.log-20261121", "kern.log-20261122.gz", "kern.log-20261123"],
    ["kern.log-2026112201", "kern.log-2026112202", "kern.log-2026112203.gz"],
])
def test_several_dateext_rotations_between_runs(check, log, names):
    check()
    for name in names:
        log.ct(1)
        target = log.dir / name.replace(".gz", "")
        os.rename(log.path, target)
        if name.endswith(".gz"):
            gzip_file(target, log.dir / name)
        log.path.write_bytes(b"")
    log.ct(1)
    assert check()[:2] == (1, 4)


def test_truncation_without_copy_is_a_gap_warning(check, log):
    check()
    log.ct(1)
    with open(log.path, "r+b") as handle:
        handle.truncate(0)
    log.ct(1)
    code, count, out = check()
    assert (code, count) == (1, 1)
    assert "truncated or replaced" in out and "gaps=1" in out


def test_deleted_and_recreated_larger_is_not_a_continuation(check, log):
    log.noise(5)
    check()
    log.path.unlink()
    log.path.write_bytes(b"")
    log.ct(2)
    log.noise(20)  # now larger than the old offset
    code, count, out = check("--on-gap", "critical")
    assert (code, count) == (2, 2)
    assert "truncated or replaced" in out


def test_live_file_missing_for_a_run_then_recreated(check, log):
    check()
    log.ct(1)
    log.rotate(create=False)
    assert check()[:2] == (1, 1)
    log.ct(1, to=log.dir / "kern.log.1")
    log.path.write_bytes(b"")
    log.ct(1)
    assert check()[:2] == (1, 3)


def test_partial_line_is_consumed_once_complete(check, log):
    check()
    whole = log.line("nf_conntrack: nf_conntrack: table full, dropping packet")
    log.append(whole[:30])
    assert check()[:2] == (0, 0)
    log.append(whole[30:])
    assert check()[:2] == (1, 1)
    assert check()[:2] == (1, 1)


def test_lines_longer_than_the_chunk(check, log, monkeypatch):
    monkeypatch.setattr(logfile, "CHUNK", 64)
    check()
    log.text("x" * 300 + " nf_conntrack: table full, dropping packet")
    log.noise(3)
    log.ct(2)
    assert check()[:2] == (1, 3)


def test_a_line_longer_than_max_line_keeps_only_its_end(check, log, monkeypatch):
    monkeypatch.setattr(logfile, "CHUNK", 1024)
    monkeypatch.setattr(logfile, "MAX_LINE", 8192)
    check()
    size = log.path.stat().st_size
    log.text("y" * 50000 + " nf_conntrack: table full, dropping packet")  # its end is kept
    log.noise(2)
    log.ct(3)
    code, count, out = check("-v")
    assert (code, count) == (1, 4)
    assert f" bytes={log.path.stat().st_size - size}B;" in out
    # the position after it is right: the next runs continue, no gap, nothing twice
    log.append(b"z" * 30000)  # a long line still being written at the next check
    code, count, out = check()
    assert (code, count) == (1, 4) and "gaps=0;" in out, out
    size = log.path.stat().st_size
    log.append(b" nf_conntrack: table full, dropping packet\n")
    log.ct(1)
    code, count, out = check()
    assert (code, count) == (1, 6) and "gaps=0;" in out, out
    # read again: only the end the long line kept (4 KiB), then what came after
    assert f" bytes={log.path.stat().st_size - size + 4096}B;" in out, out


def test_symlinked_log(check, log, tmp_path, run_main):
    link = tmp_path / "link.log"
    link.symlink_to(log.path)
    argv = ["--logfile", str(link), "--state-dir", str(tmp_path / "st2")]
    run_main(ccl.main, *argv)
    log.ct(2)
    code, out = run_main(ccl.main, *argv)
    assert code == 1 and " 2 table-full" in out


def test_backlog_beyond_the_budget_is_read_over_several_runs(check, log):
    check()
    for _ in range(30):
        log.noise(100)
        log.ct(1)
    code, count, out = check("--max-bytes", "100K")
    assert code != 0 and "backlog" in out and count < 30
    seen = [count]
    for _ in range(10):
        code, count, out = check("--max-bytes", "100K")
        seen.append(count)
        if "backlog" not in out:
            break
    assert count == 30
    assert seen == sorted(seen)
    assert check()[:2] == (2, 30)


def test_backlog_across_a_rotation(check, log):
    check()
    for _ in range(10):
        log.noise(100)
        log.ct(1)
    log.rotate()
    for _ in range(10):
        log.noise(100)
        log.ct(1)
    outs = [check("--max-bytes", "50K") for _ in range(12)]
    assert outs[0][0] != 0 and "backlog" in outs[0][2]
    assert outs[-1][1] == 20 and "backlog" not in outs[-1][2]


@pytest.mark.parametrize("content, words", [
    (b"", "corrupt"),
    (b'{"format": "conntrack-checks-state/1", "plugin": "chec', "corrupt"),
    (b"[1, 2]", "not ours"),
])
def test_corrupt_state_warns_once_and_baselines(check, log, tmp_path, content, words):
    check()
    [path] = (tmp_path / "state").glob("*.json")
    path.write_bytes(content)
    log.ct(1)
    code, _count, out = check()
    assert code == 1 and words in out and "baseline" in out
    log.ct(1)
    assert check()[:2] == (1, 1)


def test_state_of_another_schema_is_reset(check, log, tmp_path):
    check()
    [path] = (tmp_path / "state").glob("*.json")
    doc = json.loads(path.read_text())
    doc["data"]["schema"] = 99
    path.write_text(json.dumps(doc))
    code, _, out = check()
    assert code == 1 and "another version" in out


def test_unreadable_state_dir_is_unknown(check, log, tmp_path):
    (tmp_path / "state").write_text("not a dir")
    code, _, out = check()
    assert code == 3 and out.count("\n") == 1


# --- suppression and namespaces ---------------------------------------------------


def test_a_day_long_incident_keeps_the_state_small(check, log, tmp_path):
    """One event per second in two namespaces for 24 h: per-minute rows beyond FINE."""
    check()
    path = next((tmp_path / "state").glob("*.json"))
    doc = json.loads(path.read_text())
    now = int(time.time())
    day = range(now - 86400 + 60, now + 1)  # a minute's margin: the run's "now" is later
    doc["data"]["events"] = [[t, ns, 1] for t in day for ns in (None, 7)]
    doc["data"]["supp"] = [[t, 100] for t in day[::5]]
    doc["data"]["last_ct"] = now
    path.write_text(json.dumps(doc))
    log.noise(1)
    code, count, out = check("--window", "1h")
    data = state_of(tmp_path)
    assert len(data["events"]) <= 2 * (events.FINE + (86400 - events.FINE) / 60) + 4
    assert path.stat().st_size < 120_000
    # the hour's counts survive (the oldest minute may leave the window early)
    assert 2 * 3600 - 2 * 60 <= count <= 2 * 3600
    assert sum(r[2] for r in data["events"]) == 2 * len(day)
    assert sum(r[1] for r in data["supp"]) == 100 * len(day[::5])
    assert code == 2 and "in host (" in out and "netns [7] (" in out


def test_suppressed_line_in_a_later_run_is_attributed(check, log):
    check()
    log.ct(10)
    assert check()[:2] == (2, 10)
    log.text("net_ratelimit: 4000 callbacks suppressed")
    _code, _count, out = check()
    assert "(+4000 suppressed, est.)" in out and "suppressed=4000" in out


def test_suppressed_without_a_recent_conntrack_line_is_not_attributed(check, log):
    check()
    log.ct(1, when=time.time() - 3600)
    log.text("net_ratelimit: 50 callbacks suppressed")
    log.text("quiet_error: 9 callbacks suppressed")
    _code, _count, out = check("-v")
    assert "suppressed=0" in out and "not counted" not in out  # not even looked for
    log.ct(1, when=time.time() - 330)  # 5.5 minutes before: looked for, too late to count
    log.text("net_ratelimit: 40 callbacks suppressed")
    _code, _count, out = check("-v")
    assert "suppressed=0" in out and "1 'callbacks suppressed' line(s)" in out, out
    log.ct(1)
    log.text("__ratelimit: 8 callbacks suppressed")
    assert "suppressed=8" in check()[2]


def test_suppressed_lines_are_searched_for_only_where_they_can_count(check, log, monkeypatch):
    """Only the stretch up to 5 minutes (and a minute of slack) after a table-full line."""
    check()
    now = time.time()
    log.ct(1, when=now - 7200)
    log.noise(100)
    log.text("net_ratelimit: 50 callbacks suppressed")  # 2 h after the last one: not ours
    log.noise(100)
    log.ct(1)
    log.noise(100)
    log.text("net_ratelimit: 60 callbacks suppressed")  # seconds after: ours
    later = b"".join(log.line(f"eth0: link up {n} " + "x" * 40, now + 600) for n in range(2000))
    log.append(later)  # 10 minutes later: nothing here can be conntrack's
    searched = []

    def counts_in(self, buffer, lo, hi, counted, search=None, real=blocks.Stretch.counts_in):
        searched.append(hi - lo)
        return real(self, buffer, lo, hi, counted, search)

    monkeypatch.setattr(blocks.Stretch, "counts_in", counts_in)
    _code, count, out = check("-v")
    assert count == 1 and "suppressed=60;" in out
    assert "without a table-full line" not in out  # the 50 was never searched for
    assert 0 < sum(searched) < 100 * 80 + 2 * blocks.BISECT_TO < len(later) / 10, searched


def test_a_large_read_is_searched_with_memmem_and_counts_the_same(check, log, monkeypatch):
    """Past blocks.MEMMEM_AFTER bytes a run searches with libc's memmem: table-full lines
    and the count after them are found there as before it."""
    from conntrack_checks.logs import memsearch
    made = []

    def finder(buffer, real=memsearch.finder):
        made.append(real(buffer))
        return made[-1]

    monkeypatch.setattr(memsearch, "finder", finder)
    check()
    noise = b"".join(log.line(f"eth0: link up {n} " + "x" * 60) for n in range(1000))
    for _ in range(blocks.MEMMEM_AFTER // len(noise) + 1):
        log.append(noise)
    log.ct(3)
    log.noise(1000)
    log.text("net_ratelimit: 60 callbacks suppressed")
    # lines past RATE: the block is searched for counts now (not kept for flush())
    log.append(b"".join(log.line(f"eth0: link up {n}", time.time() + 10) for n in range(9)))
    _code, count, out = check("--max-bytes", "64M")
    assert count == 3 and "suppressed=60;" in out, out
    assert any(found is not None for found in made)  # memmem searched the last blocks


def test_expectation_table_full_is_its_own_finding(check, log):
    check()
    log.text("nf_conntrack: expectation table full")
    code, count, out = check()
    assert (code, count) == (1, 0)
    assert "1 'expectation table full'" in out and "expectation_full=1" in out


def test_netns_filter_and_names(check, log, tmp_path):
    check()
    run_dir = tmp_path / "netns"
    run_dir.mkdir()
    (run_dir / "web").write_text("")
    web = (run_dir / "web").stat().st_ino
    log.ct(3, netns=web)
    log.ct(2, netns=4026532999)
    _code, count, out = check("--netns-dir", str(run_dir))
    assert count == 5
    assert f"netns web [{web}] (3)" in out and "netns [4026532999] (2)" in out
    assert check("--netns-dir", str(run_dir), "--netns", "web")[1] == 3
    assert check("--netns-dir", str(run_dir), "--netns", "4026532999")[1] == 2
    log.ct(4)
    host = ccl.host_inode("/proc")
    assert check("--netns-dir", str(run_dir), "--netns", str(host))[1] == 4
    assert check("--netns-dir", str(run_dir), "--netns-path", "/proc/self/ns/net")[1] == 4


# --- concurrency (real processes) -----------------------------------------------


def test_a_shorter_window_does_not_prune_what_a_longer_one_needs(check, log):
    check("--window", "2d")
    log.ct(2, when=time.time() - 36 * 3600)
    assert check("--window", "2d")[:2] == (1, 2)
    assert check()[:2] == (0, 0)  # the fixture's 1h window; the state is shared
    assert check("--window", "2d")[:2] == (1, 2)


def test_last_one_is_of_the_netns_asked_for(check, log):
    check()
    now = time.time()
    log.ct(1, netns=111, when=now - 7200)
    log.ct(1, netns=222, when=now - 5400)
    ago = r"; last one \d\d:\d\d:\d\d \((%s) ago\)"  # a second may pass meanwhile
    _code, count, out = check("--netns", "111")
    assert count == 0 and re.search(ago % "2h|2h0m", out), out
    _code, count, out = check("--netns", "222")
    assert count == 0 and re.search(ago % "90m|1h30m", out), out
    _code, count, out = check("--netns", "333")
    assert count == 0 and "last one" not in out, out
    _code, count, out = check()
    assert count == 0 and re.search(ago % "90m|1h30m", out), out


def test_eight_parallel_runs_count_each_event_once(log, tmp_path, run_plugin):
    argv = [str(Path(sys.executable).parent / "check_conntrack_log"), "--logfile",
            str(log.path), "--state-dir", str(tmp_path / "state"), "--window", "1h"]
    assert subprocess.run(argv, capture_output=True).returncode == 0
    size = log.path.stat().st_size
    for _ in range(20):
        log.noise(50)
        log.ct(1)
    procs = [subprocess.Popen(argv, stdout=subprocess.PIPE, text=True) for _ in range(8)]
    outs = [p.communicate(timeout=60)[0] for p in procs]
    assert [p.returncode for p in procs] == [2] * 8, outs
    assert all(" 20 table-full messages" in o for o in outs), outs
    taken = [int(o.split(" bytes=")[1].split("B;")[0]) for o in outs]
    assert sorted(taken)[-1] == log.path.stat().st_size - size and taken.count(0) == 7
    assert sum(row[2] for row in state_of(tmp_path)["events"]) == 20


# --- kmsg logic on scripted records (what this kernel cannot show on demand) --------


def test_kmsg_baseline_takes_in_nothing_then_counts_new_records(run_main, tmp_path,
                                                                monkeypatch):
    argv = ["--source", "kmsg", "--state-dir", str(tmp_path / "st")]
    ring = [b"6,1,10,-;booting\n", b"6,2,20,-;eth0: link up\n"]
    scripted_kmsg(monkeypatch, ring)
    code, out = run_main(ccl.main, *argv)
    assert code == 0 and "baseline" in out and " bytes=0B;" in out
    usec = int(time.clock_gettime(time.CLOCK_MONOTONIC) * 1e6)
    new = f"4,3,{usec},-;nf_conntrack: nf_conntrack: table full, dropping packet\n".encode()
    scripted_kmsg(monkeypatch, [*ring, new])
    code, out = run_main(ccl.main, *argv)
    assert code == 1 and f" bytes={len(new)}B;" in out, out


def test_kmsg_unreadable_is_unknown_with_the_fix(run_main, tmp_path):
    path = tmp_path / "kmsg"
    path.write_text("")
    path.chmod(0)
    code, out = run_main(ccl.main, "--source", "kmsg", "--kmsg", str(path) + "x",
                         "--state-dir", str(tmp_path / "st"))
    assert code == 3 and "does not exist" in out


def test_unreadable_logfile_is_unknown_with_the_fix(run_main, tmp_path):
    code, out = run_main(ccl.main, "--logfile", str(tmp_path / "none.log"),
                         "--state-dir", str(tmp_path / "st"))
    assert code == 3 and "does not exist" in out and out.count("\n") == 1


def test_permission_denied_as_nobody(run_plugin):
    if os.geteuid() != 0:
        if os.environ.get("CI") == "true":
            pytest.fail("CI=true: needs root to become nobody")
        pytest.skip("needs root to become nobody")
    import tempfile
    base = Path(tempfile.mkdtemp(prefix="ctlog-nobody-"))
    try:
        _as_nobody(run_plugin, base)
    finally:
        shutil.rmtree(base)


def _as_nobody(run_plugin, base):
    base.chmod(0o755)
    log = Log(base)
    log.path.chmod(0o600)
    state_dir = base / "nobody-state"
    state_dir.mkdir(mode=0o700)
    shutil.chown(state_dir, "nobody")
    for argv, words in ((["--logfile", str(log.path)], "adm"), (["--source", "kmsg"],
                                                                "CAP_SYSLOG")):
        code, out, err = run_plugin("check_conntrack_log", *argv, "--state-dir", str(state_dir),
                                    as_nobody=True)
        assert code == 3 and words in out and out.count("\n") == 1, (out, err)


def test_main_module_runs_as_a_script():
    done = subprocess.run([sys.executable, "-c", "from conntrack_checks.checks.check_conntrack_log "
                           "import main; main(['--help'])"], capture_output=True, text=True)
    assert done.returncode == 3 and "--window" in done.stdout


def test_a_hanging_journalctl_is_killed_at_the_timeout(run_main, tmp_path, monkeypatch):
    from conntrack_checks.logs import journal
    fake = tmp_path / "journalctl"
    fake.write_text("#!/bin/sh\nexec sleep 60\n")
    fake.chmod(0o755)
    monkeypatch.setattr(journal, "JOURNALCTL", (str(fake),))
    started = time.monotonic()
    code, out = run_main(ccl.main, "--source", "journal", "-t", "1",
                         "--state-dir", str(tmp_path / "st"))
    assert time.monotonic() - started < 10
    assert code == 3 and "Timeout" in out and out.endswith("\n") and out.count("\n") == 1


@pytest.mark.parametrize("text, seconds", [("900", 900), ("15m", 900), ("2h", 7200),
                                           ("1d", 86400), ("30s", 30)])
def test_durations(text, seconds):
    assert ccl.duration(text) == seconds


@pytest.mark.parametrize("argv", [["--window", "0"], ["--window", "5x"], ["--max-bytes", "1T"],
                                  ["-w", "abc"], ["--source", "dmesg"]])
def test_bad_options_are_unknown(run_main, argv):
    code, out = run_main(ccl.main, *argv)
    assert code == 3 and out.startswith("CONNTRACK LOG UNKNOWN - ") and out.count("\n") == 1


def test_timeout_stops_a_blocked_read(tmp_path, run_plugin):
    fifo = tmp_path / "kern.log"
    os.mkfifo(fifo)
    start = time.monotonic()
    code, out, _ = run_plugin("check_conntrack_log", "--logfile", str(fifo), "-t", "2",
                              "--state-dir", str(tmp_path / "st"))
    assert code == 3 and "UNKNOWN" in out and time.monotonic() - start < 10
