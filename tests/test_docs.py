"""docs/: a page per executable that says what the executable really does.

The options on each page come from its parser (contrib/generate.py writes them;
tests/test_contrib.py holds the block in sync); here: every option is there,
every perfdata label the plugins emit on fixture trees is in the page's Perfdata
table, every finding id of the tuning check is in its table, every page renders
with plain docutils (also as a man page) and every relative link resolves.
"""

from __future__ import annotations

import argparse
import re
import sys
import time
from pathlib import Path

import pytest
import stats_fixtures
import tuning_trees
from docutils import nodes
from docutils.core import publish_doctree, publish_string
from docutils.writers import html5_polyglot, manpage
from kernel_trees import GENERATIONS, write_tree

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
sys.path.insert(0, str(ROOT / "contrib"))
import generate  # noqa: E402

EXECUTABLES = dict(generate.executables())
PLUGINS = [name for name in EXECUTABLES if name.startswith("check_")]
PAGE_SECTIONS = ["Fact sheet", "Options", "States", "Perfdata", "Examples", "Runbook"]
QUIET = {"report_level": 2, "halt_level": 5, "warning_stream": False}


def doctree(path: Path) -> nodes.document:
    return publish_doctree(path.read_text(), source_path=str(path), settings_overrides=QUIET)


def section(document: nodes.document, title: str) -> nodes.section:
    for node in document.findall(nodes.section):
        if node[0].astext() == title:
            return node
    raise AssertionError(f"{document['source']} has no section {title!r}")


def literals(node: nodes.Node) -> set[str]:
    """Every ``literal`` in the node; 'a, b' in one literal counts as both."""
    found = set()
    for literal in node.findall(nodes.literal):
        text = literal.astext()
        found.add(text)
        found.update(part.strip() for part in text.split(","))
    return found


def labels(output: str) -> set[str]:
    perfdata = output.split(" | ", 1)[1] if " | " in output else ""
    return {item.split("=", 1)[0].strip("'") for item in perfdata.split()}


def test_every_executable_has_its_page():
    assert sorted(EXECUTABLES) == sorted(p.stem for p in DOCS.glob("*.rst")
                                         if p.stem in EXECUTABLES)


@pytest.mark.parametrize("name", PLUGINS)
def test_a_plugin_page_has_the_sections_an_operator_looks_for(name):
    document = doctree(DOCS / f"{name}.rst")
    assert document["title"] == name
    tops = [s[0].astext() for s in document.children if isinstance(s, nodes.section)]
    assert [t for t in tops if t in PAGE_SECTIONS] == PAGE_SECTIONS, tops


@pytest.mark.parametrize("name", sorted(EXECUTABLES))
def test_every_option_of_the_parser_is_on_the_page(name):
    parser = __import__(EXECUTABLES[name], fromlist=["parser"]).parser()
    on_page = literals(doctree(DOCS / f"{name}.rst"))
    words = {w for text in on_page for w in re.split(r"[\s,]+", text)}
    missing = [o for a in parser._actions for o in a.option_strings
               if a.help != argparse.SUPPRESS and o not in words]
    assert not missing, f"docs/{name}.rst lacks {missing}: run python contrib/generate.py"


def page_perfdata(name: str) -> set[str]:
    return literals(section(doctree(DOCS / f"{name}.rst"), "Perfdata"))


ALL_NETNS_ONLY = {"namespaces"}  # the fixture runs read one namespace


def table_labels(name: str) -> set[str]:
    """The labels in the first column of the page's Perfdata table(s), patterns left out."""
    found = set()
    for table in section(doctree(DOCS / f"{name}.rst"), "Perfdata").findall(nodes.table):
        for row in table.next_node(nodes.tbody).findall(nodes.row):
            found |= {label for label in literals(row[0]) if re.fullmatch(r"[a-z_]+", label)}
    return found


def assert_documented(name: str, emitted: set[str]) -> None:
    assert emitted, f"{name} emitted no perfdata"
    missing = sorted(emitted - page_perfdata(name))
    assert not missing, f"docs/{name}.rst's Perfdata table lacks {missing}"
    stale = sorted(table_labels(name) - emitted - ALL_NETNS_ONLY)
    assert not stale, f"docs/{name}.rst's Perfdata table has {stale}, which {name} never emitted"


def test_check_conntrack_labels_are_documented(run_plugin, tmp_path):
    emitted = set()
    for generation, (tree, *_) in GENERATIONS.items():
        proc, sys_root = write_tree(tmp_path / generation, tree)
        for extra in ([], ["--warning-count", "10", "--expect-max", "5"]):
            code, out, err = run_plugin("check_conntrack", "--proc-root", proc,
                                        "--sys-root", sys_root, *extra)
            assert code in (0, 1, 2), out + err
            emitted |= labels(out)
    assert_documented("check_conntrack", emitted)


def test_check_conntrack_hash_labels_are_documented(run_plugin, tmp_path):
    emitted = set()
    for generation, (tree, *_) in GENERATIONS.items():
        proc, sys_root = write_tree(tmp_path / generation, tree)
        code, out, err = run_plugin("check_conntrack_hash", "--proc-root", proc,
                                    "--sys-root", sys_root, "--critical-full", "4")
        assert code in (0, 1, 2), out + err
        emitted |= labels(out)
    assert_documented("check_conntrack_hash", emitted)


MOVED = {column: 5 for column in stats_fixtures.HEADERS["5.15-chainlength"].split()
         + stats_fixtures.HEADERS["2.6-16col"].split()}


def test_check_conntrack_stats_labels_are_documented(run_main, tmp_path, monkeypatch):
    from conntrack_checks import deltas
    from conntrack_checks.checks import check_conntrack_stats

    now = {"t": 1000.0}
    monkeypatch.setattr(deltas, "clock", lambda: now["t"])
    emitted = set()
    for generation in stats_fixtures.HEADERS:
        base = tmp_path / generation
        args = ["--state-dir", str(base / "state")]
        for rows in ([{"entries": 3}, {}], [{"entries": 9, **MOVED}, {"drop": 1}]):
            proc, sys_root = write_tree(base, stats_fixtures.tree(generation, rows))
            code, out = run_main(check_conntrack_stats.main, "--proc-root", proc,
                                 "--sys-root", sys_root, *args)
            assert code in (0, 1, 2), out
            emitted |= labels(out)
            now["t"] += 10
    assert {"drop_delta", "drop_rate", "table_full_delta"} <= emitted
    assert_documented("check_conntrack_stats", emitted)


def test_check_conntrack_log_labels_are_documented(run_plugin, tmp_path):
    log = tmp_path / "kern.log"
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime())
    lines = ["nf_conntrack: nf_conntrack: table full, dropping packet",
             "net_ratelimit: 12 callbacks suppressed",
             "nf_conntrack: expectation table full"]
    log.write_text("".join(f"{stamp} fw kernel: {line}\n" for line in lines))
    code, out, err = run_plugin("check_conntrack_log", "--logfile", str(log), "--state-dir",
                                str(tmp_path / "state"), "--lookback", "1h")
    assert code in (1, 2), out + err
    assert_documented("check_conntrack_log", labels(out))


def test_check_conntrack_table_labels_are_documented(run_plugin, tmp_path):
    from test_check_conntrack_table import skewed_lines, table_tree

    proc, sys_root = write_tree(tmp_path, table_tree(skewed_lines(300, 100)))
    code, out, err = run_plugin("check_conntrack_table", "--proc-root", proc, "--sys-root",
                                sys_root, "--source", "proc")
    assert code == 0, out + err
    assert_documented("check_conntrack_table", labels(out))


TUNING_HOSTS = {
    "clean": (tuning_trees.kernel_tree(), tuning_trees.root()),
    "small host, big max": (tuning_trees.kernel_tree(limit=524288, buckets=524288,
                                                     ram=512 * tuning_trees.MIB),
                            tuning_trees.root()),
    "runtime only, long timeouts": (
        tuning_trees.kernel_tree(limit=1000, buckets=1024, timeouts={
            "tcp_timeout_established": 432000, "udp_timeout": 600}),
        tuning_trees.root(clean=False, files={
            "etc/sysctl.d/10-old.conf": "net.ipv4.netfilter.ip_conntrack_max = 65536\n",
            "etc/sysconfig/iptables-config": "IPTABLES_MODULES_UNLOAD=yes\n",
            "etc/sysctl.conf": "net.netfilter.nf_conntrack_max = 1000\n"})),
}


def run_tuning(run_plugin, tmp_path):
    for name, (kernel, config) in TUNING_HOSTS.items():
        args = tuning_trees.write_host(tmp_path / name.replace(" ", "-"), kernel, config)
        code, out, err = run_plugin("check_conntrack_tuning", *args, "-v")
        assert code in (0, 1, 2), out + err
        yield out


def test_check_conntrack_tuning_labels_are_documented(run_plugin, tmp_path):
    emitted = set()
    for out in run_tuning(run_plugin, tmp_path):
        emitted |= labels(out.replace("\n", " "))
    assert_documented("check_conntrack_tuning", emitted)


def finding_table() -> tuple[set[str], str]:
    """The ids of the 'finding id' table, and the page's text."""
    text = (DOCS / "check_conntrack_tuning.rst").read_text()
    for table in doctree(DOCS / "check_conntrack_tuning.rst").findall(nodes.table):
        head = table.next_node(nodes.thead)
        if head is not None and head.astext().startswith("finding id"):
            ids = set()
            for row in table.next_node(nodes.tbody).findall(nodes.row):
                ids |= literals(row[0])
            return ids, text
    raise AssertionError("docs/check_conntrack_tuning.rst has no 'finding id' table")


def documented(finding: str, ids: set[str], text: str) -> bool:
    """In the table as itself, or as family-<name> with the name listed on the page."""
    if finding in ids:
        return True
    for pattern in ids:
        family, angle, _ = pattern.partition("<")
        if angle and finding.startswith(family) and f"``{finding[len(family):]}``" in text:
            return True
    return False


def test_every_finding_the_tuning_check_gives_is_in_its_table(run_plugin, tmp_path):
    found = set()
    for out in run_tuning(run_plugin, tmp_path):
        found |= set(re.findall(r"^(?:warning|critical): \[([a-z0-9-]+)\]", out, re.M))
    assert {"persist-max", "dead-key", "memory", "timeout-tcp-established"} <= found
    ids, text = finding_table()
    assert [f for f in sorted(found) if not documented(f, ids, text)] == []


def test_every_finding_id_of_the_catalogue_is_in_the_table():
    from conntrack_checks.tuning.findings import finding_ids

    ids, text = finding_table()
    assert [f for f in finding_ids() if not documented(f, ids, text)] == []


PAGES = sorted([ROOT / "README.rst", *DOCS.glob("*.rst")])


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_relative_links_resolve(page):
    for reference in doctree(page).findall(nodes.reference):
        target = reference.get("refuri", "")
        if not target or re.match(r"[a-z][a-z0-9+.-]*:", target):
            continue
        path = target.split("#")[0]
        assert (page.parent / path).exists(), f"{page.name}: {target} does not exist"


def test_readme_links_every_page():
    text = (ROOT / "README.rst").read_text()
    assert [p.name for p in sorted(DOCS.glob("*.rst")) if f"<docs/{p.name}>`_" not in text] == []


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_page_is_plain_docutils_without_a_warning(page):
    warnings = []

    class Stream:
        def write(self, text):
            warnings.append(text)

    writers = [html5_polyglot.Writer()]
    if page.name != "README.rst":
        writers.append(manpage.Writer())
    for writer in writers:
        publish_string(page.read_text(), source_path=str(page), writer=writer,
                       settings_overrides={**QUIET, "warning_stream": Stream()})
    assert warnings == []


def icinga_templates() -> dict[str, dict[str, str]]:
    """Service template name -> its attributes, from the shipped Icinga 2 file."""
    text = (ROOT / "contrib" / "icinga2" / "conntrack-checks.conf").read_text()
    found = {}
    for name, body in re.findall(r'^template Service "([^"]+)" \{\n(.*?)^\}', text,
                                 re.M | re.S):
        found[name] = dict(re.findall(r'^\t(\w+) = "([^"]*)"$', body, re.M))
    return found


def test_every_checkcommand_has_a_service_template_pointing_at_its_runbook():
    text = (ROOT / "contrib" / "icinga2" / "conntrack-checks.conf").read_text()
    commands = re.findall(r'^object CheckCommand "([^"]+)"', text, re.M)
    templates = icinga_templates()
    assert sorted(templates) == sorted(commands)
    for name, attributes in templates.items():
        assert attributes["check_command"] == name
        executable = re.fullmatch(r"man:([\w-]+)\(1\)", attributes["notes_url"]).group(1)
        assert executable in EXECUTABLES
        section(doctree(DOCS / f"{executable}.rst"), "Runbook")
        assert f"docs/{executable}.rst" in attributes["notes"]


def test_every_service_of_the_agent_example_imports_a_runbook_template():
    example = (ROOT / "contrib" / "icinga2" / "conntrack-agents.conf.example").read_text()
    rules = re.findall(r'^apply Service "[^"]+" \{\n(.*?)^\}', example, re.M | re.S)
    assert rules
    for body in rules:
        imported = re.match(r'\timport "([^"]+)"', body)
        assert imported and imported.group(1) in icinga_templates(), body


def test_installing_shows_the_readme_first_command_word_for_word():
    readme = (ROOT / "README.rst").read_text()
    first = next(line.strip() for line in readme.splitlines()
                 if line.startswith("    apt-get update"))
    assert first in (DOCS / "installing.rst").read_text()


def test_every_director_template_points_at_its_runbook():
    import json

    basket = json.loads((ROOT / "contrib" / "director" / "conntrack-checks-basket.json")
                        .read_text())
    templates = basket["ServiceTemplate"]
    assert templates
    for name, template in templates.items():
        executable = re.fullmatch(r"man:([\w-]+)\(1\)", template["notes_url"]).group(1)
        section(doctree(DOCS / f"{executable}.rst"), "Runbook")
        assert f"man {executable}" in template["notes"], name


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_file_of_the_repository_a_page_names_exists(page):
    named = set()
    for literal in doctree(page).findall(nodes.literal):
        text = literal.astext()
        if re.fullmatch(r"(tests|contrib|lib|plugins|packaging|docs|debian)/[\w./-]+", text):
            named.add(text)
    assert [path for path in sorted(named) if not (ROOT / path).exists()] == []


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_library_name_a_page_gives_exists(page):
    import importlib

    missing = []
    for name in sorted(set(re.findall(r"conntrack_checks(?:\.\w+)+", page.read_text()))):
        module, _, attribute = name.rpartition(".")
        try:
            importlib.import_module(name)
        except ImportError:
            try:
                getattr(importlib.import_module(module), attribute)
            except (ImportError, AttributeError):
                missing.append(name)
    assert missing == []


def test_every_benchmark_is_on_the_benchmarks_page():
    text = (DOCS / "benchmarks.rst").read_text()
    scripts = sorted(p.name for p in (ROOT / "tests" / "bench").glob("*.py"))
    assert [name for name in scripts if f"``{name}``" not in text] == []
