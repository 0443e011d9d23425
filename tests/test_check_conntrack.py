"""check_conntrack and check_conntrack_hash: fixture in, state and output out."""

from __future__ import annotations

import pytest
from conntrack_checks.checks import check_conntrack, check_conntrack_hash
from kernel_trees import GENERATIONS, nf_tree, write_tree


def roots_args(proc, sys_root):
    return ["--proc-root", proc, "--sys-root", sys_root]


@pytest.fixture
def host(fs):
    """Write a tree under /host; returns the --proc-root/--sys-root arguments."""

    def make(tree):
        return roots_args(*write_tree("/host", tree))

    return make


CONNTRACK_CASES = [
    # id (starts with the expected state), tree, extra argv, exit, exact stdout
    ("ok-2.6.18", GENERATIONS["2.6.18-ip_conntrack"][0], [], 0,
     "CONNTRACK OK - 7001 of 65536 entries (10.7%) | count=7001;52428;58982;0;65536 "
     "max=65536;;;0 usage=10.683%;80;90;0;100\n"),
    ("ok-3.10", GENERATIONS["3.10-el7"][0], [], 0,
     "CONNTRACK OK - 30000 of 65536 entries (45.8%) | count=30000;52428;58982;0;65536 "
     "max=65536;;;0 usage=45.776%;80;90;0;100\n"),
    ("ok-6.18-empty", GENERATIONS["6.18"][0], [], 0,
     "CONNTRACK OK - 0 of 1048576 entries (0.0%) | count=0;838860;943718;0;1048576 "
     "max=1048576;;;0 usage=0%;80;90;0;100\n"),
    ("critical-5.15", GENERATIONS["5.15"][0], [], 2,
     "CONNTRACK CRITICAL - 240000 of 262144 entries (91.6%, critical above 90%) | "
     "count=240000;209715;235929;0;262144 max=262144;;;0 usage=91.553%;80;90;0;100\n"),
    ("ok-exactly-80-percent", nf_tree(800, 1000, 1000), [], 0,
     "CONNTRACK OK - 800 of 1000 entries (80.0%) | count=800;800;900;0;1000 "
     "max=1000;;;0 usage=80%;80;90;0;100\n"),
    ("warning-just-above-80", nf_tree(801, 1000, 1000), [], 1,
     "CONNTRACK WARNING - 801 of 1000 entries (80.1%, warning above 80%) | "
     "count=801;800;900;0;1000 max=1000;;;0 usage=80.1%;80;90;0;100\n"),
    ("critical-full-table", nf_tree(1000, 1000, 1000), [], 2,
     "CONNTRACK CRITICAL - 1000 of 1000 entries (100.0%, critical above 90%) | "
     "count=1000;800;900;0;1000 max=1000;;;0 usage=100%;80;90;0;100\n"),
    ("warning-own-percent", nf_tree(500, 1000, 1000), ["-w", "40", "-c", "60.5"], 1,
     "CONNTRACK WARNING - 500 of 1000 entries (50.0%, warning above 40%) | "
     "count=500;400;605;0;1000 max=1000;;;0 usage=50%;40;60.5;0;100\n"),
    ("warning-count-replaces-percent", nf_tree(600, 1000, 1000),
     ["--warning-count", "500", "--critical-count", "900"], 1,
     "CONNTRACK WARNING - 600 of 1000 entries (60.0%, warning above 500) | "
     "count=600;500;900;0;1000 max=1000;;;0 usage=60%;;;0;100\n"),
    ("ok-count-only-no-percent-default", nf_tree(850, 1000, 1000),
     ["--critical-count", "900"], 0,
     "CONNTRACK OK - 850 of 1000 entries (85.0%) | count=850;;900;0;1000 "
     "max=1000;;;0 usage=85%;;;0;100\n"),
    ("critical-both-styles-worst-wins", nf_tree(850, 1000, 1000),
     ["-w", "95", "-c", "99", "--critical-count", "800"], 2,
     "CONNTRACK CRITICAL - 850 of 1000 entries (85.0%, critical above 800) | "
     "count=850;;800;0;1000 max=1000;;;0 usage=85%;95;99;0;100\n"),
    ("critical-inverted-range", nf_tree(5, 1000, 1000), ["-c", "@0:1"], 2,
     "CONNTRACK CRITICAL - 5 of 1000 entries (0.5%, critical inside 0:1%) | "
     "count=5;800;@10;0;1000 max=1000;;;0 usage=0.5%;80;@1;0;100\n"),
    ("warning-low-end-range", nf_tree(5, 1000, 1000), ["-w", "1:", "-c", "~:"], 1,
     "CONNTRACK WARNING - 5 of 1000 entries (0.5%, warning below 1%) | "
     "count=5;10:;~:;0;1000 max=1000;;;0 usage=0.5%;1:;~:;0;100\n"),
    ("warning-expect-max-lost", nf_tree(10, 65536, 16384), ["--expect-max", "262144"], 1,
     "CONNTRACK WARNING - 10 of 65536 entries (0.0%); nf_conntrack_max is 65536, expected "
     "262144: a reboot, module reload or firewall restart reset it; persist it with "
     "'net.netfilter.nf_conntrack_max = 262144' in /etc/sysctl.d/90-conntrack.conf | "
     "count=10;52428;58982;0;65536 "
     "max=65536;;;0 usage=0.015%;80;90;0;100\n"),
    ("ok-expect-max-matches", nf_tree(10, 65536, 16384), ["--expect-max", "65536"], 0,
     "CONNTRACK OK - 10 of 65536 entries (0.0%) | count=10;52428;58982;0;65536 "
     "max=65536;;;0 usage=0.015%;80;90;0;100\n"),
    ("ok-unlimited-max", nf_tree(5, 0, 1024), [], 0,
     "CONNTRACK OK - 5 entries, no limit (nf_conntrack_max is 0) | count=5;;;0 max=0;;;0\n"),
    ("critical-unlimited-max-count-threshold", nf_tree(5000, 0, 1024),
     ["--critical-count", "4000"], 2,
     "CONNTRACK CRITICAL - 5000 entries, no limit (nf_conntrack_max is 0) (critical above "
     "4000) | count=5000;;4000;0 max=0;;;0\n"),
]


@pytest.mark.parametrize("tree, argv, code, out",
                         [c[1:] for c in CONNTRACK_CASES], ids=[c[0] for c in CONNTRACK_CASES])
def test_check_conntrack(host, run_main, tree, argv, code, out):
    assert run_main(check_conntrack.main, *host(tree), *argv) == (code, out)


NOT_LOADED = {"proc": {"sys/net/netfilter/nf_log/2": "NONE"}, "sys": {}}


@pytest.mark.parametrize("missing, code, state", [
    (None, 0, "OK"), ("ok", 0, "OK"), ("warning", 1, "WARNING"),
    ("critical", 2, "CRITICAL"), ("unknown", 3, "UNKNOWN"),
])
@pytest.mark.parametrize("main, name", [(check_conntrack.main, "CONNTRACK"),
                                        (check_conntrack_hash.main, "CONNTRACK HASH")])
def test_module_not_loaded_follows_missing(host, run_main, main, name, missing, code, state):
    argv = host(NOT_LOADED) + ([] if missing is None else ["--missing", missing])
    assert run_main(main, *argv) == (
        code, f"{name} {state} - nf_conntrack is not loaded: no connections are tracked "
              "(no /host/proc/sys/net/netfilter/nf_conntrack_count)\n")


@pytest.mark.parametrize("main, name", [(check_conntrack.main, "CONNTRACK"),
                                        (check_conntrack_hash.main, "CONNTRACK HASH")])
@pytest.mark.parametrize("field, content", [
    ("nf_conntrack_count", "garbage\n"), ("nf_conntrack_max", ""),
    ("nf_conntrack_max", "-1\n"), ("nf_conntrack_max", "18446744073709551616\n"),
])
def test_garbage_is_one_line_unknown(host, run_main, main, name, field, content):
    tree = nf_tree(1, 100, 100)
    tree["proc"][f"sys/net/netfilter/{field}"] = content
    code, out = run_main(main, *host(tree))
    assert code == 3
    assert out.startswith(f"{name} UNKNOWN - /host/proc/sys/net/netfilter/{field} holds ")
    assert out.count("\n") == 1 and "Traceback" not in out


HASH_CASES = [
    ("ok-4.19", GENERATIONS["4.19"][0], [], 0,
     "CONNTRACK HASH OK - 65536 buckets for max 262144: 4.00 entries per bucket when "
     "full, 0.79 now (52000 entries) | buckets=65536;;;0 count=52000;;;0 "
     "full_load_factor=4;8;;0 load_factor=0.793;8;32;0\n"),
    ("ok-2.6.18-eight-per-bucket", GENERATIONS["2.6.18-ip_conntrack"][0], [], 0,
     "CONNTRACK HASH OK - 8192 buckets for max 65536: 8.00 entries per bucket when full, "
     "0.85 now (7001 entries) | buckets=8192;;;0 count=7001;;;0 full_load_factor=8;8;;0 "
     "load_factor=0.855;8;32;0\n"),
    ("warning-full-16", nf_tree(100, 262144, 16384), [], 1,
     "CONNTRACK HASH WARNING - 16384 buckets for max 262144: 16.00 entries per bucket "
     "when full (warning above 8), 0.01 now (100 entries) | buckets=16384;;;0 "
     "count=100;;;0 full_load_factor=16;8;;0 load_factor=0.006;8;32;0\n"),
    ("critical-now-39", nf_tree(40000, 65536, 1024), [], 2,
     "CONNTRACK HASH CRITICAL - 1024 buckets for max 65536: 64.00 entries per bucket when "
     "full (warning above 8), 39.06 now (40000 entries, critical above 32) | "
     "buckets=1024;;;0 count=40000;;;0 full_load_factor=64;8;;0 "
     "load_factor=39.062;8;32;0\n"),
    ("critical-full-option", nf_tree(100, 262144, 16384), ["--critical-full", "12"], 2,
     "CONNTRACK HASH CRITICAL - 16384 buckets for max 262144: 16.00 entries per bucket "
     "when full (critical above 12), 0.01 now (100 entries) | buckets=16384;;;0 "
     "count=100;;;0 full_load_factor=16;8;12;0 load_factor=0.006;8;32;0\n"),
]


@pytest.mark.parametrize("tree, argv, code, out",
                         [c[1:] for c in HASH_CASES], ids=[c[0] for c in HASH_CASES])
def test_check_conntrack_hash(host, run_main, tree, argv, code, out):
    assert run_main(check_conntrack_hash.main, *host(tree), *argv) == (code, out)


def test_hash_verbose_says_sources_and_how_to_resize(host, run_main):
    code, out = run_main(check_conntrack_hash.main, *host(nf_tree(100, 262144, 16384)), "-v")
    assert code == 1
    lines = out.splitlines()
    assert lines[0].startswith("CONNTRACK HASH WARNING - 16384 buckets")
    assert "warning: full_load_factor: warning above 8" in lines
    assert "buckets from /host/proc/sys/net/netfilter/nf_conntrack_buckets" in lines
    assert "count from /host/proc/sys/net/netfilter/nf_conntrack_count" in lines
    assert any("sysctl -w net.netfilter.nf_conntrack_buckets=262144" in line
               and "options nf_conntrack hashsize=262144" in line for line in lines)
    assert lines[-1].startswith("| buckets=16384")


def test_conntrack_verbose_names_each_file(host, run_main):
    tree = GENERATIONS["2.6.18-ip_conntrack"][0]
    code, out = run_main(check_conntrack.main, *host(tree), "-v")
    assert code == 0
    assert "max from /host/proc/sys/net/ipv4/netfilter/ip_conntrack_max" in out
    assert "count from /host/proc/sys/net/ipv4/netfilter/ip_conntrack_count" in out


def test_advice_to_raise_the_limit_when_half_full(host, run_main):
    code, out = run_main(check_conntrack.main, *host(nf_tree(950, 1000, 1000)), "-v")
    assert code == 2
    assert ("to raise the limit now: sysctl -w net.netfilter.nf_conntrack_max=2000; to keep "
            "it: add 'net.netfilter.nf_conntrack_max = 2000' to "
            "/etc/sysctl.d/90-conntrack.conf") in out


@pytest.mark.parametrize("argv, words", [
    (["--proc-root", "/nonexistent"], "argument --proc-root: '/nonexistent' is not a directory"),
    (["--sys-root", "/etc/hostname"], "argument --sys-root: '/etc/hostname' is not a directory"),
    (["-w", "1e3"], "argument -w/--warning: '1e3' is not a Nagios range"),
    (["-c", ""], "argument -c/--critical: '' is not a Nagios range"),
    (["-c", "20:10"], "argument -c/--critical: '20:10': start 20 must not be greater than end 10"),
    (["-w", "10:~"], "'10:~' is not a Nagios range"),
    (["-w", "1:2:3"], "'1:2:3' is not a Nagios range"),
    (["-t", "abc"], "argument -t/--timeout: 'abc' is not a whole number above 0"),
    (["-t", "0.5"], "'0.5' is not a whole number above 0"),
    (["--expect-max", "-1"], "argument --expect-max: '-1' is not a whole number"),
    (["--expect-max", "lots"], "argument --expect-max: 'lots' is not a whole number"),
    (["--missing", "maybe"], "argument --missing: invalid choice: 'maybe'"),
    (["--netns", "a", "--all-netns"], "argument --all-netns: not allowed with argument --netns"),
    (["--bogus"], "unrecognized arguments: --bogus"),
    (["extra"], "unrecognized arguments: extra"),
])
def test_bad_arguments_are_one_line_unknown(run_main, argv, words):
    code, out = run_main(check_conntrack.main, *argv)
    assert code == 3
    assert out.startswith("CONNTRACK UNKNOWN - ")
    assert words in out
    assert out.endswith(" (see --help)\n") and out.count("\n") == 1


@pytest.mark.parametrize("main", [check_conntrack.main, check_conntrack_hash.main])
def test_help_and_version_exit_unknown(run_main, main):
    code, out = run_main(main, "--help")
    assert code == 3 and "--proc-root DIR" in out and "--all-netns" in out
    code, out = run_main(main, "--version")
    assert code == 3 and "(conntrack-checks) 0." in out


def test_hash_with_a_bucket_per_entry_has_nothing_to_change(host, run_main):
    code, out = run_main(check_conntrack_hash.main, *host(nf_tree(10, 1000, 1024)), "-v")
    assert code == 0
    assert "at least one bucket per entry: nothing to change" in out.splitlines()
    assert "sysctl -w" not in out
