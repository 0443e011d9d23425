"""The layer rules of HACKING.rst, read from the import statements of every module.

Each module under lib/conntrack_checks is parsed (ast), every ``import`` and
``from ... import`` in it (at any depth, function-level ones included) is
resolved to the full module name, and checked against what its layer may use.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

LIB = Path(__file__).resolve().parent.parent / "lib"
PACKAGE = "conntrack_checks"
# Lowest first. A module may import its own layer and the layers before it,
# with the exceptions below.
BASE = {"errors", "state", "deltas", "defaults", "speed", "words", "__init__"}
READERS = {"kernel", "logs", "tuning", "munin"}
LAYERS = ("base", "readers", "nagios", "checks", "report")
# Imports the rules forbid that are still there, each to go with the move that
# ends it: when one goes, remove it here (the test fails while it is listed and gone).
PENDING: set = set()


def modules() -> dict[str, Path]:
    """{'kernel.netns': path, 'state': path, ...} for every module of the package."""
    found = {}
    for path in sorted((LIB / PACKAGE).rglob("*.py")):
        parts = path.relative_to(LIB / PACKAGE).with_suffix("").parts
        found[".".join(parts)] = path
    return found


def layer(name: str) -> str:
    top = name.split(".")[0]
    if top in BASE:
        return "base"
    if top in READERS:
        return "readers"
    if top in LAYERS:
        return top
    raise AssertionError(f"{name}: in no layer; add its package to test_layers.py and "
                         "HACKING.rst")


def imports(name: str, path: Path) -> set[str]:
    """The package's own modules that ``name`` imports, without the 'conntrack_checks.'."""
    tree = ast.parse(path.read_text(), str(path))
    package = name.split(".")[:-1]  # of a package's __init__: the package itself
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[:len(package) - node.level + 1] if node.level > 1 else package
                base = [PACKAGE, *base]
            else:
                base = []
            where = [*base, *(node.module.split(".") if node.module else [])]
            # "from .. import netns" names modules, "from ..kernel.netns import x" does not
            targets = [".".join(where)] + [".".join([*where, alias.name]) for alias in node.names]
        else:
            continue
        for target in targets:
            if target == PACKAGE or not target.startswith(PACKAGE + "."):
                continue
            found.add(target[len(PACKAGE) + 1:])
    known = modules()
    return {t for t in found if t in known or any(k.startswith(t + ".") for k in known)}


def violations() -> set[tuple[str, str]]:
    bad = set()
    order = {name: i for i, name in enumerate(LAYERS)}
    for name, path in modules().items():
        mine = layer(name)
        for target in imports(name, path):
            theirs = layer(target)
            if order[theirs] > order[mine]:
                bad.add((name, target))  # a lower layer reaching up
            elif mine == "checks" and theirs == "checks" and target != "checks":
                bad.add((name, target))  # checks never import each other
            elif mine == "report" and theirs == "checks":
                bad.add((name, target))
    return bad


def test_every_module_imports_only_its_own_layer_and_those_below():
    assert violations() == PENDING


@pytest.mark.parametrize("source, target", [
    ("from ..nagios import plugin", "nagios.plugin"),
    ("from ..nagios.plugin import fmt_number", "nagios.plugin"),
    ("from .. import defaults, state", "defaults"),
    ("import conntrack_checks.checks.check_conntrack", "checks.check_conntrack"),
    ("def f():\n    from ..checks.check_conntrack_log import report_section",
     "checks.check_conntrack_log"),
])
def test_the_import_reader_sees_every_form_of_import(tmp_path, source, target):
    path = tmp_path / "probe.py"
    path.write_text(source + "\n")
    assert target in imports("kernel.probe", path)


def test_no_module_imports_by_string():
    """importlib would hide an import from the rules above."""
    for name, path in modules().items():
        tree = ast.parse(path.read_text())
        names = {n.id for n in ast.walk(tree) if isinstance(n, ast.Name)}
        names |= {a.name for n in ast.walk(tree) if isinstance(n, (ast.Import, ast.ImportFrom))
                  for a in n.names}
        assert not names & {"importlib", "import_module", "__import__"}, name
