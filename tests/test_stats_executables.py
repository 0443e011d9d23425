"""The installed check_conntrack_stats as NRPE runs it: exit code and stdout.

Also 8 runs at once against counters that move meanwhile: the state's lock
must make every delta count exactly once.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import pytest
import stats_fixtures as fx
from kernel_trees import write_tree

PLUGIN = "check_conntrack_stats"
# The installed executable next to the interpreter running the tests.
EXECUTABLE = str(Path(sys.executable).parent / PLUGIN)


@pytest.fixture
def shared_dir():
    """A directory every user may enter (pytest's tmp_path is root-only), for
    runs as the unprivileged user nobody (switching users needs root)."""
    if os.geteuid() != 0:
        if os.environ.get("CI") == "true":
            pytest.fail("CI=true: running the plugin as nobody needs root")
        pytest.skip("running the plugin as nobody needs root")
    path = Path(tempfile.mkdtemp(prefix="ctstats-"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path)


def args(proc, sys_root, state_dir, *more):
    return ["--proc-root", proc, "--sys-root", sys_root, "--state-dir", str(state_dir), *more]


def test_each_state_from_the_executable(run_plugin, tmp_path):
    proc, sys_root = write_tree(tmp_path, fx.tree(rows=[{"drop": 1}, {}]))
    argv = args(proc, sys_root, tmp_path / "st")
    code, out, err = run_plugin(PLUGIN, *argv)
    assert (code, err) == (0, "")
    assert out.startswith("CONNTRACK STATS OK - baseline stored (drop 1, early_drop 0, "
                          "insert_failed 0 since the counters started); deltas from the next "
                          "run | ")
    assert out.count("\n") == 1

    write_tree(tmp_path, fx.tree(rows=[{"drop": 1, "early_drop": 4}, {}]))
    code, out, _ = run_plugin(PLUGIN, *argv)
    assert code == 1
    assert re.match(r"CONNTRACK STATS WARNING - 4 entries evicted early since the last check "
                    r"[\d.]+s ago: the table is at its limit \(warning above 0\) \| ", out)

    write_tree(tmp_path, fx.tree(rows=[{"drop": 686, "early_drop": 4}, {}]))
    code, out, _ = run_plugin(PLUGIN, *argv)
    assert code == 2
    assert re.match(r"CONNTRACK STATS CRITICAL - 685 packets dropped since the last check "
                    r"[\d.]+s ago: table full \(critical above 0\) \| ", out)
    assert " drop=686c;;;0 drop_delta=685;;;0 " in out and " table_full_delta=685;;0;0" in out

    write_tree(tmp_path, {"proc": {"net/stat/nf_conntrack": "entries  drop\nzz  01\n"}})
    code, out, _ = run_plugin(PLUGIN, *argv)
    assert code == 3
    assert out == (f"CONNTRACK STATS UNKNOWN - {proc}/net/stat/nf_conntrack row 1 holds 'zz' "
                   "in column entries, not a hex number\n")


def test_help_and_version_exit_3(run_plugin):
    code, out, _ = run_plugin(PLUGIN, "--help")
    assert code == 3 and out.startswith("usage: check_conntrack_stats")
    assert "--rate-per" in out and "--source" in out and "--state-dir" in out
    code, out, _ = run_plugin(PLUGIN, "-V")
    assert code == 3 and "(conntrack-checks)" in out


def test_unwritable_state_directory_as_the_monitoring_user(run_plugin, shared_dir):
    proc, sys_root = write_tree(shared_dir, fx.tree(rows=[{"drop": 40}, {"drop": 2}]))
    state_dir = shared_dir / "st"
    state_dir.mkdir(mode=0o500)
    os.chown(state_dir, 65534, 65534)
    code, out, err = run_plugin(PLUGIN, *args(proc, sys_root, state_dir), as_nobody=True)
    assert (code, err) == (3, "")
    assert re.match(rf"CONNTRACK STATS UNKNOWN - cannot write state {state_dir}/"
                    r"check_conntrack_stats_\S+\.json\.lock: Permission denied; give the "
                    r"monitoring user a writable --state-dir; read \(totals since the counters "
                    r"started\): drop 42, early_drop 0, insert_failed 0 \| ", out)
    assert " drop=42c;;;0 " in out


def test_netlink_without_cap_net_admin_says_so(run_plugin, shared_dir):
    state_dir = shared_dir / "st"
    state_dir.mkdir(mode=0o700)
    os.chown(state_dir, 65534, 65534)
    code, out, _ = run_plugin(PLUGIN, "--source", "netlink", "--state-dir", str(state_dir),
                              as_nobody=True)
    assert code == 3
    assert out == ("CONNTRACK STATS UNKNOWN - ctnetlink refused the statistics in this "
                   "namespace: CAP_NET_ADMIN is missing; run as root or through the sudoers "
                   "rule in contrib/sudoers\n")


def test_eight_concurrent_runs_count_each_delta_once(tmp_path):
    """8 processes at once, 3 rounds, while a writer moves the counters."""
    proc, sys_root = write_tree(tmp_path, fx.tree(rows=[{"drop": 0}, {"drop": 0}]))
    stat_path = Path(proc, "net/stat/nf_conntrack")
    cmd = [EXECUTABLE, *args(proc, sys_root, tmp_path / "st")]
    baseline = subprocess.run(cmd, capture_output=True, text=True, check=False)
    assert baseline.returncode == 0 and "baseline stored" in baseline.stdout

    stop = threading.Event()
    written = []

    def writer():
        value = 0
        while not stop.is_set():
            value += 7
            tmp = stat_path.with_suffix(".tmp")
            tmp.write_text(fx.stat_file("5.15-chainlength",
                                        [{"drop": value}, {"drop": value * 2}]))
            os.rename(tmp, stat_path)  # a reader sees the old file or the new one
            written.append(value * 3)
            time.sleep(0.003)

    thread = threading.Thread(target=writer)
    thread.start()
    outputs = []
    try:
        for _ in range(3):
            runs = [subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True) for _ in range(8)]
            outputs += [run.communicate(timeout=60)[0] for run in runs]
    finally:
        stop.set()
        thread.join()
    deltas, seen = [], []
    for out in outputs:
        assert out.startswith("CONNTRACK STATS "), out
        perf = dict(item.split("=", 1) for item in out.split(" | ")[1].split())
        deltas.append(int(perf["drop_delta"].split(";")[0]))
        seen.append(int(perf["drop"].split(";")[0].rstrip("c")))
    assert len(set(seen)) > 3, "the counters did not move during the runs"
    assert sum(deltas) == max(seen)  # from the baseline's 0: nothing twice, nothing lost
