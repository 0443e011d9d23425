"""conntrack-munin's protocol output, from fixture kernels under pyfakefs."""

from __future__ import annotations

import io
import re

import pytest
import stats_fixtures as fx
from conntrack_checks import deltas
from conntrack_checks.munin import fields, run
from conntrack_checks.munin.settings import Settings
from kernel_trees import nf_tree, write_tree

FIELD = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
TOP = 2**32 - 100
# The host alone and no states graph (the tests run as root, which would read
# every namespace and the table; the real-kernel tests do that).
ENV = {"MUNIN_CAP_MULTIGRAPH": "1", "MUNIN_PLUGSTATE": "/state", "netns": "host",
       "states": "no"}


@pytest.fixture
def kernel(fs):
    """Writes a kernel generation's tree at / (pyfakefs)."""
    def write(generation="5.15-chainlength", rows=None, count=300, limit=1000, buckets=250):
        tree = nf_tree(count, limit, buckets)
        stats = fx.tree(generation, rows)
        tree["proc"].update(stats["proc"])
        tree["sys"].update(stats["sys"])
        write_tree("/", tree)
        if not fs.exists("/var/log/kern.log"):
            fs.create_file("/var/log/kern.log")  # a readable log: the messages graph
    return write


@pytest.fixture
def clock(monkeypatch):
    now = {"t": 1000.0}
    monkeypatch.setattr(deltas, "clock", lambda: now["t"])
    return now


def munin(*argv, **env):
    out, err = io.StringIO(), io.StringIO()
    code = run.main(list(argv), {**ENV, **env}, out, err)
    return code, out.getvalue(), err.getvalue()


def graphs(text: str) -> dict[str, list[str]]:
    """{multigraph name: its lines}."""
    found: dict[str, list[str]] = {}
    for line in text.splitlines():
        if line.startswith("multigraph "):
            current = found.setdefault(line.split()[1], [])
        else:
            current.append(line)
    return found


def attributes(lines: list[str]) -> dict[str, str]:
    return dict(line.split(" ", 1) for line in lines)


GRAPHED = {
    "2.6-16col": ["drop", "early_drop", "insert_failed", "invalid"],
    "3.10-17col": ["drop", "early_drop", "insert_failed", "invalid", "search_restart"],
    "5.10-clashres": ["drop", "early_drop", "insert_failed", "invalid", "clash_resolve",
                      "search_restart"],
    "5.15-chainlength": ["drop", "early_drop", "insert_failed", "invalid", "clash_resolve",
                         "chaintoolong", "search_restart"],
}


@pytest.mark.parametrize("generation", sorted(GRAPHED))
def test_config_graphs_the_counters_each_kernel_generation_keeps(kernel, generation):
    kernel(generation)
    code, out, err = munin("config")
    assert (code, err) == (0, "")
    shown = graphs(out)
    assert list(shown) == ["conntrack", "conntrack.hash", "conntrack.counters_host",
                           "conntrack.log"]
    counters = attributes(shown["conntrack.counters_host"])
    assert counters["graph_order"].split() == GRAPHED[generation]
    assert counters["graph_category"] == "network"
    for name in GRAPHED[generation]:
        assert counters[f"{name}.type"] == "DERIVE" and counters[f"{name}.min"] == "0"
    assert not any(".value " in line for line in out.splitlines())
    info = counters["insert_failed.info"]
    assert ("including the clashes the kernel then resolved" in info) == (
        "clash_resolve" not in GRAPHED[generation])


@pytest.mark.parametrize("generation", sorted(GRAPHED))
def test_every_field_name_is_one_munin_accepts(kernel, generation):
    kernel(generation)
    _, out, _ = munin("config")
    names = {line.split(".", 1)[0] for lines in graphs(out).values() for line in lines
             if not line.startswith("graph")}
    assert names and all(FIELD.match(n) and n != "root" for n in names), names
    assert all(re.fullmatch(r"[-\w.:]+", g) for g in graphs(out))


def test_usage_has_max_and_thresholds_at_80_and_90_percent(kernel):
    kernel(count=850, limit=1000)
    _, out, _ = munin("config")
    usage = attributes(graphs(out)["conntrack"])
    assert usage["graph_order"] == "max ns_host"
    assert (usage["ns_host.warning"], usage["ns_host.critical"]) == ("800", "900")
    _, out, _ = munin("config", warning="75.5", critical="95")
    usage = attributes(graphs(out)["conntrack"])
    assert (usage["ns_host.warning"], usage["ns_host.critical"]) == ("755", "950")


def test_a_bad_setting_is_said_on_stderr_and_the_default_used(kernel, monkeypatch):
    from conntrack_checks.munin import settings as module

    monkeypatch.setattr(module.os, "geteuid", lambda: 65534)  # auto: the host alone
    kernel()
    code, out, err = munin("config", warning="lots", netns="some")
    assert code == 0
    assert attributes(graphs(out)["conntrack"])["ns_host.warning"] == "800"
    assert "env.warning 'lots' is not a percentage" in err
    assert "env.netns 'some' is not auto, all or host" in err


def test_fetch_gives_count_max_hash_load_and_counter_totals(kernel, clock):
    kernel(rows=[{"drop": 5, "insert_failed": 2}, {"drop": 1}], count=500, limit=1000,
           buckets=250)
    code, out, err = munin()
    assert (code, err) == (0, "")
    shown = graphs(out)
    assert shown["conntrack"] == ["max.value 1000", "ns_host.value 500"]
    assert shown["conntrack.hash"] == ["load.value 2", "load_full.value 4",
                                       "buckets.value 250"]
    counters = attributes(shown["conntrack.counters_host"])
    assert (counters["drop.value"], counters["insert_failed.value"]) == ("6", "2")


def test_counter_totals_grow_across_a_32_bit_wrap_and_a_reload(kernel, clock):
    kernel(rows=[{"drop": TOP}, {"drop": 7}])
    _, out, _ = munin()
    assert attributes(graphs(out)["conntrack.counters_host"])["drop.value"] == str(TOP + 7)
    kernel(rows=[{"drop": 20}, {"drop": 7}])  # cpu0 wrapped: +120
    clock["t"] += 300
    _, out, _ = munin()
    assert attributes(graphs(out)["conntrack.counters_host"])["drop.value"] == str(TOP + 127)
    kernel(rows=[{"drop": 3}, {}])  # nf_conntrack reloaded: counted from 0
    clock["t"] += 300
    _, out, _ = munin()
    assert attributes(graphs(out)["conntrack.counters_host"])["drop.value"] == str(TOP + 130)


def test_config_alone_leaves_the_counter_totals_alone(kernel, clock):
    kernel(rows=[{"drop": 1}])
    munin()
    kernel(rows=[{"drop": 5}])
    munin("config")
    kernel(rows=[{"drop": 6}])
    _, out, _ = munin()
    assert attributes(graphs(out)["conntrack.counters_host"])["drop.value"] == "6"


def test_dirtyconfig_gives_config_and_values_in_one_run(kernel, clock):
    kernel(count=42)
    code, out, _ = munin("config", MUNIN_CAP_DIRTYCONFIG="1")
    usage = attributes(graphs(out)["conntrack"])
    assert code == 0 and usage["ns_host.value"] == "42" and usage["graph_title"]


def test_an_unusable_state_directory_leaves_the_counters_unknown(kernel, fs):
    kernel(rows=[{"drop": 1}])
    fs.create_file("/state")  # a file where the directory should be
    code, out, err = munin()
    assert code == 0
    assert attributes(graphs(out)["conntrack.counters_host"])["drop.value"] == "U"
    assert "kernel counters not graphed: " in err
    assert graphs(out)["conntrack"] == ["max.value 1000", "ns_host.value 300"]


@pytest.mark.parametrize("tree, answer", [
    ({"proc": {}, "sys": {}}, "no (nf_conntrack is not loaded: no connections are tracked)"),
    ({"proc": {"sys/net/netfilter/nf_conntrack_count": 3}, "sys": {}}, "yes"),
])
def test_autoconf_says_yes_only_where_nf_conntrack_is_loaded(fs, tree, answer):
    fs.create_dir("/proc")
    fs.create_dir("/sys")
    write_tree("/", tree)
    assert munin("autoconf") == (0, answer + "\n", "")


def test_without_nf_conntrack_config_and_fetch_fail_with_the_reason(fs):
    fs.create_dir("/proc")
    fs.create_dir("/sys")
    code, out, err = munin("config")
    assert (code, out) == (1, "")
    assert err == "conntrack-munin: nf_conntrack is not loaded: no connections are tracked " \
                  "(no /proc/sys/net/netfilter/nf_conntrack_count)\n"


def test_without_multigraph_support_the_plugin_says_so(kernel):
    kernel()
    code, out, err = munin("config", MUNIN_CAP_MULTIGRAPH="")
    assert (code, out) == (1, "") and "multigraph plugin" in err


@pytest.mark.parametrize("include, exclude, kept", [
    ("", "", ["host", "web", "web-2", "db", "ns4026532"]),
    ("web*", "", ["web", "web-2"]),
    ("host db", "", ["host", "db"]),
    ("", "ns* web-2", ["host", "web", "db"]),
    ("web*", "web-2", ["web"]),
])
def test_namespace_filters(include, exclude, kept):
    settings = Settings({"include": include, "exclude": exclude})
    names = ["host", "web", "web-2", "db", "ns4026532"]
    assert [n for n in names if settings.wanted(n)] == kept


def test_namespace_field_names_are_cleaned_prefixed_and_unique():
    names = ["host", "web-1", "web.1", "0day", "root", "ünï"]
    assert fields.namespace_fields(names) == {
        "host": "ns_host", "web-1": "ns_web_1", "web.1": "ns_web_1_2", "0day": "ns_0day",
        "root": "ns_root", "ünï": "ns__n_"}


def test_as_a_user_auto_means_the_host_alone_and_as_root_every_namespace(monkeypatch):
    from conntrack_checks.munin import settings as module

    monkeypatch.setattr(module.os, "geteuid", lambda: 65534)
    assert Settings({}).namespaces == "host"
    monkeypatch.setattr(module.os, "geteuid", lambda: 0)
    assert Settings({}).namespaces == "all"
    assert Settings({"netns": "host"}).namespaces == "host"


TABLE_FULL = "kernel: [ 12.3] nf_conntrack: nf_conntrack: table full, dropping packet\n"


def test_table_full_messages_since_the_last_run_come_from_the_log(kernel, clock, fs):
    kernel()
    with open("/var/log/kern.log", "w") as log:
        log.write("Nov 30 09:00:00 h kernel: boot\n")
    _, out, _ = munin()
    assert graphs(out)["conntrack.log"] == ["messages.value U", "suppressed.value U"]
    with open("/var/log/kern.log", "a") as log:
        log.write("".join(f"Nov 30 09:00:0{i} h {TABLE_FULL}" for i in range(3)))
        log.write("Nov 30 09:00:04 h kernel: net_ratelimit: 40 callbacks suppressed\n")
    _, out, _ = munin()
    assert graphs(out)["conntrack.log"] == ["messages.value 3", "suppressed.value 40"]
    _, out, _ = munin()
    assert graphs(out)["conntrack.log"] == ["messages.value 0", "suppressed.value 0"]


def test_without_a_readable_log_the_messages_graph_is_left_out_and_why_is_said(
        kernel, fs, monkeypatch):
    from conntrack_checks.munin import logs

    kernel()
    monkeypatch.setattr(logs, "readable", lambda *a: "/var/log/kern.log: Permission denied")
    code, out, err = munin("config")
    assert code == 0 and "conntrack.log" not in graphs(out)
    assert "table-full messages not graphed: /var/log/kern.log: Permission denied" in err


def test_the_executable_carries_munins_magic_markers_and_pod():
    from pathlib import Path

    text = (Path(__file__).resolve().parent.parent / "plugins" / "conntrack-munin").read_text()
    assert re.search(r"^\s*#%#\s+family\s*=\s*auto\s*$", text, re.M)
    assert re.search(r"^\s*#%#\s+capabilities\s*=\s*autoconf\s*$", text, re.M)
    heads = re.findall(r"^=head1 (.+)$", text, re.M)
    assert heads == ["NAME", "APPLICABLE SYSTEMS", "CONFIGURATION", "INTERPRETATION",
                     "MAGIC MARKERS", "AUTHOR", "LICENSE"]
    assert "\n=cut\n" in text


def test_the_states_graph_has_fw_conntracks_fields_labels_and_drawing(kernel):
    kernel(limit=1000)
    _, out, _ = munin("config", states="yes")
    states = attributes(graphs(out)["conntrack.states"])
    assert states["graph_title"] == "Connections through firewall"
    assert (states["graph_vlabel"], states["graph_args"], states["graph_category"]) == (
        "Connections", "-l 0", "network")
    labels = {f: states[f"{f}.label"] for f in (
        "established", "fin_wait", "time_wait", "syn_sent", "udp", "assured", "nated", "total")}
    assert labels == {"established": "Established", "fin_wait": "FIN_WAIT",
                      "time_wait": "TIME_WAIT", "syn_sent": "SYN_SENT",
                      "udp": "UDP connections", "assured": "Assured", "nated": "NATed",
                      "total": "Total"}
    assert [states[f"{f}.draw"] for f in ("established", "fin_wait", "udp", "assured",
                                          "nated")] == ["AREA", "STACK", "STACK", "LINE2",
                                                        "LINE1"]
    assert states["total.graph"] == "no"
    assert (states["total.warning"], states["total.critical"]) == ("800", "900")
    assert "env.states_sample" in states["graph_info"]


def test_labels_keep_what_munin_forbids_in_them_out():
    assert fields.label("web#1\\x") == "web_1_x"
