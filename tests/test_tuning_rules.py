"""The tuning package: facts -> rules -> findings below the plugin, the finding catalogue
against the docs, and the report's section; fixture trees in, findings out."""

from __future__ import annotations

import json
import re
from pathlib import Path

import nagiosplugin
import pytest
from conntrack_checks.kernel import netns, sysctl
from conntrack_checks.tuning import Analysis, Facts, report_section, rules
from conntrack_checks.tuning.findings import (
    FINDING_IDS,
    TIMEOUTS,
    Finding,
    Thresholds,
    finding_ids,
    short_name,
)
from tuning_trees import kernel_tree, root, write_host

REPO = Path(__file__).resolve().parent.parent
LIMITS = Thresholds(nagiosplugin.Range)
DOCS = REPO / "docs" / "check_conntrack_tuning.rst"


def documented_ids() -> list[str]:
    """The ids in the first column of the docs' "finding id" table, in order."""
    lines = DOCS.read_text().splitlines()
    heads = [i for i, line in enumerate(lines) if line.startswith("finding id ")]
    assert heads, f"no 'finding id' table in {DOCS}"
    width = len(lines[heads[0] - 1].split()[0])  # the first column's ===== border
    ids = []
    for line in lines[heads[0] + 2:]:
        if line.startswith("=" * width):
            return ids
        ids += re.findall(r"``([^`]+)``", line[:width])
    raise AssertionError(f"the 'finding id' table in {DOCS} has no end")


def test_the_docs_finding_table_lists_exactly_the_catalogue():
    assert sorted(documented_ids()) == sorted(FINDING_IDS)


def test_the_docs_name_every_timeout_a_finding_id_can_end_in():
    text = DOCS.read_text()
    start = text.index("``<timeout>``/``<name>`` is")
    paragraph = text[start:text.index("\n\n", start)].split(":", 1)[1]
    assert re.findall(r"``([^`]+)``", paragraph) == [short_name(n) for n in TIMEOUTS]


def test_every_timeout_has_a_persist_and_a_limit_id():
    ids = finding_ids()
    assert len(ids) == len(set(ids)) == len(FINDING_IDS) - 2 + 2 * len(TIMEOUTS)
    assert {"persist-tcp-established", "timeout-udp-stream", "timeout-icmpv6"} <= set(ids)
    assert not [i for i in ids if "<" in i]


def test_a_finding_reads_as_text_and_as_data():
    finding = Finding("memory", "critical", "too big", ["a", "b"], now="fix it")
    assert finding.lines() == ["critical: [memory] too big", "  evidence: a", "  evidence: b",
                               "  now: fix it"]
    assert finding.as_dict()["fix"] == {"now": "fix it", "persist": None}


def test_facts_are_read_once_and_complete_before_any_rule(fs):
    args = write_host("/t", kernel_tree(limit=524288), root())
    facts = Facts(sysctl.Roots(args[1], args[3]), args[5])
    assert (facts.max, facts.buckets, facts.eras, facts.ptr) == (524288, 262144, ["nf-5.15"], 8)
    assert [(d.era, d.buckets, d.max) for d in facts.kernel_defaults] == [
        ("nf-5.15", 262144, 262144)]
    assert facts.timeouts[0][1]["udp_timeout"] == 30 and facts.unreadable == []
    assert facts.boot_sysctl.tool == "systemd-sysctl" and facts.hashsize_line is None
    # the rules change nothing in the facts: two analyses of one reading agree
    first, second = Analysis(facts, LIMITS), Analysis(facts, LIMITS)
    assert [f.id for f in first.findings] == [f.id for f in second.findings] == ["persist-max"]
    assert first.details == second.details


def test_kube_proxy_is_looked_for_only_when_a_value_is_its_own(fs):
    args = write_host("/t", kernel_tree(limit=500000), root())  # never 32768 x CPUs
    fs.create_file("/t/host/proc/77/comm", contents="kube-proxy\n")
    facts = Facts(sysctl.Roots(args[1], args[3]), args[5])
    Analysis(facts, LIMITS)
    assert facts._kube_proxy is None  # no value is kube-proxy's: no process was read
    assert facts.kube_proxy_runs() is True


WEB = netns.Namespace("web", "/run/netns/web")
PROCESS = netns.Namespace("ns4026532999", "/proc/1234/ns/net")
ANY_FILE = netns.Namespace("/run/docker/netns/abc", "/run/docker/netns/abc")


def analysed(monkeypatch, values: list) -> Analysis:
    """The analysis of a clean host whose namespaces hold these timeouts (``values`` is
    what the facts keep: changing it later changes what the rules see)."""
    args = write_host("/t", kernel_tree(), root())
    monkeypatch.setattr(netns, "read_each", lambda *a, **k: (values, []))
    facts = Facts(sysctl.Roots(args[1], args[3]), args[5], [ns for ns, _ in values],
                  all_netns=True)
    return Analysis(facts, LIMITS)


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
    assert not rules.tuned_at_runtime(analysis.facts)
    values.reverse()
    values[0] = (host, {"tcp_timeout_established": 7200})
    assert rules.tuned_at_runtime(analysis.facts)


def test_report_section_is_json_data(fs):
    changes = {"limit": 524288, "timeouts": {"udp_timeout": 600}}
    write_host("/t", kernel_tree(**changes), root())
    section = report_section(sysctl.Roots("/t/host/proc", "/t/host/sys"), LIMITS,
                             config_root="/t/cfg")
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
    section = report_section(roots, LIMITS, config_root="/t/cfg", ignore=["*-udp"])
    assert (section["status"], section["findings"]) == ("ok", [])
    from conntrack_checks.errors import ModuleMissing

    with pytest.raises(ModuleMissing):
        report_section(sysctl.Roots("/nowhere/proc", "/nowhere/sys"), LIMITS)
