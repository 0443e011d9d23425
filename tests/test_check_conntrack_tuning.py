"""check_conntrack_tuning through main(): fixture trees in, exact first line, -v and exit code out.

The library below it has its own tests: test_sizing, test_bootconf, test_tuning_rules.
"""

from __future__ import annotations

import pytest
from conntrack_checks.checks.check_conntrack_tuning import main
from conntrack_checks.tuning.findings import finding_ids
from kernel_trees import NF
from tuning_trees import GIB, MIB, kernel_tree, root, write_host

MAX = "net.netfilter.nf_conntrack_max"

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
    if code:
        assert out.split(" | ")[0].split("[")[1].split("]")[0] in finding_ids()


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
    (["--ignore", "timeout-udp-streams"], "argument --ignore: 'timeout-udp-streams' matches no "
                                          "finding id (persist-max, persist-buckets, "),
    (["--ignore", "persist"], "'persist' matches no finding id"),
])
def test_bad_arguments_are_one_line_unknown(run_main, argv, words):
    code, out = run_main(main, *argv)
    assert code == 3 and out.startswith("CONNTRACK TUNING UNKNOWN - ")
    assert words in out and out.count("\n") == 1


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
