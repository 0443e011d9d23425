"""check_conntrack_tuning: formulas, boot files and findings; fixture in, state and text out."""

from __future__ import annotations

import json
import os

import pyfakefs.helpers
import pytest
from conntrack_checks.checks.check_conntrack_tuning import Analysis, main, report_section
from conntrack_checks.kernel import bootconf, netns, sizing, sysctl
from kernel_trees import NF, write_tree
from tuning_trees import (
    GIB,
    HEADER_510,
    HEADER_OLD,
    MIB,
    kernel_tree,
    root,
    write_host,
    write_root,
)

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


# --- sysctl files in systemd-sysctl / procps order ---------------------------------

MAX = "net.netfilter.nf_conntrack_max"
SYSCTL_CASES = [
    # id, files, systemd?, expected (value, where) of the winning max line
    ("later-name-wins-across-dirs",
     {"usr/lib/sysctl.d/60-b.conf": f"{MAX} = 2\n", "etc/sysctl.d/50-a.conf": f"{MAX} = 1\n"},
     True, ("2", "/usr/lib/sysctl.d/60-b.conf:1")),
    ("etc-shadows-same-name-in-usr-lib",
     {"usr/lib/sysctl.d/50-a.conf": f"{MAX} = 1\n", "etc/sysctl.d/50-a.conf": f"{MAX} = 9\n"},
     True, ("9", "/etc/sysctl.d/50-a.conf:1")),
    ("run-shadows-usr-local-lib-and-lib",
     {"run/sysctl.d/50-a.conf": f"{MAX} = 3\n", "usr/local/lib/sysctl.d/50-a.conf":
      f"{MAX} = 4\n", "lib/sysctl.d/50-a.conf": f"{MAX} = 5\n"},
     True, ("3", "/run/sysctl.d/50-a.conf:1")),
    ("usr-local-lib-shadows-usr-lib",
     {"usr/local/lib/sysctl.d/50-a.conf": f"{MAX} = 4\n",
      "usr/lib/sysctl.d/50-a.conf": f"{MAX} = 6\n"}, True,
     ("4", "/usr/local/lib/sysctl.d/50-a.conf:1")),
    ("lib-sorts-among-the-others",
     {"lib/sysctl.d/70-c.conf": f"{MAX} = 7\n", "etc/sysctl.d/60-b.conf": f"{MAX} = 6\n"},
     True, ("7", "/lib/sysctl.d/70-c.conf:1")),
    ("dev-null-link-masks",
     {"usr/lib/sysctl.d/50-a.conf": f"{MAX} = 1\n", "etc/sysctl.d/50-a.conf":
      ("link", "/dev/null")}, True, None),
    ("sysctl-conf-through-99-link-then-later-name",
     {"etc/sysctl.conf": f"{MAX} = 1\n", "etc/sysctl.d/99-sysctl.conf":
      ("link", "../sysctl.conf"), "usr/lib/sysctl.d/99-zz.conf": f"{MAX} = 2\n"},
     True, ("2", "/usr/lib/sysctl.d/99-zz.conf:1")),
    ("sysctl-conf-link-wins-over-earlier-names",
     {"etc/sysctl.conf": f"# tuned\n{MAX} = 1\n", "etc/sysctl.d/99-sysctl.conf":
      ("link", "../sysctl.conf"), "etc/sysctl.d/50-a.conf": f"{MAX} = 2\n"},
     True, ("1", "/etc/sysctl.conf:2 (via /etc/sysctl.d/99-sysctl.conf)")),
    ("absolute-link-resolved-under-the-root",
     {"etc/sysctl.conf": f"{MAX} = 1\n", "etc/sysctl.d/99-sysctl.conf":
      ("link", "/etc/sysctl.conf")}, True,
     ("1", "/etc/sysctl.conf:1 (via /etc/sysctl.d/99-sysctl.conf)")),
    ("systemd-without-link-ignores-sysctl-conf",
     {"etc/sysctl.conf": f"{MAX} = 1\n", "etc/sysctl.d/50-a.conf": f"{MAX} = 2\n"},
     True, ("2", "/etc/sysctl.d/50-a.conf:1")),
    ("procps-reads-sysctl-conf-last",
     {"etc/sysctl.conf": f"{MAX} = 1\n", "usr/lib/sysctl.d/99-zz.conf": f"{MAX} = 2\n"},
     False, ("1", "/etc/sysctl.conf:1")),
    ("comments-spacing-slashes-dash",
     {"etc/sysctl.d/50-a.conf": f"# {MAX} = 1\n; {MAX} = 2\n\n   \t{MAX}=3   \n",
      "etc/sysctl.d/60-b.conf": "  net/netfilter/nf_conntrack_max\t=  4\n",
      "etc/sysctl.d/70-c.conf": f"-{MAX} = 5 \nnot an assignment\n"},
     True, ("5", "/etc/sysctl.d/70-c.conf:1")),
    ("not-conf-suffix-and-hidden-files-ignored",
     {"etc/sysctl.d/50-a.conf": f"{MAX} = 1\n", "etc/sysctl.d/90-b.conf.rpmsave":
      f"{MAX} = 2\n", "etc/sysctl.d/.99-c.conf": f"{MAX} = 3\n"},
     True, ("1", "/etc/sysctl.d/50-a.conf:1")),
    ("old-alias-counts-when-the-kernel-has-it",
     {"etc/sysctl.d/50-a.conf": "net.nf_conntrack_max = 8\n"}, True,
     ("8", "/etc/sysctl.d/50-a.conf:1")),
]


@pytest.mark.parametrize("files, systemd, expected", [c[1:] for c in SYSCTL_CASES],
                         ids=[c[0] for c in SYSCTL_CASES])
def test_sysctl_precedence(fs, files, systemd, expected):
    base = write_root("/cfg", root(files, systemd=systemd, clean=False))
    conf = bootconf.SysctlConfig(bootconf.ConfigRoot(base))
    line, _ = conf.effective("max", lambda path: True)
    assert (line.value, line.where) == expected if expected else line is None


@pytest.mark.parametrize("binary, expected", [
    (b"\x7fELF...sysctl.d\x00", ("2", "/usr/lib/sysctl.d/99-zz.conf:1")),  # upstream 207+
    (b"\x7fELF.../etc/sysctl.conf\x00", ("1", "/etc/sysctl.conf:1")),  # RHEL 7, before 207
])
def test_systemd_sysctl_that_reads_sysctl_conf_itself(fs, binary, expected):
    files = {"etc/sysctl.conf": f"{MAX} = 1\n", "usr/lib/sysctl.d/99-zz.conf": f"{MAX} = 2\n",
             "etc/sysctl.d/99-sysctl.conf": ("link", "../sysctl.conf")}
    base = write_root("/cfg", root(files, clean=False))
    with open(base + "/usr/lib/systemd/systemd-sysctl", "wb") as handle:
        handle.write(binary)
    line, _ = bootconf.SysctlConfig(bootconf.ConfigRoot(base)).effective("max", lambda p: True)
    assert (line.value, line.path + ":" + str(line.number)) == expected


def test_sysctl_key_normalization():
    assert bootconf.normalize_key(" net.netfilter.nf_conntrack_max ") == \
        "net/netfilter/nf_conntrack_max"
    assert bootconf.normalize_key("/net//netfilter/nf_conntrack_max") == \
        "net/netfilter/nf_conntrack_max"
    assert bootconf.normalize_key("net.ipv4.conf.eth0/100.rp_filter") == \
        "net/ipv4/conf/eth0.100/rp_filter"


@pytest.mark.parametrize("value, number", [
    ("262144", 262144), ("262144 # raised", 262144), ("262144\t", 262144),
    ("262144#x", None), ("lots", None), ("", None), ("-5", None), ("２", None),
])
def test_value_as_the_kernel_parses_it(value, number):
    assert bootconf.leading_int(value) == number


MODPROBE_CASES = [
    ("etc", {"etc/modprobe.d/nf.conf": "options nf_conntrack hashsize=32768\n"}, "",
     ("32768", "/etc/modprobe.d/nf.conf:1")),
    ("continuation-and-dash-name", {"etc/modprobe.d/nf.conf":
                                    "# comment\noptions nf-conntrack \\\n  acct=1 hashsize=4096\n"},
     "", ("4096", "/etc/modprobe.d/nf.conf:2")),
    ("alias-ip-conntrack", {"lib/modprobe.d/old.conf": "options ip_conntrack hashsize=8192\n"},
     "", ("8192", "/lib/modprobe.d/old.conf:1")),
    ("etc-shadows-lib", {"lib/modprobe.d/nf.conf": "options nf_conntrack hashsize=1\n",
                         "etc/modprobe.d/nf.conf": "options nf_conntrack hashsize=2\n"},
     "", ("2", "/etc/modprobe.d/nf.conf:1")),
    ("later-line-wins", {"run/modprobe.d/a.conf": "options nf_conntrack hashsize=1\n",
                         "usr/lib/modprobe.d/b.conf": "options nf_conntrack hashsize=3\n"},
     "", ("3", "/usr/lib/modprobe.d/b.conf:1")),
    ("cmdline-last", {"etc/modprobe.d/nf.conf": "options nf_conntrack hashsize=2\n"},
     "ro nf_conntrack.hashsize=65536", ("65536", "/proc/cmdline:1")),
    ("other-module-ignored", {"etc/modprobe.d/nf.conf": "options nf_nat hashsize=2\n"}, "",
     None),
]


@pytest.mark.parametrize("files, cmdline, expected", [c[1:] for c in MODPROBE_CASES],
                         ids=[c[0] for c in MODPROBE_CASES])
def test_modprobe_hashsize(fs, files, cmdline, expected):
    base = write_root("/cfg", files)
    lines = bootconf.modprobe_hashsize(bootconf.ConfigRoot(base), cmdline.split())
    got = (lines[-1].value, lines[-1].where) if lines else None
    assert got == expected


# --- the plugin: fixture in, exact first line and exit code out --------------------

OK_LINE = ("CONNTRACK TUNING OK - nothing to fix: max 262144 (1.00 x kernel default), 1.00 "
           "entries per bucket when full, full table 66.0 MiB = 0.8% of RAM, running values "
           "match the boot configuration, timeouts within limits")
PERSIST = "etc/sysctl.d/90-conntrack.conf"
KEEP_MAX = f"{MAX} = 4194304\nnet.netfilter.nf_conntrack_tcp_timeout_established = 86400\n"

PLUGIN_CASES = [
    # id, kernel changes, root files, argv, exit, first line (before " | ")
    ("ok-clean", {}, {}, [], 0, OK_LINE),
    ("warning-default-established-timeout",
     {"timeouts": {"tcp_timeout_established": 432000}}, {PERSIST: None}, [], 1,
     "CONNTRACK TUNING WARNING - tcp_timeout_established is 432000 s (5 days), above 86400 s "
     "[timeout-tcp-established]"),
    ("warning-max-set-at-runtime-only", {"limit": 524288}, {}, [], 1,
     "CONNTRACK TUNING WARNING - nf_conntrack_max 524288 is set at runtime only: the next boot "
     "gives 262144 [persist-max]"),
    ("warning-file-differs-from-live", {},
     {"etc/sysctl.d/80-max.conf": f"{MAX} = 524288\n"}, [], 1,
     "CONNTRACK TUNING WARNING - nf_conntrack_max is 262144 but /etc/sysctl.d/80-max.conf:1 "
     "sets 524288: changed since boot, or the file was not applied [persist-max]"),
    ("warning-later-vendor-file-wins", {"limit": 524288},
     {"etc/sysctl.d/80-max.conf": f"{MAX} = 524288\n",
      "usr/lib/sysctl.d/99-vendor.conf": f"{MAX} = 131072\n"}, [], 1,
     "CONNTRACK TUNING WARNING - nf_conntrack_max is 524288 but "
     "/usr/lib/sysctl.d/99-vendor.conf:1 sets 131072: changed since boot, or the file was not "
     "applied [persist-max]"),
    ("critical-memory-512mib", {"limit": 524288, "ram": 512 * MIB, "buckets": 4096},
     {PERSIST: f"{MAX} = 524288\nnet.netfilter.nf_conntrack_tcp_timeout_established = 86400\n"},
     ["--ignore", "max-vs-default"], 2,
     "CONNTRACK TUNING CRITICAL - a full table would pin 128.0 MiB, 25.0% of RAM (critical "
     "above 25%) [memory]; 1 more: hash-size (see -v)"),
    ("warning-memory-typical-entry-size-without-slabinfo",
     {"limit": 4194304, "slab": None}, {PERSIST: KEEP_MAX}, ["--ignore", "hash-size"], 1,
     "CONNTRACK TUNING WARNING - a full table would pin 1.3 GiB, 15.6% of RAM (warning above "
     "10%) [memory]"),
    ("ok-same-max-with-small-slab-objects", {"limit": 4194304, "slab": 128}, {PERSIST: KEEP_MAX},
     ["--ignore", "hash-size"], 0, None),
    ("warning-max-far-below-default", {"limit": 65536},
     {PERSIST: f"{MAX} = 65536\nnet.netfilter.nf_conntrack_tcp_timeout_established = 86400\n"},
     [], 1,
     "CONNTRACK TUNING WARNING - nf_conntrack_max 65536 is 0.25 x the kernel's default for this "
     "RAM (262144), below the default: the table fills sooner than the kernel would allow "
     "[max-vs-default]"),
    ("warning-hash-small-for-max-modprobe-persists-it", {"buckets": 16384},
     {"etc/modprobe.d/nf_conntrack.conf": "options nf_conntrack hashsize=16384\n",
      PERSIST: f"{MAX} = 262144\nnet.netfilter.nf_conntrack_tcp_timeout_established = 86400\n"},
     [], 1,
     "CONNTRACK TUNING WARNING - 16384 buckets for max 262144: 16.00 entries per bucket when "
     "full (above 8) [hash-size]"),
    ("warning-hashsize-param-makes-boot-max-8x", {"buckets": 16384},
     {"etc/modprobe.d/nf_conntrack.conf": "options nf_conntrack hashsize=16384\n"},
     ["--ignore", "hash-size"], 1,
     "CONNTRACK TUNING WARNING - nf_conntrack_max 262144 is set at runtime only: the next boot "
     "gives 131072 [persist-max]"),
    ("warning-dead-ip-conntrack-key", {},
     {"etc/sysctl.d/10-old.conf": "net.ipv4.netfilter.ip_conntrack_max = 65536\n"}, [], 1,
     "CONNTRACK TUNING WARNING - 1 conntrack sysctl line(s) name a key this kernel does not "
     "have: /etc/sysctl.d/10-old.conf:1 sets net.ipv4.netfilter.ip_conntrack_max [dead-key]"),
    ("warning-sysctl-conf-unread", {}, {"etc/sysctl.conf": f"{MAX} = 262144\n"}, [], 1,
     "CONNTRACK TUNING WARNING - /etc/sysctl.conf sets 1 conntrack key(s) but systemd-sysctl "
     "never reads it (no link to it in sysctl.d) [sysctl-conf-unread]"),
    ("ok-sysctl-conf-linked", {},
     {"etc/sysctl.conf": f"{MAX} = 262144\n", "etc/sysctl.d/99-sysctl.conf":
      ("link", "../sysctl.conf")}, [], 0, OK_LINE),
    ("warning-load-order", {}, {"etc/modules-load.d/conntrack.conf": None}, [], 1,
     "CONNTRACK TUNING WARNING - /etc/sysctl.d/90-conntrack.conf:1 sets "
     "net.netfilter.nf_conntrack_tcp_timeout_established but nf_conntrack is not loaded at "
     "boot: the setting is lost [load-order]"),
    ("ok-load-order-debian-etc-modules-nf-nat", {},
     {"etc/modules-load.d/conntrack.conf": None, "etc/modules": "# modules\nnf_nat\n"}, [], 0,
     OK_LINE),
    ("ok-load-order-cmdline", {"cmdline": "ro modules-load=br_netfilter,nf_conntrack"},
     {"etc/modules-load.d/conntrack.conf": None}, [], 0, OK_LINE),
    ("ok-load-order-udev-rule", {},
     {"etc/modules-load.d/conntrack.conf": None, "etc/udev/rules.d/90-ct.rules":
      'ACTION=="add", SUBSYSTEM=="module", KERNEL=="nf_conntrack", '
      'RUN+="/usr/lib/systemd/systemd-sysctl --prefix=/net/netfilter"\n'}, [], 0, OK_LINE),
    ("ok-load-order-built-in", {"builtin": True}, {"etc/modules-load.d/conntrack.conf": None},
     [], 0, OK_LINE),
    ("warning-el-iptables-unload", {},
     {"etc/sysconfig/iptables-config": '# EL7\nIPTABLES_MODULES=""\n'
                                       'IPTABLES_MODULES_UNLOAD="yes"\n'}, [], 1,
     "CONNTRACK TUNING WARNING - IPTABLES_MODULES_UNLOAD=yes: every iptables service restart "
     "unloads nf_conntrack and resets max, hash size and timeouts to the kernel defaults "
     "[iptables-unload]"),
    ("warning-el-iptables-unload-unset-defaults-to-yes", {},
     {"etc/sysconfig/ip6tables-config": "IP6TABLES_SAVE_ON_STOP=no\n"}, [], 1,
     "CONNTRACK TUNING WARNING - IP6TABLES_MODULES_UNLOAD=yes: every ip6tables service restart "
     "unloads nf_conntrack and resets max, hash size and timeouts to the kernel defaults "
     "[iptables-unload]"),
    ("ok-el-iptables-unload-no", {},
     {"etc/sysconfig/iptables-config": "IPTABLES_MODULES_UNLOAD='no'\n"}, [], 0, OK_LINE),
    ("ok-el-iptables-sysctl-reload", {},
     {"etc/sysconfig/iptables-config": 'IPTABLES_MODULES_UNLOAD=yes\n'
                                       'IPTABLES_SYSCTL_LOAD_LIST=".nf_conntrack .bridge-nf"\n'},
     [], 0, OK_LINE),
    ("ok-el-iptables-unload-with-nothing-tuned", {"timeouts": {"tcp_timeout_established": 432000}},
     {PERSIST: None, "etc/sysconfig/iptables-config": "IPTABLES_MODULES_UNLOAD=yes\n"},
     ["--ignore", "timeout-tcp-established"], 0, None),
    ("ok-el-iptables-built-in", {"builtin": True},
     {"etc/sysconfig/iptables-config": "IPTABLES_MODULES_UNLOAD=yes\n"}, [], 0, OK_LINE),
    ("warning-established-too-short", {"timeouts": {"tcp_timeout_established": 120}},
     {PERSIST: f"{MAX} = 262144\nnet.netfilter.nf_conntrack_tcp_timeout_established = 120\n"},
     [], 1, "CONNTRACK TUNING WARNING - tcp_timeout_established is 120 s (2 minutes), below "
            "300 s [timeout-tcp-established]"),
    ("warning-own-timeout-limit", {}, {},
     ["--timeout-limit", "nf_conntrack_tcp_timeout_established=300:43200"], 1,
     "CONNTRACK TUNING WARNING - tcp_timeout_established is 86400 s (1 day), above 43200 s "
     "[timeout-tcp-established]"),
    ("warning-worst-first-and-the-others-named",
     {"limit": 524288, "timeouts": {"udp_timeout": 600, "tcp_timeout_close_wait": 7200}}, {},
     [], 1,
     "CONNTRACK TUNING WARNING - nf_conntrack_max 524288 is set at runtime only: the next boot "
     "gives 262144 [persist-max]; 4 more: persist-tcp-close-wait, persist-udp, "
     "timeout-tcp-close-wait, timeout-udp (see -v)"),
    ("ok-ignore-patterns",
     {"limit": 524288, "timeouts": {"udp_timeout": 600, "tcp_timeout_close_wait": 7200}}, {},
     ["--ignore", "persist-*", "--ignore", "timeout-udp", "--ignore", "timeout-tcp-close-wait"], 0,
     "CONNTRACK TUNING OK - nothing to fix: max 524288 (2.00 x kernel default), 2.00 entries "
     "per bucket when full, full table 130.0 MiB = 1.6% of RAM, running values match the boot "
     "configuration, timeouts within limits"),
    ("warning-no-limit", {"limit": 0}, {PERSIST: f"{MAX} = 0\n"
                                        "net.netfilter.nf_conntrack_tcp_timeout_established ="
                                        " 86400\n"}, [], 1,
     "CONNTRACK TUNING WARNING - nf_conntrack_max is 0: the table has no limit, a flood of new "
     "flows can take the machine's memory [memory]"),
]


@pytest.mark.parametrize("changes, files, argv, code, first",
                         [c[1:] for c in PLUGIN_CASES], ids=[c[0] for c in PLUGIN_CASES])
def test_plugin(fs, run_main, changes, files, argv, code, first):
    args = write_host("/t", kernel_tree(**changes), root(files))
    got, out = run_main(main, *args, *argv)
    assert got == code, out
    if first is not None:
        assert out.split(" | ")[0] == first
    assert out.count("\n") == 1


def test_clean_host_perfdata(fs, run_main):
    code, out = run_main(main, *write_host("/t", kernel_tree(), root()))
    assert (code, out) == (0, OK_LINE + " | default_ratio=1;1:16;;0 findings=0;;;0 "
                              "full_load_factor=1;8;;0 full_table=69206016B;;;0 max=262144;;;0 "
                              "memory_share=0.806%;10;25;0\n")


def test_verbose_lists_every_finding_with_evidence_and_fixes(fs, run_main):
    changes = {"limit": 524288, "timeouts": {"udp_timeout": 600}}
    code, out = run_main(main, *write_host("/t", kernel_tree(**changes), root()), "-v")
    assert code == 1
    lines = out.splitlines()
    assert lines[0].startswith("CONNTRACK TUNING WARNING - nf_conntrack_max 524288 is set")
    assert ("warning: [persist-max] nf_conntrack_max 524288 is set at runtime only: the next "
            "boot gives 262144") in lines
    assert "  evidence: next boot: 262144 (no file sets it: the kernel's default for this RAM)" \
        in lines
    assert ("  now: sysctl -w net.netfilter.nf_conntrack_max=262144 (back to what the next "
            "boot gives)") in lines
    assert ("  persist: to keep 524288: add 'net.netfilter.nf_conntrack_max = 524288' to "
            "/etc/sysctl.d/90-conntrack.conf") in lines
    assert "warning: [timeout-udp] udp_timeout is 600 s (10 minutes), above 120 s" in lines
    assert "  now: sysctl -w net.netfilter.nf_conntrack_udp_timeout=120" in lines
    assert "nf_conntrack is loaded at boot by /etc/modules-load.d/conntrack.conf:1: " \
           "sysctl.d applies" in lines
    assert lines[-1].startswith("| default_ratio=2;1:16;;0 findings=3;;;0")


def test_fix_edits_the_winning_line_in_etc(fs, run_main):
    files = {"etc/sysctl.d/80-max.conf": f"# raised for the LB\n{MAX} = 524288\n"}
    _, out = run_main(main, *write_host("/t", kernel_tree(), root(files)), "-v")
    assert ("  persist: to keep 262144: change line 2 of /etc/sysctl.d/80-max.conf to "
            "'net.netfilter.nf_conntrack_max = 262144'") in out.splitlines()


def test_fix_goes_after_the_last_file_that_sets_the_key(fs, run_main):
    files = {"usr/lib/sysctl.d/95-vendor.conf": f"{MAX} = 131072\n"}
    _, out = run_main(main, *write_host("/t", kernel_tree(), root(files)), "-v")
    assert ("  persist: to keep 262144: add 'net.netfilter.nf_conntrack_max = 262144' to "
            "/etc/sysctl.d/99-zz-conntrack.conf") in out.splitlines()


def test_new_file_never_shadows_a_vendor_file_of_the_same_name(fs, run_main):
    files = {PERSIST: None, "usr/lib/sysctl.d/90-conntrack.conf": "kernel.foo = 1\n"}
    changes = {"timeouts": {"tcp_timeout_established": 432000}}
    _, out = run_main(main, *write_host("/t", kernel_tree(**changes), root(files)), "-v")
    assert ("  persist: add 'net.netfilter.nf_conntrack_tcp_timeout_established = 86400' to "
            "/etc/sysctl.d/99-zz-conntrack.conf") in out.splitlines()


def test_hash_fix_for_a_module_and_for_built_in(fs, run_main):
    files = {"etc/modprobe.d/nf_conntrack.conf": "options nf_conntrack hashsize=16384\n",
             PERSIST: f"{MAX} = 262144\n"}
    _, out = run_main(main, *write_host("/t", kernel_tree(buckets=16384), root(files)), "-v",
                      "--ignore", "timeout-*")
    assert "  now: sysctl -w net.netfilter.nf_conntrack_buckets=262144" in out.splitlines()
    assert ("  persist: change line 1 of /etc/modprobe.d/nf_conntrack.conf to 'options "
            "nf_conntrack hashsize=262144'") in out.splitlines()


def test_timeouts_of_other_namespaces_are_not_persistence_findings(fs, run_main):
    # --proc-root trees have no namespaces: the timeout persistence applies to the host only
    changes = {"timeouts": {"tcp_timeout_established": 7200}}
    code, out = run_main(main, *write_host("/t", kernel_tree(**changes), root()), "-v")
    assert "persist-tcp-established" in out and code == 1


WEB = netns.Namespace("web", "/run/netns/web")
PROCESS = netns.Namespace("ns4026532999", "/proc/1234/ns/net")
ANY_FILE = netns.Namespace("/run/docker/netns/abc", "/run/docker/netns/abc")


def analysed(monkeypatch, values: list) -> Analysis:
    """The analysis of a clean host whose namespaces hold these timeouts (``values`` is
    what the analysis keeps: changing it later changes what it sees)."""
    args = write_host("/t", kernel_tree(), root())
    monkeypatch.setattr(netns, "read_each", lambda *a, **k: (values, []))
    analysis = Analysis(sysctl.Roots(args[1], args[3]), args[5], [ns for ns, _ in values],
                        all_netns=True)
    analysis.run()
    return analysis


def host_namespace() -> netns.Namespace:
    host = netns.Namespace("host", "/proc/1/ns/net")
    host.host = True
    return host


@pytest.mark.parametrize("ns, enter", [
    (WEB, "ip netns exec web "),
    (PROCESS, "nsenter --net=/proc/1234/ns/net "),
    (ANY_FILE, "nsenter --net=/run/docker/netns/abc "),
])
def test_timeout_fix_in_another_namespace_enters_it_the_way_that_works(fs, monkeypatch, ns,
                                                                        enter):
    analysis = analysed(monkeypatch, [(host_namespace(), {"tcp_timeout_established": 86400}),
                                      (ns, {"tcp_timeout_established": 432000})])
    found = {f.id: f for f in analysis.findings}["timeout-tcp-established"]
    assert found.now == enter + "sysctl -w net.netfilter.nf_conntrack_tcp_timeout_established=86400"
    assert found.persist.startswith("set it where the namespace is created")


def test_tuned_at_runtime_looks_at_the_host_whatever_the_order(fs, monkeypatch):
    host = host_namespace()
    values = [(WEB, {"tcp_timeout_established": 7200}),
              (host, {"tcp_timeout_established": 432000})]
    analysis = analysed(monkeypatch, values)
    assert not analysis.tuned_at_runtime()
    values.reverse()
    values[0] = (host, {"tcp_timeout_established": 7200})
    assert analysis.tuned_at_runtime()


def test_an_inverted_timeout_limit_is_a_finding_without_a_value_to_set(fs, run_main):
    args = write_host("/t", kernel_tree(), root())
    code, out = run_main(main, *args, "--timeout-limit", "udp_timeout=@~:100", "-v")
    assert code == 1 and "udp_timeout is 30 s (30 s), inside ~:100 s" in out
    block = out.split("[timeout-udp]", 2)[2].split("\nwarning:")[0]
    assert "now:" not in block and "persist:" not in block


def test_module_not_loaded(fs, run_main):
    args = write_host("/t", {"proc": {"sys/net/netfilter/nf_log/2": "NONE"}, "sys": {}}, root())
    assert run_main(main, *args) == (
        0, "CONNTRACK TUNING OK - nf_conntrack is not loaded: no connections are tracked (no "
           "/t/host/proc/sys/net/netfilter/nf_conntrack_count)\n")
    assert run_main(main, *args, "--missing", "critical")[0] == 2


def test_missing_meminfo_is_one_line_unknown(fs, run_main):
    tree = kernel_tree()
    del tree["proc"]["meminfo"]
    code, out = run_main(main, *write_host("/t", tree, root()))
    assert (code, out) == (3, "CONNTRACK TUNING UNKNOWN - no /t/host/proc/meminfo: check "
                              "--proc-root\n")


@pytest.mark.parametrize("argv, words", [
    (["--timeout-limit", "tcp_timeout_bogus=5"], "is not NAME=RANGE with NAME one of"),
    (["--timeout-limit", "udp_timeout"], "is not NAME=RANGE"),
    (["--timeout-limit", "udp_timeout=1e3"], "'1e3' is not a Nagios range"),
    (["--memory-warning", "ten"], "argument --memory-warning: 'ten' is not a Nagios range"),
    (["--ignore"], "argument --ignore: expected one argument"),
])
def test_bad_arguments_are_one_line_unknown(run_main, argv, words):
    code, out = run_main(main, *argv)
    assert code == 3 and out.startswith("CONNTRACK TUNING UNKNOWN - ")
    assert words in out and out.count("\n") == 1


def test_report_section_is_json_data(fs):
    changes = {"limit": 524288, "timeouts": {"udp_timeout": 600}}
    write_host("/t", kernel_tree(**changes), root())
    section = report_section(sysctl.Roots("/t/host/proc", "/t/host/sys"), config_root="/t/cfg")
    again = json.loads(json.dumps(section))
    assert again["status"] == "warning"
    assert [f["id"] for f in again["findings"]] == ["persist-max", "persist-udp", "timeout-udp"]
    assert again["findings"][0]["fix"] == {
        "now": "sysctl -w net.netfilter.nf_conntrack_max=262144 (back to what the next boot "
               "gives)",
        "persist": "to keep 524288: add 'net.netfilter.nf_conntrack_max = 524288' to "
                   "/etc/sysctl.d/90-conntrack.conf"}
    facts = again["facts"]
    assert (facts["max"], facts["buckets"], facts["eras"]) == (524288, 262144, ["nf-5.15"])
    assert facts["kernel_default"] == [{"era": "nf-5.15", "buckets": 262144, "max": 262144}]
    assert facts["full_table_bytes"] == 524288 * 256 + 262144 * 8
    assert facts["timeouts"]["this namespace"]["udp_timeout"] == 600


def test_report_section_ignores_and_fails_like_the_plugin(fs):
    write_host("/t", kernel_tree(timeouts={"udp_timeout": 600}), root())
    roots = sysctl.Roots("/t/host/proc", "/t/host/sys")
    section = report_section(roots, config_root="/t/cfg", ignore=["*-udp"])
    assert (section["status"], section["findings"]) == ("ok", [])
    from conntrack_checks.errors import ModuleMissing

    with pytest.raises(ModuleMissing):
        report_section(sysctl.Roots("/nowhere/proc", "/nowhere/sys"))


def test_ip_conntrack_era_uses_its_own_names(fs, run_main):
    tree = {"proc": {
        "sys/net/ipv4/netfilter/ip_conntrack_count": 10,
        "sys/net/ipv4/netfilter/ip_conntrack_max": 65536,
        "sys/net/ipv4/netfilter/ip_conntrack_buckets": 8192,
        "sys/net/ipv4/netfilter/ip_conntrack_tcp_timeout_established": 432000,
        "meminfo": f"MemTotal: {4 * GIB // 1024} kB\n",
        "kallsyms": "ffffffff81000000 T _stext\n",
    }, "sys": {"module/ip_conntrack/refcnt": 1}}
    files = {PERSIST: None, "etc/sysconfig/iptables-config": 'IPTABLES_MODULES_UNLOAD="no"\n'}
    code, out = run_main(main, *write_host("/t", tree, root(files, systemd=False)), "-v")
    assert code == 1
    assert "max 65536: the next boot gives the same (no file sets it: the kernel's default for " \
           "this RAM)" in out
    assert "  now: sysctl -w net.ipv4.netfilter.ip_conntrack_tcp_timeout_established=86400" in out
    assert "echo" not in out  # buckets are what the kernel chose: no resize advice
    assert NF not in out


def test_glob_keys_are_named_not_evaluated(fs, run_main):
    files = {"etc/sysctl.d/50-glob.conf": "net.netfilter.nf_conntrack_*_timeout = 30\n"}
    code, out = run_main(main, *write_host("/t", kernel_tree(), root(files)), "-v")
    assert code == 0, out  # not a dead key, not an assignment of anything
    assert ("/etc/sysctl.d/50-glob.conf:1: 'net.netfilter.nf_conntrack_*_timeout = 30' is a "
            "glob: not evaluated") in out.splitlines()


def test_config_root_without_etc_is_one_line_unknown(fs, run_main):
    args = write_host("/t", kernel_tree(), {})
    fs.create_dir("/t/nothing")
    code, out = run_main(main, *args[:-1], "/t/nothing")
    assert (code, out) == (3, "CONNTRACK TUNING UNKNOWN - no etc directory under --config-root "
                              "/t/nothing: point it at the host's root directory\n")


def test_unknown_namespace_is_one_line_unknown(fs, run_main):
    fs.create_dir("/run/netns")
    code, out = run_main(main, *write_host("/t", kernel_tree(), root()), "--netns", "nope")
    assert (code, out) == (3, "CONNTRACK TUNING UNKNOWN - no network namespace named 'nope' "
                              "(`ip netns list` shows the names)\n")
