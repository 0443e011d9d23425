"""check_conntrack_tuning run as NRPE runs it: exit code and stdout of the installed executable."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from tuning_trees import MIB, kernel_tree, root, write_host

REPO = Path(__file__).resolve().parent.parent
TUNED = "net.netfilter.nf_conntrack_tcp_timeout_established = 86400\n"


@pytest.mark.parametrize("changes, files, argv, code, first", [
    ({}, {}, [], 0, "CONNTRACK TUNING OK - nothing to fix: max 262144 (1.00 x kernel default)"),
    ({"limit": 524288}, {}, [], 1,
     "CONNTRACK TUNING WARNING - nf_conntrack_max 524288 is set at runtime only: the next "
     "boot gives 262144 [persist-max]"),
    ({"limit": 524288, "ram": 512 * MIB, "buckets": 524288},
     {"etc/sysctl.d/90-conntrack.conf": f"net.netfilter.nf_conntrack_max = 524288\n{TUNED}",
      "etc/modprobe.d/nf_conntrack.conf": "options nf_conntrack hashsize=524288\n"}, [], 2,
     "CONNTRACK TUNING CRITICAL - a full table would pin 132.0 MiB, 25.8% of RAM (critical "
     "above 25%) [memory]; 1 more: max-vs-default (see -v)"),
    ({"limit": 524288}, {}, ["--ignore", "persist-max"], 0, "CONNTRACK TUNING OK - "),
    ({}, {}, ["--memory-warning", "10%"], 3,
     "CONNTRACK TUNING UNKNOWN - argument --memory-warning: '10%' is not a Nagios range"),
])
def test_exit_codes_from_the_executable(run_plugin, tmp_path, changes, files, argv, code, first):
    args = write_host(tmp_path, kernel_tree(**changes), root(files))
    got, out, err = run_plugin("check_conntrack_tuning", *args, *argv)
    assert (got, err) == (code, ""), out
    assert out.startswith(first)
    assert out.count("\n") == 1


def test_not_loaded_follows_missing(run_plugin, tmp_path):
    args = write_host(tmp_path, {"proc": {}, "sys": {}}, root())
    code, out, _ = run_plugin("check_conntrack_tuning", *args, "--missing", "warning")
    assert code == 1 and out.startswith("CONNTRACK TUNING WARNING - nf_conntrack is not loaded")


@pytest.mark.parametrize("argv, code, pattern", [
    (["--help"], 3, "--config-root DIR"), (["-V"], 3, "(conntrack-checks) 0."),
    (["--bogus"], 3, "CONNTRACK TUNING UNKNOWN - unrecognized arguments: --bogus"),
])
def test_help_version_mistakes(run_plugin, argv, code, pattern):
    got, out, err = run_plugin("check_conntrack_tuning", *argv)
    assert (got, err) == (code, "") and pattern in out


def test_missing_library_is_unknown_not_a_traceback():
    done = subprocess.run([sys.executable, "-S", str(REPO / "plugins" / "check_conntrack_tuning")],
                          capture_output=True, text=True,
                          env={"PYTHONPATH": str(REPO / "lib"), "PATH": os.environ["PATH"]})
    assert done.returncode == 3
    assert done.stdout.startswith("CONNTRACK TUNING UNKNOWN - cannot import nagiosplugin: ")
