"""Running an installed executable as a real unprivileged user."""

from __future__ import annotations

import grp
import os
import pwd
import subprocess
import sys
from pathlib import Path


def become_nobody() -> None:
    """preexec_fn: nobody:nogroup without root's supplementary groups (any Python 3)."""
    os.setgroups([])
    os.setgid(grp.getgrnam("nogroup").gr_gid)
    os.setuid(pwd.getpwnam("nobody").pw_uid)


def as_nobody(name: str, *argv: str, timeout: float = 300) -> tuple[int, str, str]:
    """Run an installed executable as nobody:nogroup without root's groups.

    (subprocess's user= alone keeps gid 0 and root's supplementary groups,
    which can read root:root 0440 files such as /proc/net/nf_conntrack.)
    """
    done = subprocess.run([str(Path(sys.executable).parent / name), *argv],
                          capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL,
                          preexec_fn=become_nobody)
    return done.returncode, done.stdout, done.stderr
