"""Deltas between runs: wraps at 2^32, restarts, reboots, new namespaces, clocks."""

from __future__ import annotations

import pytest
from conntrack_checks import deltas
from conntrack_checks.kernel.ctstats import Snapshot

NAMES = ["drop", "early_drop", "insert_failed"]


def snap(*cpus, source="proc"):
    return Snapshot(source, "/proc/net/stat/nf_conntrack", NAMES,
                    [(i, dict(zip(NAMES, values))) for i, values in enumerate(cpus)])


def base(*cpus, clock=100.0, inode=7, source="proc"):
    return deltas.entry(snap(*cpus, source=source), inode, clock)


def test_plain_deltas_and_rates():
    change = deltas.compare(base((10, 0, 1), (5, 0, 0)), snap((40, 2, 1), (65, 0, 3)),
                            7, 400.0, False)
    assert not change.baseline and change.notes == []
    assert change.deltas == {"drop": 90, "early_drop": 2, "insert_failed": 3}
    assert change.per_cpu == {0: {"drop": 30, "early_drop": 2, "insert_failed": 0},
                              1: {"drop": 60, "early_drop": 0, "insert_failed": 3}}
    assert change.elapsed == 300.0
    assert change.rate("drop", "second") == pytest.approx(0.3)
    assert change.rate("drop", "minute") == pytest.approx(18.0)
    assert change.rate("drop", "check") == 90


def test_first_run_is_a_baseline():
    change = deltas.compare(None, snap((1, 2, 3)), 7, 1.0, None)
    assert change.baseline and change.deltas == {} and change.notes == []


def test_wrap_at_2_32_counts_across_the_wrap():
    top = 2**32 - 16
    change = deltas.compare(base((top, 0, 0)), snap((0x10, 0, 0)), 7, 160.0, False)
    assert change.deltas["drop"] == 32
    assert change.notes == ["drop on cpu0 wrapped at 2^32"]


def test_a_decrease_is_a_restart_counted_from_zero():
    change = deltas.compare(base((1000, 5, 5), (7, 0, 0)), snap((3, 0, 1), (2, 0, 0)),
                            7, 160.0, False)
    assert change.deltas == {"drop": 5, "early_drop": 0, "insert_failed": 1}
    assert change.notes == ["drop on cpu0 went back from 1000 to 3 (nf_conntrack reloaded?): "
                            "counted from 0"]
    assert change.elapsed == 60.0


def test_reboot_counts_from_zero_without_a_rate():
    change = deltas.compare(base((1000, 0, 0), clock=99999.0), snap((4, 0, 0)), 7, 20.0, True)
    assert change.deltas["drop"] == 4
    assert change.elapsed is None and change.rate("drop", "second") is None
    assert change.notes == ["the machine rebooted since the last check: counted from 0"]


def test_unknown_boot_and_a_clock_that_went_back_is_a_reboot():
    change = deltas.compare(base((1000, 0, 0), clock=500.0), snap((4, 0, 0)), 7, 20.0, None)
    assert change.deltas["drop"] == 4 and "rebooted" in change.notes[0]


def test_same_boot_clock_went_back_gives_deltas_without_rates():
    change = deltas.compare(base((10, 0, 0), clock=500.0), snap((14, 0, 0)), 7, 200.0, False)
    assert change.deltas["drop"] == 4
    assert change.rate("drop", "second") is None
    assert change.rate("drop", "check") == 4
    assert change.notes == ["the clock went back 300s since the last check: no rates this time"]


def test_a_namespace_created_again_counts_from_zero():
    change = deltas.compare(base((500, 0, 0), inode=7), snap((2, 0, 0)), 8, 160.0, False,
                            "netns web")
    assert change.deltas["drop"] == 2
    assert change.notes == ["netns web was created again since the last check: counted from 0"]


def test_runs_less_than_a_second_apart_have_no_rate():
    change = deltas.compare(base((10, 0, 0), clock=100.0), snap((11, 0, 0)), 7, 100.4, False)
    assert change.deltas["drop"] == 1
    assert change.rate("drop", "second") is None
    assert change.rate("drop", "check") == 1


def test_a_new_cpu_starts_its_baseline():
    change = deltas.compare(base((10, 0, 0)), snap((12, 0, 0), (99, 0, 0)), 7, 160.0, False)
    assert change.deltas["drop"] == 2
    assert change.notes == ["no baseline for cpu1: counted from the next run"]


@pytest.mark.parametrize("previous", [
    {"cpus": {"0": {"drop": -1}}, "clock": 1.0, "source": "proc"},
    {"cpus": {"0": {"drop": 2**32}}, "clock": 1.0, "source": "proc"},
    {"cpus": {"0": {"drop": "5"}}, "clock": 1.0, "source": "proc"},
    {"cpus": {"0": {"drop": True}}, "clock": 1.0, "source": "proc"},
    {"cpus": {"0": {"drop": 5}}, "clock": "yesterday", "source": "proc"},
    {"cpus": [], "clock": 1.0, "source": "proc"},
    ["not", "a", "dict"],
])
def test_an_unusable_stored_entry_resets_the_baseline(previous):
    change = deltas.compare(previous, snap((1, 0, 0)), 7, 160.0, False, "netns web")
    assert change.baseline
    assert change.notes == ["stored baseline of netns web was unusable: baseline reset"]


def test_another_source_resets_the_baseline():
    change = deltas.compare(base((1, 0, 0), source="netlink"), snap((5, 0, 0)), 7, 160.0,
                            False)
    assert change.baseline
    assert change.notes == ["counters now come from proc, before from netlink: baseline reset"]


def test_clock_is_boottime():
    import time

    assert abs(deltas.clock() - time.clock_gettime(time.CLOCK_BOOTTIME)) < 5
