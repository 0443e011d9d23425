"""Fixture trees for check_conntrack_tuning: a kernel (/proc, /sys) and a root (/etc ...).

``kernel_tree(...)`` gives a /proc + /sys tree of a host whose values are all
clean; ``root(...)`` a configuration tree that persists exactly those values
(systemd-sysctl present, nf_conntrack loaded at boot). Each test changes
one thing.
"""

from __future__ import annotations

import os

from conntrack_checks.tuning.findings import TIMEOUTS
from kernel_trees import NF, nf_tree, write_tree

GIB = 1 << 30
MIB = 1 << 20
HEADER_515 = ("entries  clashres found new invalid ignore delete chainlength insert "
              "insert_failed drop early_drop icmp_error  expect_new expect_create "
              "expect_delete search_restart")
HEADER_510 = HEADER_515.replace("chainlength", "delete_list")
HEADER_OLD = HEADER_510.replace("clashres", "searched")
SLAB_HEAD = ("slabinfo - version: 2.1\n# name            <active_objs> <num_objs> <objsize> "
             "<objperslab> <pagesperslab> : tunables <limit> <batchcount> <sharedfactor> : "
             "slabdata <active_slabs> <num_slabs> <sharedavail>\n")
CLEAN_CONF = "net.netfilter.nf_conntrack_tcp_timeout_established = 86400\n"


def kernel_tree(limit=262144, buckets=262144, count=10, ram=8 * GIB, ptr=8, header=HEADER_515,
           slab=256, timeouts=None, builtin=False, cmdline="ro quiet"):
    tree = nf_tree(count, limit, buckets)
    proc = tree["proc"]
    proc["meminfo"] = f"MemTotal:       {ram // 1024} kB\nMemFree:        1024 kB\n"
    proc["kallsyms"] = "0" * (2 * ptr) + " T _stext\n"
    if header:
        proc["net/stat/nf_conntrack"] = header + "\n" + " ".join(["0000000a"] * 17) + "\n"
    if slab:
        proc["slabinfo"] = SLAB_HEAD + (f"nf_conntrack          80    144    {slab}   16    1 "
                                        ": tunables    0    0    0 : slabdata      9      9  "
                                        "    0\n")
    values = {name: timeout.default for name, timeout in TIMEOUTS.items()}
    values["tcp_timeout_established"] = 86400
    values.update(timeouts or {})
    for name, value in values.items():
        proc[f"{NF}nf_conntrack_{name}"] = value
    proc["cmdline"] = cmdline + "\n"
    if builtin:
        del tree["sys"]["module/nf_conntrack/refcnt"]
    return tree


def root(files=None, systemd=True, clean=True):
    """A configuration tree: path -> text, or ('link', target)."""
    tree = {}
    if systemd:
        tree["usr/lib/systemd/systemd-sysctl"] = ""
    if clean:
        tree["etc/sysctl.d/90-conntrack.conf"] = CLEAN_CONF
        tree["etc/modules-load.d/conntrack.conf"] = "nf_conntrack\n"
    tree.update(files or {})
    return tree


def write_root(base, tree: dict) -> str:
    for rel, content in tree.items():
        path = os.path.join(base, rel)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        if os.path.lexists(path):
            os.remove(path)
        if isinstance(content, tuple):
            os.symlink(content[1], path)
        elif content is not None:
            with open(path, "w") as handle:
                handle.write(content)
    return str(base)


def write_host(base, kernel_tree, root_tree) -> list[str]:
    """Both trees under ``base``; returns the plugin's root arguments."""
    proc, sys_root = write_tree(os.path.join(str(base), "host"), kernel_tree)
    config = write_root(os.path.join(str(base), "cfg"), root_tree)
    return ["--proc-root", proc, "--sys-root", sys_root, "--config-root", config]
