"""The installed plugins run as NRPE and Icinga run them: exit code and stdout."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from kernel_trees import nf_tree, write_tree

PLUGINS = ["check_conntrack", "check_conntrack_hash"]
STATUS = {"check_conntrack": "CONNTRACK", "check_conntrack_hash": "CONNTRACK HASH"}
REPO = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize("name", PLUGINS)
def test_real_proc_gives_a_status_line(run_plugin, name):
    code, out, err = run_plugin(name)
    assert code in (0, 1, 2), out
    assert out.startswith(f"{STATUS[name]} ")
    assert " | " in out and out.count("\n") == 1
    assert err == ""


def test_real_count_matches_conntrack_tool(run_plugin):
    if shutil.which("conntrack") is None:
        pytest.skip("conntrack (conntrack-tools) not installed")
    _, out, _ = run_plugin("check_conntrack")
    tool = subprocess.run(["conntrack", "-C"], capture_output=True, text=True, check=True)
    seen = int(re.search(r" - (\d+) of ", out).group(1))
    assert abs(seen - int(tool.stdout)) <= 5  # the host's own traffic may move it


@pytest.mark.parametrize("tree, argv, code, first", [
    (nf_tree(100, 1000, 1000), [], 0, "CONNTRACK OK - 100 of 1000 entries (10.0%) | "),
    (nf_tree(850, 1000, 1000), [], 1, "CONNTRACK WARNING - 850 of 1000 entries (85.0%, "),
    (nf_tree(950, 1000, 1000), [], 2, "CONNTRACK CRITICAL - 950 of 1000 entries (95.0%, "),
    (nf_tree(1, 100, 100, extra={"sys/net/netfilter/nf_conntrack_count": "x"}), [], 3,
     "CONNTRACK UNKNOWN - "),
    ({"proc": {}, "sys": {}}, ["--missing", "critical"], 2,
     "CONNTRACK CRITICAL - nf_conntrack is not loaded"),
])
def test_each_exit_code_from_the_executable(run_plugin, tmp_path, tree, argv, code, first):
    proc, sys_root = write_tree(tmp_path, tree)
    got, out, err = run_plugin("check_conntrack", "--proc-root", proc, "--sys-root", sys_root,
                               *argv)
    assert (got, err) == (code, "")
    assert out.startswith(first)


@pytest.mark.parametrize("name", PLUGINS)
@pytest.mark.parametrize("argv, pattern", [
    (["--help"], r"usage: check_conntrack"),
    (["-V"], r"\(conntrack-checks\) \d+\.\d+"),
    (["--nonsense"], r"UNKNOWN - unrecognized arguments: --nonsense \(see --help\)\n\Z"),
    (["-w"], r"UNKNOWN - argument -w/--warning: expected one argument \(see --help\)\n\Z"),
])
def test_help_version_and_mistakes_exit_3_on_stdout(run_plugin, name, argv, pattern):
    code, out, err = run_plugin(name, *argv)
    assert code == 3
    assert re.search(pattern, out)
    assert err == ""


@pytest.mark.parametrize("name", PLUGINS)
def test_timeout_really_stops_a_blocked_read(run_plugin, tmp_path, name):
    # A FIFO with no writer blocks open() for ever: only the alarm ends it.
    proc, sys_root = write_tree(tmp_path, nf_tree(1, 100, 100))
    count = Path(proc, "sys/net/netfilter/nf_conntrack_count")
    count.unlink()
    os.mkfifo(count)
    code, out, err = run_plugin(name, "--proc-root", proc, "--sys-root", sys_root, "-t", "1",
                                timeout=30)
    assert (code, err) == (3, "")
    assert out == f"{STATUS[name]} UNKNOWN: Timeout: check execution aborted after 1s\n"


@pytest.mark.parametrize("name", PLUGINS)
def test_missing_library_is_unknown_not_a_traceback(name):
    # -S hides site-packages: the suite's own package is found, nagiosplugin is not.
    done = subprocess.run([sys.executable, "-S", str(REPO / "plugins" / name)],
                          capture_output=True, text=True,
                          env={"PYTHONPATH": str(REPO / "lib"), "PATH": os.environ["PATH"]})
    assert done.returncode == 3
    assert done.stdout.startswith(f"{STATUS[name]} UNKNOWN - cannot import nagiosplugin: ")
    assert done.stderr == ""
