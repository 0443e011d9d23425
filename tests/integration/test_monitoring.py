"""The shipped contrib/ files against the real daemons, as a real host runs them.

contrib/install-plugins installs the checkout into a venv made from
/usr/bin/python3 and links the plugins into a plugin directory, both under
/var/tmp where the nagios user can reach them. The daemons run in a private
mount namespace in which that directory is /usr/lib/nagios/plugins, the
shipped sudoers file is all of /etc/sudoers.d and /var/lib (where state
files go) is a temporary directory, so the shipped files are used word for
word and nothing under /etc, /usr or /var/lib changes. Icinga 2 and NRPE drop
to the nagios user; a Lab namespace filled to CRITICAL is seen through sudo.
"""

from __future__ import annotations

import os
import pwd
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
from lab import Lab, need_root_tools
from ports import free_port, wait_listening

REPO = Path(__file__).resolve().parents[2]
CONTRIB = REPO / "contrib"
sys.path.insert(0, str(CONTRIB))
import generate  # noqa: E402

PLUGIN_DIR = "/usr/lib/nagios/plugins"
SUDO = "/usr/bin/sudo"
CHECK_NRPE = "/usr/lib/nagios/plugins/check_nrpe"
LAB_MAX = 1000
# check_nrpe 4.1 measured here: its default (version 4) packets carried 6002 bytes of
# output; -2 and -3 packets cut the output at 1023 bytes and a newline.
NRPE_SMALL_PACKET = 1024
NRPE_LIMIT = 65536
# Stateful plugins give rates only when a second has passed since their last run
# (deltas.MIN_ELAPSED): runs to compare are at least this far apart.
GAP = 1.1
# The environment systemd gives a service: no HOME, no pyenv, no root paths.
DAEMON_ENV = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C.UTF-8"}
PRIVATE = ('mount --bind "$1" /usr/lib/nagios/plugins && '
           'mount --bind "$2" /etc/sudoers.d && '
           'mount --bind "$3" /var/lib && shift 3 && exec "$@"')


class Host:
    """A plugin installation and the mount namespace that puts it in place."""

    def __init__(self, base: Path):
        self.base = base
        self.venv = base / "venv"
        self.plugins = base / "plugins"
        self.sudoers = base / "sudoers.d"
        # State files of the plugins (nagios's home, /var/lib/conntrack-checks as root)
        # land here instead of the real /var/lib.
        self.varlib = base / "varlib"

    def private(self, *cmd) -> list[str]:
        """cmd inside a mount namespace with the shipped plugin dir and sudoers."""
        return ["unshare", "--mount", "--propagation", "slave", "sh", "-c", PRIVATE, "sh",
                str(self.plugins), str(self.sudoers), str(self.varlib), *map(str, cmd)]

    def as_nagios(self, line: str) -> subprocess.CompletedProcess:
        """A command line from the shipped files, run as NRPE runs it (no shell)."""
        cmd = self.private("setpriv", "--reuid=nagios", "--regid=nagios", "--init-groups",
                           "env", "-i", *(f"{k}={v}" for k, v in DAEMON_ENV.items()),
                           *line.split())
        return subprocess.run(cmd, capture_output=True, text=True, timeout=120,
                              stdin=subprocess.DEVNULL)


def run(cmd, **kwargs):
    return subprocess.run([str(c) for c in cmd], capture_output=True, text=True, timeout=300,
                          stdin=subprocess.DEVNULL, **kwargs)


@pytest.fixture(scope="module")
def host():
    need_root_tools("icinga2", "nrpe", "nagios4", "sudo", "visudo", "unshare", "setpriv",
                    CHECK_NRPE, "ip", "nft", "conntrack")
    try:
        pwd.getpwnam("nagios")
    except KeyError:
        pytest.fail("no user nagios: the Debian packages of tests/debian-packages.txt make it")
    # Not under /root or pytest's 0700 tmp: the nagios user must reach the venv.
    base = Path(tempfile.mkdtemp(prefix="ctc-monitoring.", dir="/var/tmp"))
    try:
        base.chmod(0o755)
        host = Host(base)
        done = run([CONTRIB / "install-plugins", "--venv", host.venv,
                    "--plugin-dir", host.plugins])
        assert done.returncode == 0, done.stderr
        host.install_output = done.stdout
        host.sudoers.mkdir()
        (host.varlib / "nagios").mkdir(parents=True)
        shutil.chown(host.varlib / "nagios", "nagios", "nagios")
        target = host.sudoers / "conntrack-checks"
        shutil.copyfile(CONTRIB / "sudoers" / "conntrack-checks", target)
        target.chmod(0o440)
        yield host
    finally:
        shutil.rmtree(base, ignore_errors=True)


# --- installation --------------------------------------------------------------------


def test_install_links_every_listed_plugin_into_the_plugin_dir(host):
    for plugin in generate.PLUGINS:
        link = host.plugins / plugin.name
        assert link.is_symlink(), host.install_output
        assert os.readlink(link) == str(host.venv / "bin" / plugin.name)
        assert f"{link} -> {host.venv}/bin/{plugin.name} ({plugin.name} (conntrack-checks) " \
            in host.install_output
    shebang = (host.venv / "bin" / "check_conntrack").read_text().splitlines()[0]
    assert shebang == f"#!{host.venv}/bin/python"
    assert os.path.realpath(host.venv / "bin" / "python").startswith("/usr/bin/python3")


def test_install_again_with_link_only_keeps_the_links(host):
    done = run([CONTRIB / "install-plugins", "--venv", host.venv, "--plugin-dir", host.plugins,
                "--link-only"])
    assert done.returncode == 0, done.stderr
    for plugin in generate.PLUGINS:
        assert os.readlink(host.plugins / plugin.name) == str(host.venv / "bin" / plugin.name)


def test_install_never_overwrites_a_file_that_is_not_a_link(host, tmp_path):
    (tmp_path / "check_conntrack").write_text("someone else's plugin\n")
    done = run([CONTRIB / "install-plugins", "--venv", host.venv, "--plugin-dir", tmp_path,
                "--link-only"])
    assert done.returncode == 1
    assert "check_conntrack exists and is not a link: remove it first" in done.stderr
    assert (tmp_path / "check_conntrack").read_text() == "someone else's plugin\n"


@pytest.mark.parametrize("argv, message", [
    (["--venv", "relative/venv"], "--venv must be an absolute path (the links point at it)"),
    (["--venv"], "--venv needs a value"),
    (["--bogus"], "unknown argument '--bogus' (see --help)"),
])
def test_install_refuses_bad_arguments(argv, message):
    done = run([CONTRIB / "install-plugins", *argv])
    assert (done.returncode, done.stderr) == (1, f"install-plugins: {message}\n")


def test_plugins_run_as_nagios_without_root(host):
    for plugin in generate.PLUGINS:
        done = host.as_nagios(f"{PLUGIN_DIR}/{plugin.name}")
        assert done.stderr == ""
        if plugin.root and done.returncode == 3:
            assert_needs_root(done)
        else:
            assert done.returncode in (0, 1, 2), done.stdout


def assert_needs_root(done) -> None:
    """One UNKNOWN line that says root is needed and where the sudoers rules are."""
    assert done.returncode == 3, done.stdout
    assert done.stdout.count("\n") == 1 and " UNKNOWN - " in done.stdout
    assert "root" in done.stdout and "contrib/sudoers" in done.stdout


def test_root_variants_say_clearly_that_they_need_root(host):
    for plugin in generate.PLUGINS:
        for fixed in plugin.fixed:
            if fixed.root:
                assert_needs_root(host.as_nagios(f"{PLUGIN_DIR}/{plugin.name} {fixed.args}"))


def test_sudoers_allows_exactly_the_shipped_lines(host):
    root_lines = {line[len(generate.SUDO) + 1:] for plugin in generate.PLUGINS
                  for _, line in generate.fixed_commands(plugin, PLUGIN_DIR)
                  if line.startswith(generate.SUDO)}
    for plugin in generate.PLUGINS:
        for fixed in plugin.fixed:
            if not fixed.root:
                continue
            line = f"{PLUGIN_DIR}/{plugin.name} {fixed.args}".strip()
            allowed = host.as_nagios(f"/usr/bin/sudo -n {line}")
            assert allowed.returncode in (0, 1, 2), allowed.stdout + allowed.stderr
            others = {f"{line} -v", f"{line} --proc-root /root", f"{PLUGIN_DIR}/{plugin.name}"}
            for other in others - root_lines:
                refused = host.as_nagios(f"/usr/bin/sudo -n {other}")
                assert refused.returncode == 1, other
                assert "a password is required" in refused.stderr


# --- the daemons ---------------------------------------------------------------------


def split_output(stdout: str) -> tuple[str, str]:
    """(text, perfdata) as Nagios and Icinga split plugin output."""
    lines = stdout.rstrip("\n").split("\n")
    text, _, perf = lines[0].partition("|")
    texts, perfs, in_perf = [text.rstrip()], [perf.strip()], False
    for line in lines[1:]:
        if in_perf:
            perfs.append(line.strip())
        elif "|" in line:
            text, _, perf = line.partition("|")
            if text.strip():
                texts.append(text.rstrip())
            perfs.append(perf.strip())
            in_perf = True
        else:
            texts.append(line.rstrip())
    return "\n".join(texts), " ".join(p for p in perfs if p)


def shape(text: str) -> str:
    """Numbers out: the host's own table may move between two runs."""
    return re.sub(r"\d+(?:\.\d+)?", "N", text)


def assert_same(line: str, got: tuple[str, str], want: tuple[str, str], crit: str) -> None:
    """Two runs of ``line`` gave the same (text, perfdata), numbers aside.

    --all-netns also sees the namespaces that other processes on this machine
    make and remove between the two runs: there only the state word, the
    lab's namespace and the host are compared.
    """
    if "--all-netns" not in line:
        assert (shape(got[0]), shape(got[1])) == (shape(want[0]), shape(want[1])), line
        return
    assert got[0].split(" - ")[0] == want[0].split(" - ")[0], line
    ours = [item for item in want[1].split() if crit in item or "host" in item]
    assert {shape(i) for i in ours} <= {shape(i) for i in got[1].split()}, line


def services(host) -> dict[str, tuple[str, dict, str]]:
    """Icinga service name -> (check_command, vars, the command line it must run)."""
    found = {}
    for plugin in generate.PLUGINS:
        found[plugin.command] = (plugin.command, {}, f"{PLUGIN_DIR}/{plugin.name}")
        for fixed in plugin.fixed:
            line = f"{PLUGIN_DIR}/{plugin.name} {fixed.args}".strip()
            variables = generate.icinga_vars(plugin, fixed.args)
            name = plugin.command + (fixed.suffix or "_fixed")
            if fixed.root:
                found[name] = (plugin.command + "_sudo", variables, f"/usr/bin/sudo -n {line}")
                found[name + "_unprivileged"] = (plugin.command, variables, line)
            elif line != f"{PLUGIN_DIR}/{plugin.name}":  # not the plain service again
                found[name] = (plugin.command, variables, line)
    found["conntrack_verbose"] = ("conntrack", {"conntrack_verbose_level": 2,
                                                "conntrack_expect_max": "1"},
                                  f"{PLUGIN_DIR}/check_conntrack --expect-max 1 -vv")
    if any(p.name == "check_conntrack_tuning" for p in generate.PLUGINS):  # repeat_key
        found["conntrack_tuning_repeat"] = (
            "conntrack_tuning", {"conntrack_tuning_ignore": ["persist-max", "timeout-*"]},
            f"{PLUGIN_DIR}/check_conntrack_tuning --ignore persist-max --ignore timeout-*")
    return found


def icinga_value(value) -> str:
    if isinstance(value, list):
        return "[ " + ", ".join(map(icinga_value, value)) + " ]"
    if value is True:
        return "true"
    if isinstance(value, int):
        return str(value)
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def icinga_config(host, conf: Path, spool: Path) -> None:
    lines = [
        'const PluginDir = "/usr/lib/nagios/plugins"',
        f'const PluginContribDir = "{PLUGIN_DIR}"',
        'const NodeName = "localhost"',
        "include <itl>",
        "include <plugins>",
        f'include "{CONTRIB / "icinga2" / "conntrack-checks.conf"}"',
        'object CheckerComponent "checker" { }',
        # notice/Process logs every command line Icinga runs
        f'object FileLogger "commands" {{ path = "{spool.parent}/logdir/commands.log"; '
        'severity = "notice" }',
        'object PerfdataWriter "results" {',
        f'  service_perfdata_path = "{spool}/service"',
        f'  service_temp_path = "{spool}/service.tmp"',
        f'  host_perfdata_path = "{spool}/host"',
        f'  host_temp_path = "{spool}/host.tmp"',
        '  service_format_template = "RESULT\\t$service.name$\\t$service.state$\\t'
        '$service.state_id$\\t$service.output$\\t$service.perfdata$"',
        "  rotation_interval = 1s",
        "}",
        'object Host "localhost" {',
        '  check_command = "dummy"',
        "  enable_active_checks = false",
        "}",
    ]
    for name, (command, variables, _) in services(host).items():
        lines += [f'object Service "{name}" {{', '  host_name = "localhost"',
                  f'  check_command = "{command}"', "  check_interval = 3s",
                  "  retry_interval = 3s"]
        lines += [f"  vars.{var} = {icinga_value(value)}" for var, value in variables.items()]
        lines.append("}")
    conf.write_text("\n".join(lines) + "\n")


def icinga_dirs(base: Path) -> list[str]:
    args = []
    for const in ("DataDir", "CacheDir", "LogDir", "InitRunDir", "SpoolDir"):
        path = base / const.lower()
        path.mkdir(exist_ok=True)
        shutil.chown(path, "nagios", "nagios")
        args.append(f"-D{const}={path}")
    return args


def read_results(spool: Path) -> dict[str, tuple[str, int, str, str]]:
    """First (state, state_id, output, perfdata) per service from the rotated files."""
    text = "".join(p.read_text() for p in sorted(spool.glob("service.*"))
                   if not p.name.endswith(".tmp"))
    results = {}
    for record in re.split(r"^RESULT\t", text, flags=re.M)[1:]:
        name, state, state_id, output, perfdata = record.rstrip("\n").split("\t")
        results.setdefault(name, (state, int(state_id), output, perfdata))
    return results


def run_icinga(host) -> dict:
    base = Path(tempfile.mkdtemp(prefix="icinga.", dir=host.base))
    base.chmod(0o755)
    conf = base / "icinga2.conf"
    dirs = icinga_dirs(base)
    spool = base / "spooldir"
    icinga_config(host, conf, spool)
    daemon = subprocess.Popen(
        host.private("icinga2", "daemon", "-c", conf, *dirs, "-DRunAsUser=nagios",
                     "-DRunAsGroup=nagios"),
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        stdin=subprocess.DEVNULL, env=DAEMON_ENV)
    wanted = set(services(host))
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and daemon.poll() is None:
            results = read_results(spool)
            if wanted <= set(results):
                break
            time.sleep(0.5)
    finally:
        daemon.send_signal(signal.SIGTERM)
        log, _ = daemon.communicate(timeout=60)
    assert wanted <= set(results), f"no result for {wanted - set(results)}:\n{log}"
    return {"results": results, "log": log,
            "commands": (base / "logdir" / "commands.log").read_text()}


def nrpe_commands(host) -> dict[str, str]:
    commands = {}
    for plugin in generate.PLUGINS:
        for name, line in generate.fixed_commands(plugin, PLUGIN_DIR):
            commands[name] = line
    return commands


def run_nrpe(host) -> dict:
    port = free_port()
    conf = host.base / "nrpe.cfg"
    conf.write_text("\n".join([
        f"pid_file={host.base}/nrpe.pid",
        f"server_port={port}",
        "server_address=127.0.0.1",
        "allowed_hosts=127.0.0.1",
        "nrpe_user=nagios",
        "nrpe_group=nagios",
        "dont_blame_nrpe=0",
        "allow_bash_command_substitution=0",
        "command_timeout=60",
        f"include={CONTRIB / 'nrpe' / 'conntrack-checks.cfg'}",
    ]) + "\n")
    daemon = subprocess.Popen(host.private("/usr/sbin/nrpe", "-c", conf, "-f"),
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                              stdin=subprocess.DEVNULL, env=DAEMON_ENV)
    answers = {}
    try:
        wait_listening(port)
        for packet in ("-4", "-2"):
            time.sleep(GAP)
            for name in [*nrpe_commands(host), "no_such_command"]:
                version = [] if packet == "-4" else [packet]  # -4: check_nrpe's default
                done = run([CHECK_NRPE, "-H", "127.0.0.1", "-p", port, *version, "-t", "60",
                            "-c", name])
                answers[name, packet] = (done.returncode, done.stdout)
    finally:
        daemon.terminate()
        log, _ = daemon.communicate(timeout=30)
    return {"answers": answers, "log": log}


@pytest.fixture(scope="module")
def recorded(host):
    """The daemons' results, and the same command lines run by hand, with a lab open."""
    lines = {*nrpe_commands(host).values(), *(line for _, _, line in services(host).values())}
    with Lab(max_entries=LAB_MAX) as lab:
        crit = lab.namespace("crit", flows=950)
        assert lab.count(crit) == 950
        for line in lines:  # stateful plugins: the baseline run first, then all compare
            host.as_nagios(line)
        time.sleep(GAP)
        icinga = run_icinga(host)
        nrpe = run_nrpe(host)
        time.sleep(GAP)
        by_hand = {line: host.as_nagios(line) for line in lines}
    return {"crit": crit, "icinga": icinga, "nrpe": nrpe, "by_hand": by_hand}


def test_icinga_records_what_each_command_line_gives(host, recorded):
    results = recorded["icinga"]["results"]
    for name, (_, _, line) in services(host).items():
        state, state_id, output, perfdata = results[name]
        done = recorded["by_hand"][line]
        text, perf = split_output(done.stdout + done.stderr)
        assert state_id == done.returncode, (name, output, done.stdout)
        assert state == ["OK", "WARNING", "CRITICAL", "UNKNOWN"][state_id]
        assert_same(line, (output.rstrip(), perfdata), (text, perf), recorded["crit"])


def assert_lab_critical(output: str, perfdata: str, crit: str) -> None:
    """The lab namespace's 950 entries, give or take one the kernel let go meanwhile."""
    found = re.search(rf"{crit}: (\d+) of {LAB_MAX} entries \(([\d.]+)%, critical above 90%\)",
                      output)
    assert found, output
    count = int(found.group(1))
    assert 945 <= count <= 950 and found.group(2) == f"{100 * count / LAB_MAX:.1f}"
    assert f"count_{crit}={count};800;900;0;{LAB_MAX}" in perfdata.split()


def test_icinga_sees_the_full_namespace_through_sudo(recorded):
    crit = recorded["crit"]
    state, state_id, output, perfdata = recorded["icinga"]["results"]["conntrack_all_netns"]
    assert (state, state_id) == ("CRITICAL", 2)
    # other namespaces on this machine may count against the lab's low max too
    assert re.match(r"CONNTRACK CRITICAL - \d+ of \d+ namespaces over threshold: ", output)
    assert_lab_critical(output, perfdata, crit)


def test_icinga_plugins_run_unprivileged_and_say_when_root_is_needed(host, recorded):
    results = recorded["icinga"]["results"]
    state, _, output, perfdata = results["conntrack"]
    assert state == "OK"  # the host's own table, as nagios
    assert re.fullmatch(r"CONNTRACK OK - \d+ of 1000 entries \([\d.]+%\)", output.rstrip())
    assert re.search(r"\bcount=\d+;800;900;0;1000\b", perfdata)
    for name in services(host):
        if name.endswith("_unprivileged"):
            state, _, output, perfdata = results[name]
            assert state == "UNKNOWN" and perfdata == "", name
            assert "root" in output and "contrib/sudoers" in output, name


def test_icinga_passes_verbosity_and_values(recorded):
    state, _, output, perfdata = recorded["icinga"]["results"]["conntrack_verbose"]
    assert state == "WARNING"
    lines = output.split("\n")
    assert lines[0].startswith("CONNTRACK WARNING - ")
    assert f"nf_conntrack_max is {LAB_MAX}, expected 1" in lines[0]
    assert "max from /proc/sys/net/netfilter/nf_conntrack_max" in lines
    assert re.search(r"\bmax=1000;;;0\b", perfdata)


def test_icinga_log_has_no_errors(recorded):
    log = recorded["icinga"]["log"]
    assert "information/CheckerComponent: 'checker' started." in log
    assert "critical/" not in log and "warning/" not in log, log


def test_nrpe_passes_exit_code_output_and_perfdata_unchanged(host, recorded):
    answers = recorded["nrpe"]["answers"]
    for name, line in nrpe_commands(host).items():
        done = recorded["by_hand"][line]
        assert done.stderr == ""
        code, stdout = answers[name, "-4"]
        assert code == done.returncode, (name, stdout)
        assert_same(line, split_output(stdout), split_output(done.stdout), recorded["crit"])
        assert len(stdout.encode()) < NRPE_LIMIT
        code2, stdout2 = answers[name, "-2"]
        assert code2 == code, (name, stdout2)
        if len(stdout.encode()) < NRPE_SMALL_PACKET:
            assert_same(line, split_output(stdout2), split_output(stdout), recorded["crit"])
        else:  # an old client's packet cuts the output at 1 KiB
            assert len(stdout2.encode()) == NRPE_SMALL_PACKET, name
            assert shape(stdout).startswith(shape(stdout2.rstrip("\n"))), name
    for name in ("check_conntrack", "check_conntrack_hash"):  # fit even NRPE 2 packets
        assert len(answers[name, "-4"][1].encode()) < NRPE_SMALL_PACKET
    crit = recorded["crit"]
    code, stdout = answers["check_conntrack_all_netns", "-4"]
    assert code == 2
    assert_lab_critical(*split_output(stdout), crit)
    assert answers["no_such_command", "-4"] == (3, "NRPE: Command 'no_such_command' not defined\n")


# --- validation ----------------------------------------------------------------------


def test_icinga2_validates_commands_and_the_agent_example(host):
    base = Path(tempfile.mkdtemp(prefix="icinga-agents.", dir=host.base))
    base.chmod(0o755)
    zones = base / "zones.d"
    (zones / "master").mkdir(parents=True)
    (zones / "global-templates").mkdir()
    shutil.copyfile(CONTRIB / "icinga2" / "conntrack-checks.conf",
                    zones / "global-templates" / "conntrack-checks.conf")
    example = (CONTRIB / "icinga2" / "conntrack-agents.conf.example").read_text()
    (zones / "master" / "conntrack.conf").write_text(
        example + '\nobject Host "web1.example.com" {\n  check_command = "dummy"\n'
        "  vars.agent_endpoint = name\n  vars.conntrack = true\n"
        "  vars.conntrack_all_netns = true\n}\n")
    conf = base / "icinga2.conf"
    conf.write_text("\n".join([
        'const PluginDir = "/usr/lib/nagios/plugins"',
        'const PluginContribDir = "/usr/lib/nagios/plugins"',
        'const NodeName = "master.example"',
        'const ZoneName = "master"',
        "include <itl>",
        "include <plugins>",
        "object Endpoint NodeName { }",
        'object Zone "master" { endpoints = [ NodeName ] }',
        'object Zone "global-templates" { global = true }',
        'object Endpoint "web1.example.com" { }',
        'object Zone "web1.example.com" { endpoints = [ "web1.example.com" ]; '
        'parent = "master" }',
        f'include_zones "conntrack", "{zones}"',
    ]) + "\n")
    done = run(["icinga2", "daemon", "-C", "-c", conf, *icinga_dirs(base)])
    assert done.returncode == 0, done.stdout + done.stderr
    ours = sum(2 if any(f.root for f in p.fixed) else 1 for p in generate.PLUGINS)
    itl_only = base / "itl-only.conf"
    itl_only.write_text("\n".join(conf.read_text().splitlines()[:6]) + "\n")
    itl = run(["icinga2", "daemon", "-C", "-c", itl_only, *icinga_dirs(base)])
    itl_count = int(re.search(r"Instantiated (\d+) CheckCommands", itl.stdout).group(1))
    assert f"Instantiated {itl_count + ours} CheckCommands." in done.stdout
    assert "Instantiated 6 Services." in done.stdout
    assert "Finished validating the configuration file(s)." in done.stdout


def test_icinga2_rejects_a_broken_command_file(host, tmp_path):
    """The validation above can fail: a CheckCommand with a typo does not pass."""
    base = Path(tempfile.mkdtemp(prefix="icinga-broken.", dir=host.base))
    base.chmod(0o755)
    broken = base / "broken.conf"
    broken.write_text((CONTRIB / "icinga2" / "conntrack-checks.conf").read_text()
                      .replace("set_if =", "set_iff =", 1))
    conf = base / "icinga2.conf"
    conf.write_text('const PluginContribDir = "/usr/lib/nagios/plugins"\n'
                    f'include "{broken}"\n')
    done = run(["icinga2", "daemon", "-C", "-c", conf, *icinga_dirs(base)])
    assert done.returncode != 0
    assert "set_iff" in done.stdout


def nagios_objects(commands: list[str]) -> str:
    always = "\n".join(f"    {day} 00:00-24:00" for day in (
        "monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"))
    parts = [
        f"define timeperiod {{\n    timeperiod_name always\n    alias always\n{always}\n}}",
        "define contact {\n    contact_name admin\n    host_notifications_enabled 0\n"
        "    service_notifications_enabled 0\n    host_notification_period always\n"
        "    service_notification_period always\n    host_notification_options n\n"
        "    service_notification_options n\n"
        f"    host_notification_commands {commands[0]}\n"
        f"    service_notification_commands {commands[0]}\n}}",
        "define host {\n    host_name localhost\n    address 127.0.0.1\n"
        "    max_check_attempts 1\n    check_period always\n    contacts admin\n"
        "    notification_period always\n}",
    ]
    for command in commands:
        parts.append(f"define service {{\n    host_name localhost\n"
                     f"    service_description {command}\n"
                     f"    check_command {command}!-w 80 -c 90\n    max_check_attempts 1\n"
                     "    check_interval 1\n    retry_interval 1\n    check_period always\n"
                     "    contacts admin\n    notification_period always\n}")
    return "\n\n".join(parts) + "\n"


def nagios_verify(base: Path, commands_file: Path) -> subprocess.CompletedProcess:
    base.chmod(0o755)  # nagios4 works in it as the nagios user
    shutil.chown(base, "nagios", "nagios")
    shipped = commands_file.read_text()
    names = re.findall(r"^\s*command_name\s+(\S+)", shipped, flags=re.M)
    (base / "objects.cfg").write_text(nagios_objects(names))
    (base / "resource.cfg").write_text("$USER1$=/usr/lib/nagios/plugins\n")
    settings = {
        "log_file": "nagios.log", "cfg_file": "objects.cfg", "resource_file": "resource.cfg",
        "status_file": "status.dat", "object_cache_file": "objects.cache",
        "precached_object_file": "objects.precache", "temp_file": "nagios.tmp",
        "lock_file": "nagios.lock", "state_retention_file": "retention.dat",
        "command_file": "nagios.cmd",
    }
    lines = [f"{key}={base / value}" for key, value in settings.items()]
    lines += [f"cfg_file={commands_file}", f"temp_path={base}", f"check_result_path={base}",
              "nagios_user=nagios", "nagios_group=nagios",
              "illegal_macro_output_chars=`~$&|'\"<>"]
    (base / "nagios.cfg").write_text("\n".join(lines) + "\n")
    done = run(["nagios4", "-v", base / "nagios.cfg"])
    done.names = names
    return done


def test_nagios4_verifies_the_command_definitions(host):
    base = Path(tempfile.mkdtemp(prefix="nagios.", dir=host.base))
    done = nagios_verify(base, CONTRIB / "nagios" / "conntrack-checks.cfg")
    assert done.returncode == 0, done.stdout
    expected = {p.name + f.suffix for p in generate.PLUGINS for f in p.fixed}
    assert set(done.names) == expected
    assert f"Checked {len(expected)} services." in done.stdout
    assert f"Checked {len(expected)} commands." in done.stdout
    assert "Total Warnings: 0" in done.stdout and "Total Errors:   0" in done.stdout


def test_nagios4_rejects_a_broken_command_definition(host):
    base = Path(tempfile.mkdtemp(prefix="nagios-broken.", dir=host.base))
    broken = base / "broken.cfg"
    broken.write_text((CONTRIB / "nagios" / "conntrack-checks.cfg").read_text()
                      .replace("command_line", "command_lin", 1))
    done = nagios_verify(base, broken)
    assert done.returncode != 0


def parsed(line: str):
    """What a command line means to the plugin: Icinga writes --warning, NRPE -w."""
    argv = line.split()
    if argv[0] == "/usr/bin/sudo":
        return tuple(argv)  # sudo compares the exact line
    plugin = next(p for p in generate.PLUGINS if argv[0].endswith("/" + p.name))
    args = vars(generate.parser_of(plugin).parse_args(argv[1:]))
    return argv[0], tuple(sorted((k, str(v)) for k, v in args.items()))


def test_icinga_runs_the_command_lines_of_nrpe_and_sudoers(host, recorded):
    ran = set()
    for line in recorded["icinga"]["commands"].splitlines():
        found = re.search(r"notice/Process: Running command (.*): PID \d+", line)
        if found:
            ran.add(" ".join(re.findall(r"'([^']*)'", found.group(1))))
    assert {parsed(line) for _, _, line in services(host).values()} <= {
        parsed(line) for line in ran}
    sudo = {line for line in ran if line.startswith("/usr/bin/sudo")}
    assert sudo == {line for line in nrpe_commands(host).values() if line.startswith(SUDO)}
