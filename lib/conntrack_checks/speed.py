"""Start-up: every trick that keeps a plugin run short, in one place, and why.

A monitoring server runs each plugin on every host every minute or so, so
the whole process (interpreter start, imports, the work, exit) is what
counts. The budget: each plugin at most 1.25 times ``python -c "import
nagiosplugin"`` on the same machine. tests/bench/bench_startup.py measures
the plugins against that floor, and ``bench_startup.py --tricks`` measures
what each trick below saves on this machine (figures in comments go stale;
run the benchmark). docs/benchmarks.rst has the last figures.

The tricks, and what breaks them:

1. argparse without gettext (untranslated_argparse, run as the package is
   imported): argparse imports gettext only to translate its own phrases;
   gettext compiles a plural-forms parser as it loads. Debian ships no
   translation of them and the plugins speak English in any locale. Broken
   by importing argparse before conntrack_checks.
2. argparse's phrases not looked up (untranslated_phrases, by nagios/plugin):
   where argparse was loaded with the real gettext, each phrase of each
   parser built would search for .mo files (importing locale).
3. A fixed help width (HelpFormatter): argparse otherwise asks for the
   terminal size once per option as it builds a parser, on every run, not
   only for --help. 80 columns is also what the plugin guidelines ask.
4. No interpreter teardown (fast_exit, called by nagios/plugin.execute):
   freeing every module and object one by one costs as much as a plugin's
   own work. So the plugins leave through os._exit: atexit hooks, logging
   handlers' flush at exit, __del__ methods and non-daemon threads never
   run. Everything must be written, flushed, fsynced, closed and waited for
   before main() returns (state.py, the child processes of ctdump and
   journal do this); output is flushed here.
5. Lazy imports: the default path (a check run without options, and -V or
   --help) must not import any module of NOT_AT_START. Import those inside
   the function that needs them, with a comment saying when ("socket only
   on this path"). No dataclasses and no typing.NamedTuple on that path
   either: small classes with __slots__ do the same. tests/test_speed.py
   runs check_conntrack and check_conntrack_hash on a fixture tree and every
   executable with -V, and fails on either.

Stdlib only, and nothing but argparse (after trick 1) imported here.
"""

from __future__ import annotations

import contextlib
import os
import sys
import types

# Modules a default plugin run must not import (rule 5; tests/test_speed.py).
NOT_AT_START = ("gettext", "socket", "subprocess", "typing", "dataclasses")
HELP_WIDTH = 80


def untranslated_argparse() -> None:
    """Let argparse load with untranslated messages instead of importing gettext.

    The stand-in is in sys.modules only while argparse is imported; nothing
    changes in a process that has loaded argparse or gettext already.
    """
    if "argparse" in sys.modules or "gettext" in sys.modules:
        return
    stand_in = types.ModuleType("gettext")
    stand_in.gettext = str
    stand_in.ngettext = lambda singular, plural, n: singular if n == 1 else plural
    sys.modules["gettext"] = stand_in
    try:
        import argparse  # noqa: F401
    finally:
        del sys.modules["gettext"]


untranslated_argparse()

import argparse  # noqa: E402  (after the stand-in above)


def untranslated_phrases() -> None:
    """argparse's own phrases as they are, never looked up in a translation."""
    argparse._ = str


class HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Help in 80 columns, never asking the terminal for its size."""

    def __init__(self, prog, indent_increment=2, max_help_position=24, width=HELP_WIDTH):
        super().__init__(prog, indent_increment, max_help_position, width)


def fast_exit(code: int) -> None:
    """Flush stdout and stderr, then end the process at once with ``code``."""
    for stream in (sys.stdout, sys.stderr):
        # A reader that went away (NRPE after its timeout) cannot be told anything.
        with contextlib.suppress(OSError, ValueError):
            stream.flush()
    os._exit(code)
