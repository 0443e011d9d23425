"""contrib/: the generated configuration is current, the generator's rules hold,
the sudoers file is valid and allows the root command lines, the installer is sh.

The same files against the real daemons: tests/integration/test_monitoring.py.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

CONTRIB = Path(__file__).resolve().parent.parent / "contrib"
sys.path.insert(0, str(CONTRIB))
import generate  # noqa: E402

SUDOERS = CONTRIB / "sudoers" / "conntrack-checks"
IN_CI = __import__("os").environ.get("CI") == "true"


@pytest.mark.parametrize("path", sorted(generate.render(), key=str),
                         ids=lambda p: str(p.relative_to(CONTRIB.parent)))
def test_shipped_file_is_what_the_generator_writes(path):
    """Fails until `python contrib/generate.py` has been run after a plugin changed."""
    assert path.read_text() == generate.render()[path], \
        f"{path.relative_to(CONTRIB.parent)} is out of date: run python contrib/generate.py"


def test_generator_check_mode_reports_a_stale_file(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(generate, "CONTRIB", tmp_path)
    assert generate.main(["--check"]) == 1
    out = capsys.readouterr().out
    assert f"out of date: {tmp_path.name}/icinga2/conntrack-checks.conf\n" in out
    assert not (tmp_path / "icinga2").exists()
    assert generate.main([]) == 0
    assert generate.main(["--check"]) == 0


def test_every_plugin_has_a_checkcommand_named_without_check_():
    text = generate.icinga2(generate.PLUGINS)
    names = re.findall(r'^object CheckCommand "([^"]+)"', text, flags=re.M)
    expected = []
    for plugin in generate.PLUGINS:
        expected.append(plugin.name[len("check_"):])
        if any(f.root for f in plugin.fixed):
            expected.append(plugin.name[len("check_"):] + "_sudo")
    assert names == expected


def toy_parser():
    p = argparse.ArgumentParser(prog="check_toy")
    p.add_argument("-v", "--verbose", action="count", default=0, help="more output")
    p.add_argument("-w", "--warning", default="5", help="warn at %(default)s")
    p.add_argument("--mode", choices=["a", "b"], required=True, help="which mode")
    p.add_argument("--only", action="append", help='a "name"; repeatable')
    p.add_argument("--all", action="store_true", help="everything")
    p.add_argument("--hidden", help=argparse.SUPPRESS)
    return p


def test_each_kind_of_option_becomes_its_icinga_argument():
    plugin = generate.Plugin("check_toy", ())
    got = "\n".join(generate.icinga_arguments(plugin, toy_parser()))
    assert got == (
        '\t\t"-v" = {\n'
        '\t\t\tset_if = {{ macro("$toy_verbose_level$") == 1 }}\n'
        '\t\t\tdescription = "More output (set toy_verbose_level to 1, 2 or 3)"\n'
        "\t\t}\n"
        '\t\t"-vv" = {\n'
        '\t\t\tset_if = {{ macro("$toy_verbose_level$") == 2 }}\n'
        "\t\t}\n"
        '\t\t"-vvv" = {\n'
        '\t\t\tset_if = {{ macro("$toy_verbose_level$") == 3 }}\n'
        "\t\t}\n"
        '\t\t"--warning" = {\n'
        '\t\t\tvalue = "$toy_warning$"\n'
        '\t\t\tdescription = "Warn at 5"\n'
        "\t\t}\n"
        '\t\t"--mode" = {\n'
        '\t\t\tvalue = "$toy_mode$"\n'
        '\t\t\tdescription = "Which mode (one of: a, b)"\n'
        "\t\t\trequired = true\n"
        "\t\t}\n"
        '\t\t"--only" = {\n'
        '\t\t\tvalue = "$toy_only$"\n'
        "\t\t\trepeat_key = true\n"
        '\t\t\tdescription = "A \\"name\\"; repeatable"\n'
        "\t\t}\n"
        '\t\t"--all" = {\n'
        '\t\t\tset_if = "$toy_all$"\n'
        '\t\t\tdescription = "Everything"\n'
        "\t\t}"
    )


def test_icinga_vars_give_back_the_fixed_arguments():
    plugin = generate.PLUGINS[0]
    assert generate.icinga_vars(plugin, "-w 80 -c 90 --all-netns") == {
        "conntrack_warning": "80", "conntrack_critical": "90", "conntrack_all_netns": True}


@pytest.mark.parametrize("fixed, message", [
    (generate.Fixed("_x", "-c 90 --all-netns", root=True), "by their long names in sorted"),
    (generate.Fixed("_x", "--warning 1 --all-netns", root=True), "by their long names in sorted"),
])
def test_root_lines_must_be_in_the_order_icinga_passes_them(fixed, message):
    plugin = generate.Plugin("check_conntrack", (fixed,))
    with pytest.raises(SystemExit) as exited:
        list(generate.fixed_commands(plugin, "/p"))
    assert message in str(exited.value)


def test_a_typo_in_fixed_arguments_stops_the_generator(capsys):
    plugin = generate.Plugin("check_conntrack", (generate.Fixed("", "--warnign 80"),))
    with pytest.raises(SystemExit) as exited:
        list(generate.fixed_commands(plugin, "/p"))
    assert exited.value.code == 3
    assert "unrecognized arguments: --warnign 80" in capsys.readouterr().out


def sudoers_commands() -> set[str]:
    text = re.sub(r"\\\n", " ", SUDOERS.read_text())
    commands = set()
    for line in text.splitlines():
        found = re.match(r"\s*Cmnd_Alias\s+\w+\s*=\s*(.*)", line)
        if found:
            commands.update(" ".join(c.split()) for c in found.group(1).split(","))
    return commands


def allowed(command: str) -> str:
    """The command line a sudoers command allows: 'cmd ""' means no arguments."""
    return command[:-3] if command.endswith(' ""') else command


def test_sudoers_allows_each_root_line_exactly():
    commands = sudoers_commands()
    for plugin in generate.PLUGINS:
        for name, line in generate.fixed_commands(plugin, generate.PLUGIN_DIR):
            if line.startswith(generate.SUDO):
                assert line[len(generate.SUDO) + 1:] in map(allowed, commands), name


def test_sudoers_rules_are_exact_command_lines():
    for command in sudoers_commands():
        # full path and fixed arguments: no wildcard, no bare path (that allows any)
        assert re.fullmatch(r'/usr/lib/nagios/plugins/check_conntrack\w* ([-\w ]+|"")', command), \
            command


def test_sudoers_file_is_valid():
    visudo = shutil.which("visudo") or "/usr/sbin/visudo"
    if not Path(visudo).exists():
        if IN_CI:
            pytest.fail("CI=true: visudo (Debian package sudo) is missing")
        pytest.skip("visudo (sudo) not installed")
    done = subprocess.run([visudo, "-cf", str(SUDOERS)], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout == f"{SUDOERS}: parsed OK\n"


@pytest.mark.parametrize("name", ["install-plugins", "munin/link"])
def test_installer_is_plain_posix_sh(name):
    script = CONTRIB / name
    assert script.read_text().startswith("#!/bin/sh\n")
    for shell in ("/bin/sh", "/bin/dash"):
        if Path(shell).exists():
            done = subprocess.run([shell, "-n", str(script)], capture_output=True, text=True)
            assert done.returncode == 0, done.stderr
    code = [line for line in script.read_text().splitlines()
            if not line.lstrip().startswith("#")]
    bashisms = re.compile(r"\[\[|\$'|<<<|\$\{\w+//|^\s*(function|local|source|eval)\s")
    for line in code:
        assert not bashisms.search(line), line


def test_installer_help_is_its_header():
    done = subprocess.run([str(CONTRIB / "install-plugins"), "--help"],
                          capture_output=True, text=True)
    assert done.returncode == 0
    assert done.stdout.startswith("Install conntrack-checks into a virtual environment")
    assert "--link-only" in done.stdout and "set -eu" not in done.stdout


def test_each_kind_of_option_becomes_its_director_argument_and_field():
    plugin, parser = generate.Plugin("check_toy", ()), toy_parser()
    arguments = generate.director_arguments(plugin, parser)
    assert list(arguments) == ["-v", "-vv", "-vvv", "--warning", "--mode", "--only", "--all"]
    assert arguments["-vv"] == {"description": "More output (level 2 of toy_verbose_level)",
                                "order": "1", "set_if": 'macro("$toy_verbose_level$") == 2',
                                "set_if_format": "expression"}
    assert arguments["--warning"] == {"description": "Warn at 5", "order": "2",
                                      "value": "$toy_warning$"}
    assert arguments["--mode"] == {"description": "Which mode (one of: a, b)", "order": "3",
                                   "value": "$toy_mode$", "required": True}
    assert arguments["--only"] == {"description": 'A "name"; repeatable', "order": "4",
                                   "value": "$toy_only$", "repeat_key": True}
    assert arguments["--all"] == {"description": "Everything", "order": "5",
                                  "set_if": "$toy_all$", "set_if_format": "string"}
    kinds = {key: generate.director_field(plugin, parser, action, key)["datatype"].rsplit(
        "DataType", 1)[1] for action, key in generate.options(parser)}
    assert kinds == {"--verbose": "Number", "--warning": "String", "--mode": "Datalist",
                     "--only": "Array", "--all": "Boolean"}
    assert generate.director_defaults(plugin, parser) == {"toy_warning": "5"}


def test_sudo_commands_of_the_basket_take_the_sudoers_options_sorted():
    parser = argparse.ArgumentParser(prog="check_toy")
    parser.add_argument("--zeta", help="last")
    parser.add_argument("--all-netns", action="store_true", help="first")
    parser.add_argument("--other", help="not in a sudoers line")
    plugin = generate.Plugin("check_toy", ())
    arguments = generate.director_arguments(plugin, parser, {"--zeta", "--all-netns"})
    assert [(key, a["order"]) for key, a in arguments.items()] == [("--all-netns", "1"),
                                                                    ("--zeta", "2")]


def test_a_default_that_does_not_parse_back_stops_the_generator():
    parser = argparse.ArgumentParser(prog="check_toy")
    parser.add_argument("--size", type=lambda text: int(text) * 1024, default=2048)
    with pytest.raises(SystemExit) as exited:
        generate.director_defaults(generate.Plugin("check_toy", ()), parser)
    assert "--size: default 2048 does not parse back" in str(exited.value)


def test_basket_holds_a_command_and_fields_for_every_plugin():
    basket = json.loads((CONTRIB / "director" / "conntrack-checks-basket.json").read_text())
    fields = {i: f["varname"] for i, f in basket["Datafield"].items()}
    for plugin in generate.PLUGINS:
        command = basket["Command"][plugin.command]
        parser = generate.parser_of(plugin)
        wanted = {f"{plugin.command}_{a.dest}"
                  + ("_level" if isinstance(a, argparse._CountAction) else "")
                  for a, _ in generate.options(parser)}
        assert {fields[str(f["datafield_id"])] for f in command["fields"]} == wanted


def test_the_director_page_lists_every_template_with_its_command_and_interval():
    basket = json.loads((CONTRIB / "director" / "conntrack-checks-basket.json").read_text())
    page = (CONTRIB.parent / "docs" / "director.rst").read_text()
    human = {"30": "30s", "60": "1m", "300": "5m", "600": "10m", "3600": "1h"}
    for name, template in basket["ServiceTemplate"].items():
        row = re.search(rf"^``{re.escape(name)}``\s+``(\S+)``\s+(\S+)\s+(\S+)", page, flags=re.M)
        assert row, f"docs/director.rst has no row for {name}"
        assert row.groups() == (template["check_command"], human[template["check_interval"]],
                                human[template["retry_interval"]]), name
