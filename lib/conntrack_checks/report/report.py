"""conntrack-report: everything about the conntrack table, for the person on call.

One command, no options needed: usage per network namespace, hash load,
the kernel's counters since boot, recent "table full" events from the logs,
the top talkers (root) and the tuning findings with their fixes. Each
section comes from the same code as the plugins and stands alone: a section
that cannot be read says "not available" and why, the others still show.
Colour only on a terminal (NO_COLOR turns it off); --json for tools.

Exit status: 0 all sections fine, 1 a warning, 2 something critical, 3 a
mistake in the arguments.
"""

from __future__ import annotations

import argparse
import json
import sys

from .. import __version__
from ..kernel import sysctl
from ..nagios import plugin
from . import render, sections


class ArgumentParser(argparse.ArgumentParser):
    def error(self, message: str) -> None:
        """Exit 3, not 2: 2 means a critical section."""
        self.print_usage(sys.stderr)
        self.exit(3, f"{self.prog}: error: {message}\n")


def parser() -> argparse.ArgumentParser:
    p = ArgumentParser(prog="conntrack-report", description=__doc__,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("-V", "--version", action="version",
                   version=f"conntrack-report (conntrack-checks) {__version__}")
    p.add_argument("--json", action="store_true", help="JSON for tools instead of text")
    p.add_argument("--color", "--colour", choices=("auto", "always", "never"), default="auto",
                   help="colour: auto (on a terminal unless NO_COLOR is set), always, never")
    p.add_argument("--proc-root", default="/proc", metavar="DIR", type=plugin.directory,
                   help="where the host's procfs is mounted (default /proc)")
    p.add_argument("--sys-root", default="/sys", metavar="DIR", type=plugin.directory,
                   help="where the host's sysfs is mounted (default /sys)")
    p.add_argument("--config-root", default="/", metavar="DIR", type=plugin.directory,
                   help="read /etc, /run, /usr and /lib under DIR (default /)")
    return p


def main(argv=None) -> None:
    args = parser().parse_args(argv)
    report = sections.gather(sysctl.Roots(args.proc_root, args.sys_root), args.config_root)
    if args.json:
        sys.stdout.write(json.dumps(report, indent=2, default=str) + "\n")
    else:
        paint = render.Paint(render.use_colour(args.color, sys.stdout))
        sys.stdout.write(render.render_text(report, paint))
    sys.stdout.flush()
    sys.exit(sections.STATUS_EXIT[sections.worst_status(report)])
