"""Reading count, max and buckets in every kernel generation (pyfakefs)."""

from __future__ import annotations

import os

import pyfakefs.helpers
import pytest
from conntrack_checks.errors import ModuleMissing, ProbeError
from conntrack_checks.kernel import sysctl
from kernel_trees import GENERATIONS, nf_tree, write_tree


@pytest.fixture
def roots(fs):
    def make(tree):
        proc, sys_root = write_tree("/host", tree)
        return sysctl.Roots(proc, sys_root)

    return make


@pytest.mark.parametrize("generation", sorted(GENERATIONS))
def test_each_generation_gives_count_max_buckets(roots, generation):
    tree, count, limit, buckets, count_file = GENERATIONS[generation]
    size = sysctl.read_table_size(roots(tree), buckets=True)
    assert (size.count, size.max, size.buckets) == (count, limit, buckets)
    assert size.sources["count"] == "/host/proc/" + count_file


def test_max_from_the_ipv4_alias_alone(roots):
    tree = {"proc": {"sys/net/ipv4/netfilter/ip_conntrack_count": 5,
                     "sys/net/ipv4/ip_conntrack_max": 4096}}
    size = sysctl.read_table_size(roots(tree))
    assert (size.count, size.max) == (5, 4096)
    assert size.sources["max"] == "/host/proc/sys/net/ipv4/ip_conntrack_max"


def test_max_from_proc_sys_net_when_netfilter_dir_lacks_it(roots):
    tree = nf_tree(1, 2, 3)
    del tree["proc"]["sys/net/netfilter/nf_conntrack_max"]
    size = sysctl.read_table_size(roots(tree))
    assert size.max == 2
    assert size.sources["max"] == "/host/proc/sys/net/nf_conntrack_max"


def test_buckets_fall_back_to_the_module_parameter(roots):
    tree = nf_tree(10, 100, 16384)
    del tree["proc"]["sys/net/netfilter/nf_conntrack_buckets"]
    size = sysctl.read_table_size(roots(tree), buckets=True)
    assert size.buckets == 16384
    assert size.sources["buckets"] == "/host/sys/module/nf_conntrack/parameters/hashsize"


def test_module_not_loaded(roots):
    r = roots({"proc": {"sys/net/netfilter/nf_log/2": "NONE"}, "sys": {"module/x/refcnt": 1}})
    with pytest.raises(ModuleMissing, match="not loaded"):
        sysctl.read_table_size(r)


def test_loaded_module_without_sysctls_is_not_called_missing(roots):
    r = roots({"proc": {}, "sys": {"module/nf_conntrack/refcnt": 1}})
    with pytest.raises(ProbeError, match=r"loaded but .* missing") as err:
        sysctl.read_table_size(r)
    assert not isinstance(err.value, ModuleMissing)


@pytest.mark.parametrize("content, words", [
    ("", "holds 'nothing', not a number"),
    ("\n", "holds 'nothing', not a number"),
    ("abc\n", "holds 'abc', not a number"),
    ("-5\n", "holds '-5', not a number"),
    ("12 34\n", "holds '12 34', not a number"),
    ("1.5\n", "holds '1.5', not a number"),
    ("99999999999999999999\n", "more than the kernel can store"),
    ("٣\n", "not a number"),
])
def test_garbage_count_names_file_and_fix(roots, content, words):
    tree = nf_tree(0, 100, 100)
    tree["proc"]["sys/net/netfilter/nf_conntrack_count"] = content
    with pytest.raises(ProbeError) as err:
        sysctl.read_table_size(roots(tree))
    assert words in str(err.value)
    assert "/host/proc/sys/net/netfilter/nf_conntrack_count" in str(err.value)


def test_whitespace_around_a_value_is_fine(roots):
    tree = nf_tree(0, 100, 100)
    tree["proc"]["sys/net/netfilter/nf_conntrack_count"] = "  42 \n"
    assert sysctl.read_table_size(roots(tree)).count == 42


def test_zero_buckets_is_rejected(roots):
    with pytest.raises(ProbeError, match="0 buckets"):
        sysctl.read_table_size(roots(nf_tree(1, 1, 0)), buckets=True)


@pytest.fixture
def as_user():
    """Files written so far stay root's; from the call on we are uid 1000."""

    def become():
        pyfakefs.helpers.set_uid(1000)
        pyfakefs.helpers.set_gid(1000)

    yield become
    pyfakefs.helpers.reset_ids()


def root_only(path, mode=0o600):
    os.chown(path, 0, 0)
    os.chmod(path, mode)


def test_permission_denied_names_file_and_fix(fs, as_user):
    proc, _ = write_tree("/host", nf_tree(1, 100, 100))
    root_only(proc + "/sys/net/netfilter/nf_conntrack_count", 0o000)
    as_user()
    with pytest.raises(ProbeError, match=r"cannot read .*nf_conntrack_count: permission "
                                         "denied; run the plugin as root"):
        sysctl.read_table_size(sysctl.Roots(proc, "/host/sys"))


def test_root_only_hashsize_is_not_needed_when_the_sysctl_exists(fs, as_user):
    proc, sys_root = write_tree("/host", nf_tree(1, 100, 64))
    root_only(sys_root + "/module/nf_conntrack/parameters/hashsize")
    as_user()
    assert sysctl.read_table_size(sysctl.Roots(proc, sys_root), buckets=True).buckets == 64


def test_root_only_hashsize_alone_is_permission_denied(fs, as_user):
    tree = nf_tree(1, 100, 64)
    del tree["proc"]["sys/net/netfilter/nf_conntrack_buckets"]
    proc, sys_root = write_tree("/host", tree)
    path = sys_root + "/module/nf_conntrack/parameters/hashsize"
    root_only(path)
    as_user()
    with pytest.raises(ProbeError, match="hashsize: permission denied"):
        sysctl.read_table_size(sysctl.Roots(proc, sys_root), buckets=True)


def test_usage_and_unlimited_max():
    assert sysctl.TableSize(50, 200, None, {}).usage == 25.0
    assert sysctl.TableSize(50, 0, None, {}).usage is None
