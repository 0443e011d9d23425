"""Fixtures every test can use: a fresh nagiosplugin runtime, main() in-process, the installed
executables as NRPE runs them."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import nagiosplugin.runtime
import pytest


@pytest.fixture(autouse=True)
def fresh_runtime():
    """nagiosplugin's Runtime is a process-wide singleton: one per test.

    Its output goes to the sys.stdout of the moment (capsys); nagiosplugin 1.3
    (Debian 12's) kept the one of its import unless told None.
    """
    nagiosplugin.runtime.Runtime.instance = None
    nagiosplugin.runtime.Runtime.stdout = None
    yield
    nagiosplugin.runtime.Runtime.instance = None


@pytest.fixture
def run_main(capsys):
    """Run a plugin's main() in-process; returns (exit code, stdout)."""

    def run(main, *argv):
        with pytest.raises(SystemExit) as exited:
            main(list(argv))
        return exited.value.code, capsys.readouterr().out

    return run


def plugin_path(name: str) -> str:
    """The installed executable, next to the interpreter running the tests."""
    path = Path(sys.executable).parent / name
    if not path.exists():
        found = shutil.which(name)
        assert found, f"{name} is not installed: run tests/run (pip install .)"
        return found
    return str(path)


@pytest.fixture
def run_plugin():
    """Run an installed plugin as NRPE does: returns (exit code, stdout, stderr)."""

    def run(name, *argv, timeout=60, as_nobody=False):
        """``as_nobody``: as nobody:nogroup without root's groups, as a monitoring user is."""
        from unprivileged import become_nobody

        cmd = [plugin_path(name), *argv]
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout,
                              stdin=subprocess.DEVNULL,
                              preexec_fn=become_nobody if as_nobody else None)
        return done.returncode, done.stdout, done.stderr

    return run
