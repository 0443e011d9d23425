"""conntrack-checks: Nagios/Icinga plugins for the netfilter connection-tracking table.

The layers, lowest first (HACKING.rst has the rules):

- errors, state, deltas: exceptions with their fixes; state between runs.
- kernel/: what the running kernel says (sysctl, netns, ctstats, ctnetlink, ctdump,
  sizing, bootconf).
- logs/: the kernel's log (logmsg wordings; logfile, kmsg and journal sources).
- nagios/: argparse and nagiosplugin plumbing shared by the checks.
- checks/: one module per executable.
- report/: conntrack-report, the on-call page.
"""

import sys
import types

__version__ = "0.1.0"


def _untranslated_argparse() -> None:
    """Let argparse load with untranslated messages instead of importing gettext.

    argparse imports gettext only to translate its own phrases, and gettext
    compiles a plural-forms parser as it is imported: about a millisecond of
    every run of every plugin, for translations Debian does not ship (the
    plugins speak English in any locale). The stand-in is in sys.modules only
    while argparse is imported; nothing changes in a process that has loaded
    argparse or gettext already.
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


_untranslated_argparse()
