"""kernel/sizing.py: the kernel's default size per generation, the generation by content,
pointer size and the slab's object size; fixture trees in, numbers out."""

from __future__ import annotations

import os

import pyfakefs.helpers
import pytest
from conntrack_checks.kernel import sizing, sysctl
from kernel_trees import write_tree
from tuning_trees import GIB, HEADER_510, HEADER_OLD, MIB, kernel_tree

# era, RAM, pointer bytes, hashsize=, expected buckets, expected max
FORMULA = [
    ("nf-5.15", 64 * MIB, 8, None, 1024, 1024),  # minimum 1024
    ("nf-5.15", 512 * MIB, 8, None, 4096, 4096),
    ("nf-5.15", 700 * MIB, 8, None, 5632, 5632),  # 5600 rounded up to 512s
    ("nf-5.15", GIB, 8, None, 8192, 8192),  # not above 1 GiB
    ("nf-5.15", 2 * GIB, 8, None, 65536, 65536),
    ("nf-5.15", 4 * GIB, 8, None, 65536, 65536),  # not above 4 GiB
    ("nf-5.15", 8 * GIB, 8, None, 262144, 262144),
    ("nf-5.15", 1024 * GIB, 8, None, 262144, 262144),
    ("nf-5.15", 24684092 * 1024, 8, None, 262144, 262144),
    ("nf-5.15", 512 * MIB, 4, None, 8192, 8192),  # 4-byte bucket heads
    ("nf-5.15", 8 * GIB, 4, None, 65536, 65536),  # 32-bit: no 262144 step
    ("nf-5.15", 8 * GIB, 8, 100000, 100352, 802816),  # hashsize= rounded, max 8x
    ("nf-5.15", 2 * GIB, 4, 1000, 1024, 8192),  # 32-bit pages hold 1024 heads
    ("nf-4", 64 * MIB, 8, None, 512, 2048),
    ("nf-4", 512 * MIB, 8, None, 4096, 16384),
    ("nf-4", 2 * GIB, 8, None, 16384, 65536),
    ("nf-4", 8 * GIB, 8, None, 65536, 262144),
    ("nf-4", 1024 * GIB, 8, None, 65536, 262144),
    ("nf-4", 512 * MIB, 4, None, 8192, 32768),
    ("nf-4", 8 * GIB, 4, None, 65536, 262144),
    ("nf-4", 8 * GIB, 8, 16384, 16384, 131072),
    ("nf-2.6", 512 * MIB, 8, None, 4096, 16384),
    ("nf-2.6", 8 * GIB, 8, None, 16384, 65536),
    ("nf-2.6", 256 * MIB, 4, None, 4096, 16384),
    ("ip_conntrack", 512 * MIB, 8, None, 2048, 16384),  # list_head: two pointers
    ("ip_conntrack", 512 * MIB, 4, None, 4096, 32768),
    ("ip_conntrack", 2 * GIB, 4, None, 8192, 65536),
    ("ip_conntrack", 16 * MIB, 4, None, 128, 1024),
]


@pytest.mark.parametrize("era, ram, ptr, hashsize, buckets, limit", FORMULA)
def test_kernel_default_formula(era, ram, ptr, hashsize, buckets, limit):
    assert sizing.ERAS[era].default(ram, ptr, hashsize) == (buckets, limit)


@pytest.mark.parametrize("changes, eras", [
    ({}, ["nf-5.15"]),
    ({"net/stat/nf_conntrack": HEADER_510 + "\n"}, ["nf-4"]),
    ({"net/stat/nf_conntrack": HEADER_OLD + "\n"}, ["nf-4"]),  # writable buckets: 4.8+
    ({"net/stat/nf_conntrack": None}, ["nf-4", "nf-5.15"]),
    ({"net/stat/nf_conntrack": HEADER_OLD + "\n", "mode": 0o444}, ["nf-2.6", "nf-4"]),
])
def test_era_by_content(fs, changes, eras):
    tree = kernel_tree()
    mode = changes.pop("mode", None)
    for rel, content in changes.items():
        if content is None:
            del tree["proc"][rel]
        else:
            tree["proc"][rel] = content
    proc, sys_root = write_tree("/host", tree)
    if mode:
        os.chmod(proc + "/sys/net/netfilter/nf_conntrack_buckets", mode)
    assert sizing.detect_eras(sysctl.Roots(proc, sys_root))[0] == eras


def test_era_of_ip_conntrack(fs):
    proc, sys_root = write_tree("/host", {"proc": {
        "sys/net/ipv4/netfilter/ip_conntrack_max": 65536}})
    assert sizing.detect_eras(sysctl.Roots(proc, sys_root))[0] == ["ip_conntrack"]


@pytest.mark.parametrize("kallsyms, ptr", [
    ("ffffffff81000000 T _stext\n", 8), ("c1000000 T _stext\n", 4),
    ("0000000000000000 T _stext\n", 8),  # addresses hidden from users, width stays
])
def test_pointer_size_from_kallsyms(fs, kallsyms, ptr):
    proc, sys_root = write_tree("/host", {"proc": {"kallsyms": kallsyms}})
    assert sizing.pointer_size(sysctl.Roots(proc, sys_root))[0] == ptr


@pytest.mark.parametrize("slabinfo, objsize, held", [
    ("nf_conntrack  80 144 256 16 1 : tunables 0 0 0 : slabdata 9 9 0\n", 256, 9 * 4096),
    ("nf_conntrack_ffff88003a5b0000  5 24 304 13 1 : tunables 0 0 0 : slabdata 2 2 0\n"
     "nf_conntrack_ffffffff81a8c8c0  9 26 304 13 1 : tunables 0 0 0 : slabdata 2 2 0\n",
     304, 4 * 4096),  # 2.6.3x-4.6: a cache per namespace
    ("ip_conntrack  7 10 384 10 1 : tunables 54 27 8 : slabdata 1 1 0\n"
     "ip_conntrack_expect 0 0 136 28 1 : tunables 120 60 8 : slabdata 0 0 0\n", 384, 4096),
])
def test_slab_object_size(fs, slabinfo, objsize, held):
    proc, sys_root = write_tree("/host", {"proc": {"slabinfo": "slabinfo - version: 2.1\n"
                                                               + slabinfo}})
    slab = sizing.read_slab(sysctl.Roots(proc, sys_root))
    assert (slab.objsize, slab.entry_bytes, slab.bytes_now) == (objsize, objsize, held)


def test_slab_from_sysfs_first(fs):
    proc, sys_root = write_tree("/host", {"proc": {"slabinfo": "nf_conntrack 1 1 999 1 1\n"},
                                          "sys": {"kernel/slab/nf_conntrack/slab_size": 320,
                                                  "kernel/slab/nf_conntrack/objects": "70 N0=70",
                                                  "kernel/slab/nf_conntrack/slabs": "6 N0=6",
                                                  "kernel/slab/nf_conntrack/order": 1}})
    slab = sizing.read_slab(sysctl.Roots(proc, sys_root))
    assert (slab.objsize, slab.active, slab.bytes_now) == (320, 70, 6 * 8192)
    assert slab.source == "/host/sys/kernel/slab/nf_conntrack/slab_size"


def test_slab_absent_or_root_only_falls_back_to_typical_size(fs):
    proc, sys_root = write_tree("/host", {"proc": {"meminfo": "MemTotal: 1 kB\n"}})
    roots = sysctl.Roots(proc, sys_root)
    assert sizing.read_slab(roots).entry_bytes == 320
    fs.create_file(proc + "/slabinfo", contents="x", st_mode=0o100400)
    os.chown(proc + "/slabinfo", 0, 0)
    pyfakefs.helpers.set_uid(1000)
    try:
        slab = sizing.read_slab(roots)
    finally:
        pyfakefs.helpers.reset_ids()
    assert (slab.objsize, slab.entry_bytes) == (None, 320)
    assert slab.reason == ("/host/sys/kernel/slab/nf_conntrack and /host/proc/slabinfo are "
                           "readable by root only")
