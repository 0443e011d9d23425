"""The Icinga Director basket in a real Director from Debian's packages.

MariaDB runs by hand as the mysql user, with its data directory and socket in a
temporary directory and no network; Icinga Web 2 reads its configuration from
a temporary ICINGAWEB_CONFIGDIR and PHP finds the socket through an ini file
of its own (PHP_INI_SCAN_DIR). Director creates its schema (`icingacli
director migration run`) and restores contrib/director/conntrack-checks-basket.json
(`icingacli director basket restore`); the commands, fields and templates are
then read back from Director and compared with the plugins' parsers, and the
configuration Director renders from them is run by Icinga 2. Nothing under
/etc or /var/lib changes; the database is stopped and removed at the end.
"""

from __future__ import annotations

import argparse
import json
import re
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
from lab import need_root_tools
from test_monitoring import DAEMON_ENV, free_port, icinga_dirs

REPO = Path(__file__).resolve().parents[2]
CONTRIB = REPO / "contrib"
sys.path.insert(0, str(CONTRIB))
import generate  # noqa: E402

BASKET = CONTRIB / "director" / "conntrack-checks-basket.json"
MODULES = Path("/usr/share/icingaweb2/modules")
DATATYPE = "Icinga\\Module\\Director\\DataType\\DataType"
NODE = "director-test.example"


def run(cmd, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run([str(c) for c in cmd], capture_output=True, text=True, timeout=120,
                          **kwargs)


class Director:
    """icingacli and SQL against one Director database."""

    def __init__(self, base: Path):
        self.base = base
        self.socket = base / "run" / "mysqld.sock"
        self.env = {**DAEMON_ENV, "HOME": str(base), "ICINGAWEB_CONFIGDIR": str(base / "etc"),
                    # an empty element keeps Debian's scan directory (the extensions)
                    "PHP_INI_SCAN_DIR": f":{base / 'php'}"}

    def cli(self, *args, stdin=None) -> subprocess.CompletedProcess:
        done = run(["icingacli", "director", *args], env=self.env, input=stdin)
        assert done.returncode == 0, f"icingacli director {' '.join(args)}:\n" \
            + done.stdout + done.stderr
        return done

    def show(self, kind: str, name: str) -> dict:
        return json.loads(self.cli(kind, "show", name, "--json").stdout)

    def sql(self, query: str, database: str = "director") -> list[list[str]]:
        done = run(["mariadb", "--no-defaults", "-S", self.socket, "-u", "root", "-N", "-B",
                    "-r", database, "-e", query])
        assert done.returncode == 0, done.stderr
        return [line.split("\t") for line in done.stdout.splitlines()]


def start_mariadb(base: Path) -> subprocess.Popen:
    for sub in ("data", "run"):
        (base / sub).mkdir()
        shutil.chown(base / sub, "mysql", "mysql")
    done = run(["mariadb-install-db", "--no-defaults", "--user=mysql",
                f"--datadir={base / 'data'}", "--auth-root-authentication-method=socket",
                "--skip-test-db"])
    assert done.returncode == 0, done.stdout + done.stderr
    server = subprocess.Popen(
        ["/usr/sbin/mariadbd", "--no-defaults", "--user=mysql", f"--datadir={base / 'data'}",
         f"--socket={base / 'run' / 'mysqld.sock'}", f"--pid-file={base / 'run' / 'mysqld.pid'}",
         "--skip-networking", f"--log-error={base / 'mariadb.log'}",
         "--innodb-buffer-pool-size=32M"],
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and server.poll() is None:
        ping = run(["mariadb-admin", "--no-defaults", "-S", base / "run" / "mysqld.sock",
                    "-u", "root", "ping"])
        if ping.returncode == 0:
            return server
        time.sleep(0.2)
    log = (base / "mariadb.log").read_text() if (base / "mariadb.log").exists() else ""
    stop(server)
    pytest.fail(f"MariaDB did not start:\n{log}")


def stop(server: subprocess.Popen) -> None:
    if server.poll() is None:
        server.send_signal(signal.SIGTERM)
        try:
            server.wait(timeout=60)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


def configure_icingaweb(base: Path, password: str) -> None:
    etc = base / "etc"
    (etc / "modules" / "director").mkdir(parents=True)
    (etc / "enabledModules").mkdir()
    etc.chmod(0o700)  # the database password
    (etc / "config.ini").write_text(
        f'[global]\nmodule_path = "{MODULES}"\n\n[logging]\nlog = "none"\n')
    (etc / "resources.ini").write_text(
        '[director_db]\ntype = "db"\ndb = "mysql"\nhost = "localhost"\ndbname = "director"\n'
        f'username = "director"\npassword = "{password}"\ncharset = "utf8mb4"\n')
    (etc / "modules" / "director" / "config.ini").write_text('[db]\nresource = "director_db"\n')
    for module in ("director", "incubator"):
        (etc / "enabledModules" / module).symlink_to(MODULES / module)
    (base / "php").mkdir()
    # host = "localhost" makes PDO use a socket: this one, not /run/mysqld's
    (base / "php" / "director-test.ini").write_text(
        f"pdo_mysql.default_socket = {base / 'run' / 'mysqld.sock'}\n")


@pytest.fixture(scope="module")
def director():
    need_root_tools("mariadb-install-db", "mariadb", "mariadb-admin", "icingacli", "icinga2",
                    "unshare")
    if not (MODULES / "director" / "module.info").exists():
        pytest.fail("icingaweb2-module-director is missing: tests/run installs it")
    base = Path(tempfile.mkdtemp(prefix="ctc-director.", dir="/var/tmp"))
    server = None
    try:
        base.chmod(0o755)  # mysql and nagios reach their subdirectories
        server = start_mariadb(base)
        password = secrets.token_hex(12)
        director = Director(base)
        director.sql("CREATE DATABASE director CHARACTER SET utf8mb4; "
                     f"CREATE USER director@localhost IDENTIFIED BY '{password}'; "
                     "GRANT ALL ON director.* TO director@localhost", database="mysql")
        configure_icingaweb(base, password)
        director.cli("migration", "run")
        director.cli("basket", "restore", stdin=BASKET.read_text())
        yield director
    finally:
        if server is not None:
            stop(server)
        shutil.rmtree(base, ignore_errors=True)


def parsers():
    return [(plugin, generate.parser_of(plugin)) for plugin in generate.PLUGINS]


def sudo_options(plugin) -> set[str]:
    """The options of the plugin's sudoers lines: all that sudo lets through."""
    return {token for fixed in plugin.fixed if fixed.root for token in fixed.args.split()
            if token.startswith("--")}


def expected_commands() -> set[str]:
    names = set()
    for plugin in generate.PLUGINS:
        names.add(plugin.command)
        if any(f.root for f in plugin.fixed):
            names.add(plugin.command + "_sudo")
    return names


def variable(plugin, action) -> str:
    suffix = "_level" if isinstance(action, argparse._CountAction) else ""
    return f"{plugin.command}_{action.dest}{suffix}"


# --- the basket restored -------------------------------------------------------------


def test_director_creates_its_schema_and_restores_the_basket(director):
    pending = run(["icingacli", "director", "migration", "pending", "--verbose"],
                  env=director.env)
    assert (pending.returncode, pending.stdout) == (1, "There are no pending migrations\n")
    names = {row[0] for row in director.sql(
        "SELECT object_name FROM icinga_command WHERE object_type = 'object'")}
    assert names == expected_commands()


def test_restoring_the_basket_again_changes_nothing(director):
    before = director.sql("SELECT COUNT(*) FROM director_datafield UNION ALL "
                          "SELECT COUNT(*) FROM icinga_command_argument UNION ALL "
                          "SELECT COUNT(*) FROM icinga_service")
    done = director.cli("basket", "restore", stdin=BASKET.read_text())
    assert done.stdout == "Objects from Basket Snapshot have been restored\n"
    assert director.sql("SELECT COUNT(*) FROM director_datafield UNION ALL "
                        "SELECT COUNT(*) FROM icinga_command_argument UNION ALL "
                        "SELECT COUNT(*) FROM icinga_service") == before


def test_every_option_of_every_parser_is_an_argument_with_its_meaning(director):
    for plugin, parser in parsers():
        command = director.show("command", plugin.command)
        assert command["command"] == f"PluginContribDir + /{plugin.name}"
        arguments = command["arguments"]
        seen, last_order = set(), 0
        for action, key in generate.options(parser):
            var = variable(plugin, action)
            help_line = generate.help_text(parser, action)
            if isinstance(action, argparse._CountAction):
                for level in (1, 2, 3):
                    argument = arguments["-" + "v" * level]
                    assert argument["set_if"] == f'macro("${var}$") == {level}'
                    assert argument["set_if_format"] == "expression"
                    assert "value" not in argument
                    assert argument["description"].startswith(help_line)
                    seen.add("-" + "v" * level)
                continue
            argument = arguments[key]
            seen.add(key)
            assert argument["description"] == help_line, (plugin.name, key)
            if action.nargs == 0:  # a flag: passed when its variable is true, no value
                assert (argument["set_if"], argument["set_if_format"]) == (f"${var}$", "string")
                assert "value" not in argument
            else:
                assert argument["value"] == f"${var}$" and "set_if" not in argument
            assert argument.get("repeat_key", False) == isinstance(action,
                                                                   argparse._AppendAction)
            assert argument.get("required", False) == action.required
            assert int(argument["order"]) > last_order, (plugin.name, key)  # --help order
            last_order = int(argument["order"])
        assert seen == set(arguments), plugin.name


def test_defaults_are_command_variables_the_parser_gives_back(director):
    for plugin, parser in parsers():
        found = director.show("command", plugin.command).get("vars", {})
        wanted = set()
        for action, key in generate.options(parser):
            if action.default in (None, False, [], 0):
                continue
            var = variable(plugin, action)
            wanted.add(var)
            value = found[var]
            assert isinstance(value, int) == generate.is_number(action), (var, value)
            assert getattr(parser.parse_args([key, str(value)]), action.dest) == action.default
        assert set(found) == wanted, plugin.name


def test_sudo_commands_take_exactly_the_options_of_the_sudoers_lines(director):
    for plugin in generate.PLUGINS:
        if not any(f.root for f in plugin.fixed):
            continue
        command = director.show("command", plugin.command + "_sudo")
        assert command["command"] == f"/usr/bin/sudo -n {generate.PLUGIN_DIR}/{plugin.name}"
        assert set(command.get("arguments", {})) == sudo_options(plugin)
        assert "vars" not in command  # a default would be an argument sudo refuses


def fields_by_command(director) -> dict[str, dict[str, dict]]:
    rows = director.sql(
        "SELECT c.object_name, f.varname, f.caption, f.description, f.datatype, "
        "cat.category_name, cf.is_required, "
        "(SELECT GROUP_CONCAT(e.entry_name ORDER BY e.entry_name) "
        " FROM director_datafield_setting s JOIN director_datalist_entry e "
        " ON e.list_id = s.setting_value WHERE s.datafield_id = f.id "
        " AND s.setting_name = 'datalist_id') "
        "FROM icinga_command c JOIN icinga_command_field cf ON cf.command_id = c.id "
        "JOIN director_datafield f ON f.id = cf.datafield_id "
        "LEFT JOIN director_datafield_category cat ON cat.id = f.category_id")
    found: dict[str, dict[str, dict]] = {}
    for name, var, caption, description, datatype, category, required, entries in rows:
        found.setdefault(name, {})[var] = {
            "caption": caption, "description": description, "type": datatype[len(DATATYPE):],
            "category": category, "required": required,
            "choices": None if entries == "NULL" else entries.split(",")}
    return found


def field_type(action) -> str:
    if isinstance(action, argparse._CountAction) or generate.is_number(action):
        return "Number"
    if action.nargs == 0:
        return "Boolean"
    if isinstance(action, argparse._AppendAction):
        return "Array"
    return "Datalist" if action.choices else "String"


def test_every_option_has_a_described_field_of_its_type(director):
    found = fields_by_command(director)
    for plugin, parser in parsers():
        fields = found[plugin.command]
        sudo = found.get(plugin.command + "_sudo", {})
        wanted, wanted_sudo = set(), set()
        for action, key in generate.options(parser):
            var = variable(plugin, action)
            wanted.add(var)
            field = fields[var]
            assert field["description"].startswith(generate.help_text(parser, action)), var
            assert field["caption"].startswith(key), var
            assert field["type"] == field_type(action), var
            assert field["category"] == "conntrack-checks"
            assert field["required"] == ("y" if action.required else "n")
            assert field["choices"] == (sorted(map(str, action.choices))
                                        if action.choices else None), var
            if key in sudo_options(plugin):
                wanted_sudo.add(var)
                assert sudo[var] == field
        assert set(fields) == wanted, plugin.name
        assert set(sudo) == wanted_sudo, plugin.name


def normalized(basket: dict) -> dict:
    """A basket with its data fields named by variable instead of database id."""
    basket = json.loads(json.dumps(basket))
    names = {str(i): field["varname"] for i, field in basket["Datafield"].items()}
    for kind in ("Command", "ServiceTemplate"):
        for item in basket[kind].values():
            for field in item["fields"]:
                field["datafield_id"] = names[str(field["datafield_id"])]
    basket["Datafield"] = {f["varname"]: {k: v for k, v in f.items() if k != "originalId"}
                           for f in basket["Datafield"].values()}
    for category in basket["DatafieldCategory"].values():
        category.pop("originalId", None)
    return basket


def test_a_basket_of_the_restored_objects_is_the_shipped_basket(director):
    """What Director exports again is what it was given: nothing dropped or changed."""
    director.cli("basket", "restore", stdin=json.dumps({"Basket": {"conntrack-roundtrip": {
        "basket_name": "conntrack-roundtrip", "owner_type": "user", "owner_value": "test",
        "objects": {"Command": True, "ServiceTemplate": True, "DataList": True}}}}))
    dumped = json.loads(director.cli("basket", "dump", "--name", "conntrack-roundtrip").stdout)
    shipped = json.loads(BASKET.read_text())
    assert set(dumped) == set(shipped)
    assert normalized(dumped) == normalized(shipped)


# --- the configuration Director renders ------------------------------------------------


def templates():
    """Service template -> (plugin, fixed line) for every NRPE/Nagios line of the plugins."""
    found = {}
    for plugin in generate.PLUGINS:
        name = generate.DIRECTOR_CASES[plugin.name][0]
        for fixed in plugin.fixed:
            found[name + fixed.suffix.replace("_", "-")] = (plugin, fixed)
    return found


def test_each_template_runs_its_check_on_the_agent_with_a_sensible_interval(director):
    for name, (plugin, fixed) in templates().items():
        template = director.show("service", name)
        assert template["object_type"] == "template"
        assert template["use_agent"] is True
        assert template["check_command"] == plugin.command + ("_sudo" if fixed.root else "")
        assert 60 <= int(template["check_interval"]) <= 3600
        assert 30 <= int(template["retry_interval"]) <= int(template["check_interval"])
        assert template.get("vars", {}) == generate.icinga_vars(plugin, fixed.args)
        assert template["notes_url"] == f"man:{plugin.name}(1)"  # the runbook


def rendered_files(director) -> dict[str, str]:
    done = director.cli("config", "render")
    checksum = re.search(r"checksum ([0-9a-f]{40})", done.stdout).group(1)
    rows = director.sql(
        "SELECT f.file_path, HEX(g.content) FROM director_generated_config_file f "
        "JOIN director_generated_file g ON g.checksum = f.file_checksum "
        f"WHERE f.config_checksum = UNHEX('{checksum}')")
    return {path: bytes.fromhex(content).decode() for path, content in rows}


def icinga_config(base: Path, files: dict[str, str]) -> Path:
    """Director's files, a master whose host is its own endpoint, a service per template."""
    zones = base / "zones"
    for path, text in files.items():
        target = zones / Path(path).relative_to("zones.d")
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text)
    (zones / "master").mkdir(exist_ok=True)
    services = [f'object Host "{NODE}" {{ check_command = "dummy"; '
                "enable_active_checks = false }"]
    for name in templates():
        # checked every second here; command_endpoint = host_name from the template
        services.append(f'object Service "{name}" {{ import "{name}"; host_name = "{NODE}"; '
                        "check_interval = 1s; retry_interval = 1s }")
    (zones / "master" / "services.conf").write_text("\n".join(services) + "\n")
    plugins = base / "plugins"  # empty: the plain plugins fail to start, their lines are logged
    plugins.mkdir()
    certs = base / "certs"
    certs.mkdir()
    shutil.chown(certs, "nagios", "nagios")  # icinga2 pki writes as nagios
    done = run(["icinga2", "pki", "new-cert", "--cn", NODE, "--key", certs / f"{NODE}.key",
                "--cert", certs / f"{NODE}.crt"])
    assert done.returncode == 0, done.stdout + done.stderr
    conf = base / "icinga2.conf"
    conf.write_text("\n".join([
        'const PluginDir = "/usr/lib/nagios/plugins"',
        f'const PluginContribDir = "{plugins}"',
        f'const NodeName = "{NODE}"',
        'const ZoneName = "master"',
        "include <itl>",
        "include <plugins>",
        "object Endpoint NodeName { }",
        'object Zone "master" { endpoints = [ NodeName ] }',
        'object Zone "director-global" { global = true }',
        f'include_zones "director", "{zones}"',
        'object CheckerComponent "checker" { }',
        # command_endpoint runs a check here only when this node is an API endpoint
        "object ApiListener \"api\" {",
        f'  cert_path = "{certs}/{NODE}.crt"',
        f'  key_path = "{certs}/{NODE}.key"',
        f'  ca_path = "{certs}/{NODE}.crt"',
        '  bind_host = "127.0.0.1"',
        f'  bind_port = {free_port()}',
        "  accept_config = false",
        "}",
        f'object FileLogger "commands" {{ path = "{base}/logdir/commands.log"; '
        'severity = "notice" }',
    ]) + "\n")
    return conf


# sudo is /bin/true inside the daemon's mount namespace: the lines are logged, not run.
NO_SUDO = 'mount --bind /bin/true /usr/bin/sudo && exec "$@"'


def test_icinga2_runs_the_rendered_templates_with_the_sudoers_lines(director):
    base = Path(tempfile.mkdtemp(prefix="icinga.", dir=director.base))
    base.chmod(0o755)
    conf = icinga_config(base, rendered_files(director))
    dirs = icinga_dirs(base)
    checked = run(["icinga2", "daemon", "-C", "-c", conf, *dirs])
    assert checked.returncode == 0, checked.stdout
    assert f"Instantiated {len(templates())} Services." in checked.stdout
    daemon = subprocess.Popen(
        ["unshare", "--mount", "--propagation", "slave", "sh", "-c", NO_SUDO, "sh",
         "icinga2", "daemon", "-c", conf, *dirs, "-DRunAsUser=nagios", "-DRunAsGroup=nagios"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        stdin=subprocess.DEVNULL, env=DAEMON_ENV)
    log = base / "logdir" / "commands.log"
    wanted = root_lines()
    ran: set[str] = set()
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and daemon.poll() is None:
            ran = command_lines(log)
            plain = {line.split()[0] for line in ran}
            if set(wanted.values()) <= ran and all(
                    f"{base}/plugins/{p.name}" in plain for p, _ in plain_templates()):
                break
            time.sleep(0.5)
    finally:
        daemon.send_signal(signal.SIGTERM)
        output, _ = daemon.communicate(timeout=60)
    missing = {name: line for name, line in wanted.items() if line not in ran}
    assert not missing, f"{missing}\nran: {sorted(ran)}\n{output}"
    for plugin, fixed in plain_templates():
        parser = generate.parser_of(plugin)
        runs = [line.split()[1:] for line in ran
                if line.split()[0] == f"{base}/plugins/{plugin.name}"]
        assert runs, f"{plugin.name} never ran:\n{output}"
        # the defaults are on the line too: it means what the NRPE line means
        assert {str(vars(parser.parse_args(argv))) for argv in runs} == {
            str(vars(parser.parse_args(fixed.args.split())))}, runs


def root_lines() -> dict[str, str]:
    """Template -> the sudoers line Icinga 2 must run, word for word."""
    found = {}
    for name, (plugin, fixed) in templates().items():
        if fixed.root:
            lines = dict(generate.fixed_commands(
                generate.Plugin(plugin.name, (fixed,)), generate.PLUGIN_DIR))
            found[name] = lines[plugin.name + fixed.suffix]
    return found


def plain_templates():
    return [(plugin, fixed) for plugin, fixed in templates().values() if not fixed.root]


def command_lines(log: Path) -> set[str]:
    if not log.exists():
        return set()
    found = set()
    for line in log.read_text().splitlines():
        match = re.search(r"notice/Process: Running command (.*): PID \d+", line)
        if match:
            found.add(" ".join(re.findall(r"'([^']*)'", match.group(1))))
    return found
