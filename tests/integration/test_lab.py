"""The lab itself: it must leave the machine as it found it, even after a crash."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from lab import Lab, need_root_tools, read_max, run

HERE = Path(__file__).parent


def namespaces() -> str:
    return run("ip", "netns", "list").stdout


def test_lab_restores_max_and_deletes_namespaces():
    need_root_tools("ip", "nft", "conntrack")
    with Lab():  # hold the lab lock while reading the max before and after
        before = read_max()
        with Lab(max_entries=before + 1) as lab:
            name = lab.namespace("tmp", flows=3)
            assert read_max() == before + 1
            assert lab.count(name) == 3
        assert read_max() == before
        assert name not in namespaces()


def test_next_lab_repairs_what_a_killed_lab_left():
    need_root_tools("ip", "nft", "conntrack")
    with Lab():  # no other suite's lab has the max lowered while it is read
        before = read_max()
    killed = subprocess.run(
        [sys.executable, "-c",
         "import os, signal, sys; sys.path.insert(0, sys.argv[1]); from lab import Lab; "
         "lab = Lab(max_entries=1234); print(lab.namespace('dead'), flush=True); "
         "os.kill(os.getpid(), signal.SIGKILL)", str(HERE)],
        capture_output=True, text=True, timeout=60)
    left = killed.stdout.strip()
    assert killed.returncode == -9 and left
    assert read_max() == 1234 and left in namespaces()
    with Lab():
        assert read_max() == before
        assert left not in namespaces()
    assert read_max() == before
