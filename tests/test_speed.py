"""The start-up rules of speed.py, on real runs of the installed plugin.

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


@pytest.fixture(params=["fixture-tree", "version"])
def default_run(request, tmp_path):
    """The argv of a default check_conntrack run: on a healthy fixture host, and -V."""
    if request.param == "version":
        return ["-V"], 3
    proc, sys_root = write_tree(tmp_path / "host", nf_tree(100, 1000, 1000))
    return ["--proc-root", proc, "--sys-root", sys_root], 0


def test_a_default_plugin_run_imports_none_of_the_slow_modules(default_run):
    argv, code = default_run
    done = subprocess.run([sys.executable, "-X", "importtime", plugin_path("check_conntrack"),
                           *argv], capture_output=True, text=True)
    assert done.returncode == code, done.stdout
    imported = {line.rsplit("|", 1)[-1].strip() for line in done.stderr.splitlines()
                if line.startswith("import time:")}
    assert "conntrack_checks.checks.check_conntrack" in imported  # the probe sees imports
    assert not {name.split(".")[0] for name in imported} & set(speed.NOT_AT_START)


def test_a_default_plugin_run_leaves_without_the_interpreter_s_teardown(default_run, tmp_path):
    argv, code = default_run
    (tmp_path / "site").mkdir()
    (tmp_path / "site" / "sitecustomize.py").write_text(TEARDOWN_PROBE)
    env = dict(os.environ, PYTHONPATH=str(tmp_path / "site"))
    control = subprocess.run([sys.executable, "-c", "pass"], capture_output=True, text=True,
                             env=env)
    assert control.stderr == "teardown\n"  # the probe works in an ordinary exit
    done = subprocess.run([plugin_path("check_conntrack"), *argv], capture_output=True,
                          text=True, env=env)
    assert (done.returncode, done.stderr) == (code, "")
    assert done.stdout.startswith(("CONNTRACK OK - 100 of 1000", "check_conntrack "))


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
