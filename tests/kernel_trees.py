"""What /proc and /sys hold in each kernel generation, as test fixtures.

Each tree maps a path under a root to its content. ``write_tree`` writes one
under a directory; it works on the real file system and under pyfakefs.
"""

from __future__ import annotations

import os

NF = "sys/net/netfilter/"


def nf_tree(count, limit, buckets, hashsize=None, extra=None, legacy_max=True):
    proc = {
        NF + "nf_conntrack_count": count,
        NF + "nf_conntrack_max": limit,
        NF + "nf_conntrack_buckets": buckets,
        NF + "nf_log/2": "NONE",
    }
    if legacy_max:
        proc["sys/net/nf_conntrack_max"] = limit
    proc.update(extra or {})
    sys_files = {
        "module/nf_conntrack/parameters/hashsize": hashsize or buckets,
        "module/nf_conntrack/refcnt": 3,
    }
    return {"proc": proc, "sys": sys_files}


# generation -> (tree, expected count, max, buckets, file that gives the count)
GENERATIONS = {
    # RHEL 5: ip_conntrack, 8 entries per bucket, the /proc/sys/net/ipv4 alias.
    "2.6.18-ip_conntrack": (
        {
            "proc": {
                "sys/net/ipv4/netfilter/ip_conntrack_count": 7001,
                "sys/net/ipv4/netfilter/ip_conntrack_max": 65536,
                "sys/net/ipv4/netfilter/ip_conntrack_buckets": 8192,
                "sys/net/ipv4/ip_conntrack_max": 65536,
            },
            "sys": {"module/ip_conntrack/parameters/hashsize": 8192},
        },
        7001, 65536, 8192, "sys/net/ipv4/netfilter/ip_conntrack_count",
    ),
    # nf_conntrack 2.6.2x-3.x with PROC_COMPAT: both names, nf wins.
    "3.10-el7": (
        nf_tree(30000, 65536, 16384, extra={
            "sys/net/ipv4/netfilter/ip_conntrack_count": 30000,
            "sys/net/ipv4/netfilter/ip_conntrack_max": 65536,
        }),
        30000, 65536, 16384, NF + "nf_conntrack_count",
    ),
    "4.19": (nf_tree(52000, 262144, 65536), 52000, 262144, 65536, NF + "nf_conntrack_count"),
    "5.10": (nf_tree(1, 262144, 65536), 1, 262144, 65536, NF + "nf_conntrack_count"),
    "5.15": (nf_tree(240000, 262144, 262144), 240000, 262144, 262144, NF + "nf_conntrack_count"),
    # 6.17+: the same files; only the log wording changed.
    "6.18": (nf_tree(0, 1048576, 1048576, legacy_max=False), 0, 1048576, 1048576,
             NF + "nf_conntrack_count"),
}


def write_tree(base, tree: dict) -> tuple[str, str]:
    """Write ``tree`` under ``base``; returns (proc root, sys root)."""
    roots = []
    for part in ("proc", "sys"):
        root = os.path.join(str(base), part)
        os.makedirs(root, exist_ok=True)
        for rel, content in tree.get(part, {}).items():
            path = os.path.join(root, rel)
            os.makedirs(os.path.dirname(path), exist_ok=True)
            with open(path, "w") as handle:
                handle.write(f"{content}\n" if isinstance(content, int) else content)
        roots.append(root)
    return roots[0], roots[1]
