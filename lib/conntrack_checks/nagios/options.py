"""From the options every plugin shares to the plain values the layers below take.

Only the checks and this Nagios layer see an argparse namespace; the
kernel and log readers, the report and the domain code take values.
"""

from __future__ import annotations

from ..kernel import netns
from ..kernel.sysctl import Roots


def roots(args) -> Roots:
    """--proc-root and --sys-root."""
    return Roots(args.proc_root, args.sys_root)


def namespaces(args) -> tuple[list[netns.Namespace], bool]:
    """The namespaces --netns, --netns-path or --all-netns ask for (default: this one),
    and whether that is --all-netns.

    Looks the namespaces up (--all-netns walks /proc): call it where the
    plugin's timeout runs and a ProbeError becomes its UNKNOWN line, in probe().
    """
    if args.all_netns:
        return netns.discover(roots(args).proc, args.netns_dir), True
    if args.netns:
        return [netns.named(args.netns, args.netns_dir)], False
    if args.netns_path:
        return [netns.from_path(args.netns_path)], False
    return [netns.Namespace.current()], False
