"""conntrack-checks: Nagios/Icinga plugins for the netfilter connection-tracking table.

The layers, lowest first (HACKING.rst has the rules):

- errors, state, deltas, defaults, speed: exceptions with their fixes; state between
  runs; every check's default thresholds; the start-up tricks and their rules.
- kernel/: what the running kernel says (sysctl, netns, ctstats, ctnetlink, ctdump,
  sizing, bootconf).
- logs/: the kernel's log (logmsg wordings; logfile, kmsg and journal sources).
- munin/: conntrack-munin, the Munin plugin, on the readers above (no argparse).
- nagios/: argparse and nagiosplugin plumbing shared by the checks.
- checks/: one module per executable.
- report/: conntrack-report, the on-call page.
"""

__version__ = "0.1.0"

# First, before anything imports argparse: speed.py keeps gettext out of it.
from . import speed  # noqa: F401
