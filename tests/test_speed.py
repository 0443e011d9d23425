"""The start-up rules of speed.py, on real runs of the installed executables.

What each trick saves is measured by tests/bench/bench_startup.py --tricks,
not here: these tests only say whether the rules hold.
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from conftest import plugin_path
from conntrack_checks import speed
from conntrack_checks.nagios import plugin
from conntrack_checks.report import report
from kernel_trees import nf_tree, write_tree

# An exit handler that says so on stderr, installed in every Python process
# started with this directory on PYTHONPATH.
TEARDOWN_PROBE = "import atexit, os\natexit.register(lambda: os.write(2, b'teardown\\n'))\n"


EXECUTABLES = ["check_conntrack", "check_conntrack_hash", "check_conntrack_stats",
               "check_conntrack_log", "check_conntrack_table", "check_conntrack_tuning",
               "conntrack-report"]


RUNS = [("check_conntrack", "fixture-tree"), ("check_conntrack_hash", "fixture-tree"),
        *((name, "-V") for name in EXECUTABLES)]


@pytest.fixture(params=RUNS, ids=[" ".join(run) for run in RUNS])
def default_run(request, tmp_path):
    """(executable, argv, exit code, start of stdout) of a default run: on a healthy fixture
    host, or -V."""
    name, how = request.param
    if how == "-V":
        return name, ["-V"], 0 if name == "conntrack-report" else 3, f"{name} (conntrack-checks)"
    proc, sys_root = write_tree(tmp_path / "host", nf_tree(100, 1000, 1000))
    first = {"check_conntrack": "CONNTRACK OK - 100 of 1000",
             "check_conntrack_hash": "CONNTRACK HASH OK - 1000 buckets"}[name]
    return name, ["--proc-root", proc, "--sys-root", sys_root], 0, first


def test_a_default_plugin_run_imports_none_of_the_slow_modules(default_run):
    name, argv, code, first = default_run
    done = subprocess.run([sys.executable, "-X", "importtime", plugin_path(name), *argv],
                          capture_output=True, text=True)
    assert (done.returncode, done.stdout[:len(first)]) == (code, first)
    imported = {line.rsplit("|", 1)[-1].strip() for line in done.stderr.splitlines()
                if line.startswith("import time:")}
    assert "conntrack_checks.nagios.plugin" in imported  # the probe sees imports
    assert not {module.split(".")[0] for module in imported} & set(speed.NOT_AT_START)


def test_a_default_plugin_run_leaves_without_the_interpreter_s_teardown(default_run, tmp_path):
    name, argv, code, first = default_run
    (tmp_path / "site").mkdir()
    (tmp_path / "site" / "sitecustomize.py").write_text(TEARDOWN_PROBE)
    env = dict(os.environ, PYTHONPATH=str(tmp_path / "site"))
    control = subprocess.run([sys.executable, "-c", "pass"], capture_output=True, text=True,
                             env=env)
    assert control.stderr == "teardown\n"  # the probe works in an ordinary exit
    done = subprocess.run([plugin_path(name), *argv], capture_output=True, text=True, env=env)
    assert (done.returncode, done.stderr, done.stdout[:len(first)]) == (code, "", first)


def test_argparse_loads_without_gettext():
    code = ("import sys, conntrack_checks, argparse; "
            "print('gettext' in sys.modules, argparse._('x') == 'x')")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=True)
    assert done.stdout == "False True\n"


def test_the_plugins_help_is_80_columns_wide():
    parser = plugin.base_parser("check_x", "", "X")
    assert parser.formatter_class is speed.HelpFormatter
    assert max(len(line) for line in parser.format_help().splitlines()) <= 80
    assert report.parser().format_help()  # the report's own parser still builds
