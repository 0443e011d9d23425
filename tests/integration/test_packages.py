"""The packages, built by packaging/build from a clean clone, installed and run as operators do.

One build per session (a git clone of this repository's HEAD into a temporary
directory, then packaging/build in it). The .deb is installed on this machine
with apt-get, exercised as the nagios user and against the real Icinga 2 and
NRPE, then purged; a machine-wide lock keeps two test runs from installing it
at once. Other test runs are not disturbed: they use their own venv, and the
daemons here run in private mount namespaces or with private directories.
"""

from __future__ import annotations

import fcntl
import os
import pwd
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

import pytest
from lab import need_root_tools
from ports import free_port, wait_listening

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "packaging"))
from executables import executables, module_name  # noqa: E402

sys.path.insert(0, str(REPO / "lib"))
from conntrack_checks import __version__  # noqa: E402

PLUGIN_DIR = Path("/usr/lib/nagios/plugins")
PLUGINS = [name for name in executables() if name.startswith("check_")]
PACKAGE = "conntrack-checks"
DEB_LOCK = "/run/lock/conntrack-checks-deb.lock"
CLEAN_ENV = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C.UTF-8"}
# What each plugin says first, run as nagios with no options (the status prefix).
STATUS_NAME = {
    "check_conntrack": "CONNTRACK",
    "check_conntrack_hash": "CONNTRACK HASH",
    "check_conntrack_stats": "CONNTRACK STATS",
    "check_conntrack_log": "CONNTRACK LOG",
    "check_conntrack_table": "CONNTRACK TABLE",
    "check_conntrack_tuning": "CONNTRACK TUNING",
}


def run(cmd, check=False, **kwargs):
    kwargs.setdefault("env", CLEAN_ENV)
    done = subprocess.run([str(c) for c in cmd], capture_output=True, text=True, timeout=600,
                          stdin=subprocess.DEVNULL, **kwargs)
    if check:
        assert done.returncode == 0, f"{cmd}: exit {done.returncode}\n{done.stdout}\n{done.stderr}"
    return done


def as_nagios(*cmd, state: Path | None = None, **kwargs):
    """As a monitoring daemon runs a plugin: user nagios, its groups, a clean environment.

    ``state``: a directory for the stateful plugins' state (XDG_STATE_HOME), made
    for nagios, instead of the default in nagios's home.
    """
    env = dict(CLEAN_ENV)
    if state is not None:
        state.mkdir(exist_ok=True)
        shutil.chown(state, "nagios", "nagios")
        env["XDG_STATE_HOME"] = str(state)
    return run(["setpriv", "--reuid=nagios", "--regid=nagios", "--init-groups",
                "env", "-i", *(f"{k}={v}" for k, v in env.items()), *cmd], **kwargs)


@pytest.fixture(scope="session")
def dist():
    """dist/ of packaging/build run in a fresh clone of this repository's HEAD."""
    need_root_tools("git", "dpkg-buildpackage", "lintian", "apt-get", "setpriv")
    base = Path(tempfile.mkdtemp(prefix="ctc-packages.", dir="/var/tmp"))
    try:
        base.chmod(0o755)
        run(["git", "clone", "--quiet", "--no-hardlinks", REPO, base / "src"], check=True)
        done = run([base / "src" / "packaging" / "build"])
        assert done.returncode == 0, done.stdout + done.stderr
        yield base / "src" / "dist"
    finally:
        shutil.rmtree(base, ignore_errors=True)


def only(dist: Path, pattern: str) -> Path:
    found = sorted(dist.glob(pattern))
    assert len(found) == 1, f"{pattern}: {found} in {sorted(p.name for p in dist.iterdir())}"
    return found[0]


# --- Debian ----------------------------------------------------------------------------


def deb_files(deb: Path) -> list[str]:
    out = run(["dpkg-deb", "-c", deb], check=True).stdout
    return [line.split(None, 5)[5].split(" -> ")[0].lstrip(".") or "/"
            for line in out.splitlines()]


def test_the_deb_is_lintian_clean_with_pedantic_and_experimental_tags(dist):
    deb = only(dist, f"{PACKAGE}_{__version__}-*_all.deb")
    done = run(["lintian", "--pedantic", "--display-experimental", "--info",
                "--fail-on", "error,warning,info,pedantic,experimental", deb])
    tags = [line for line in done.stdout.splitlines() if line[:3] in ("E: ", "W: ", "I: ",
                                                                       "P: ", "X: ")]
    assert done.returncode == 0 and not tags, done.stdout + done.stderr


def test_lintian_overrides_each_have_a_reason(dist):
    overrides = (REPO / "debian" / f"{PACKAGE}.lintian-overrides").read_text().splitlines()
    for number, line in enumerate(overrides):
        if line and not line.startswith("#"):
            above = number - 1
            while above >= 0 and overrides[above].startswith(f"{PACKAGE}: "):
                above -= 1  # overrides of one tag share its reason
            assert above >= 0 and overrides[above].startswith("#"), line


def test_the_deb_puts_each_file_where_debian_looks_for_it(dist):
    files = deb_files(only(dist, f"{PACKAGE}_*.deb"))
    for plugin in PLUGINS:
        assert f"{PLUGIN_DIR}/{plugin}" in files
        assert f"/usr/share/man/man1/{plugin}.1.gz" in files
    assert "/usr/bin/conntrack-report" in files
    assert "/usr/share/man/man1/conntrack-report.1.gz" in files
    assert "/usr/lib/python3/dist-packages/conntrack_checks/__init__.py" in files
    assert "/usr/share/icinga2/include/plugins-contrib.d/conntrack-checks.conf" in files
    if "conntrack-munin" in executables():
        assert "/usr/share/munin/plugins/conntrack-munin" in files
    # Nothing under /etc: no NRPE command, sudo right or Nagios object until the admin acts.
    assert not [f for f in files if f.startswith("/etc")]
    for shipped in ("nrpe/conntrack-checks.cfg", "sudoers/conntrack-checks",
                    "nagios/conntrack-checks.cfg"):
        assert f"/usr/share/conntrack-checks/{shipped}" in files


def test_the_deb_depends_on_debians_nagiosplugin_and_bundles_none(dist):
    deb = only(dist, f"{PACKAGE}_*.deb")
    depends = run(["dpkg-deb", "-f", deb, "Depends"], check=True).stdout
    assert "python3-nagiosplugin" in depends
    assert not [f for f in deb_files(deb) if "/nagiosplugin/" in f]


@pytest.fixture(scope="module")
def installed(dist):
    """The .deb installed with apt-get (as an admin does), purged afterwards."""
    deb = only(dist, f"{PACKAGE}_*.deb")
    with open(DEB_LOCK, "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        files = deb_files(deb)
        before = {f for f in files if os.path.lexists(f)}
        apt = ["apt-get", "-o", "DPkg::Lock::Timeout=600", "-y", "-q"]
        env = {**CLEAN_ENV, "DEBIAN_FRONTEND": "noninteractive"}
        run([*apt, "install", deb], check=True, env=env)
        try:
            yield {"deb": deb, "files": files, "before": before}
        finally:
            purged = run([*apt, "purge", PACKAGE], env=env)
            assert purged.returncode == 0, purged.stdout + purged.stderr
            left = {f for f in files if os.path.lexists(f)} - before
            assert not left, f"purge left {sorted(left)}"
            home = pwd.getpwnam("nagios").pw_dir
            for state in ("/var/lib/conntrack-checks", f"{home}/.local/state/conntrack-checks"):
                assert not os.path.lexists(state), f"purge left {state}"


def test_every_plugin_runs_from_the_plugin_dir_as_nagios(installed):
    for plugin in PLUGINS:
        done = as_nagios(PLUGIN_DIR / plugin, "--version")
        assert (done.returncode, done.stdout) == (3, f"{plugin} (conntrack-checks) "
                                                     f"{__version__}\n"), done.stderr
        done = as_nagios(PLUGIN_DIR / plugin)
        assert done.returncode in (0, 1, 2, 3), done
        assert done.stdout.startswith(STATUS_NAME[plugin] + " "), done
        assert "Traceback" not in done.stdout + done.stderr
    # Needs no privilege: must give a state, not UNKNOWN, with Debian's nagiosplugin.
    done = as_nagios(PLUGIN_DIR / "check_conntrack")
    assert done.returncode in (0, 1, 2), done.stdout
    head = run(["head", "-1", PLUGIN_DIR / "check_conntrack"], check=True).stdout
    assert head == "#!/usr/bin/python3\n"


def test_the_munin_plugin_answers_autoconf_from_munins_plugin_dir(installed):
    if "conntrack-munin" not in executables():
        return  # nothing to install yet: test_the_deb_puts_each_file... checks the path
    done = run(["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups",
                "/usr/share/munin/plugins/conntrack-munin", "autoconf"])
    assert done.returncode == 0 and done.stdout.split()[0] in ("yes", "no"), done


def test_conntrack_report_is_on_the_admins_path(installed):
    done = run(["conntrack-report", "--version"])
    assert done.stdout == f"conntrack-report (conntrack-checks) {__version__}\n"
    assert shutil.which("conntrack-report", path=CLEAN_ENV["PATH"]) == "/usr/bin/conntrack-report"


def test_the_state_directory_works_for_nagios_out_of_the_box(installed):
    home = Path(pwd.getpwnam("nagios").pw_dir)
    state = home / ".local" / "state" / "conntrack-checks"
    info = state.stat()
    assert (info.st_uid, oct(info.st_mode & 0o777)) == (pwd.getpwnam("nagios").pw_uid, "0o700")
    done = as_nagios(PLUGIN_DIR / "check_conntrack_stats")
    assert done.stdout.startswith("CONNTRACK STATS "), done
    assert "state" not in done.stdout.split("|")[0].lower() or "baseline" in done.stdout, done
    assert sorted(p.name for p in state.glob("check_conntrack_stats*.json")), done
    root = Path("/var/lib/conntrack-checks").stat()
    assert (root.st_uid, oct(root.st_mode & 0o777)) == (0, "0o700")


def test_the_postinst_keeps_an_admins_statoverride(installed):
    state = Path(pwd.getpwnam("nagios").pw_dir) / ".local" / "state" / "conntrack-checks"
    run(["dpkg-statoverride", "--add", "nagios", "adm", "0750", state], check=True)
    try:
        state.chmod(0o750)
        run([f"/var/lib/dpkg/info/{PACKAGE}.postinst", "configure", ""], check=True)
        assert oct(state.stat().st_mode & 0o777) == "0o750"
    finally:
        run(["dpkg-statoverride", "--remove", state], check=True)
    run([f"/var/lib/dpkg/info/{PACKAGE}.postinst", "configure", ""], check=True)
    assert oct(state.stat().st_mode & 0o777) == "0o700"


def test_the_postinst_never_chowns_through_a_symlink_the_nagios_user_planted(installed,
                                                                            open_dir):
    state = Path(pwd.getpwnam("nagios").pw_dir) / ".local" / "state" / "conntrack-checks"
    kept = state.with_name("conntrack-checks.kept")
    target = open_dir / "roots"
    target.mkdir()
    target.chmod(0o755)
    state.rename(kept)
    try:
        state.symlink_to(target)
        done = run([f"/var/lib/dpkg/info/{PACKAGE}.postinst", "configure", ""])
        assert done.returncode == 0, done.stderr
        assert f"{state} or a parent is a symlink: left alone" in done.stderr
        info = target.stat()
        assert (info.st_uid, oct(info.st_mode & 0o777)) == (0, "0o755")
    finally:
        state.unlink(missing_ok=True)
        kept.rename(state)


def test_installing_enables_no_nrpe_command_and_no_sudo_right(installed):
    owned = run(["dpkg", "-L", PACKAGE], check=True).stdout.splitlines()
    assert not [f for f in owned if f.startswith("/etc/")]
    rights = run(["sudo", "-l", "-U", "nagios"]).stdout
    assert "conntrack" not in rights


def test_man_renders_a_page_for_each_executable(installed):
    for name in executables():
        done = run(["man", "-P", "cat", name], env={**CLEAN_ENV, "MANWIDTH": "80"})
        assert done.returncode == 0, done.stderr
        assert done.stdout.lstrip().startswith(f"{name.upper()}(1)"), done.stdout[:200]
        assert "\nNAME\n" in done.stdout and "\nDESCRIPTION\n" in done.stdout, done.stdout[:400]
        if name.startswith("check_"):
            assert "\nSYNOPSIS\n" in done.stdout and "\nOPTIONS\n" in done.stdout


@pytest.fixture
def open_dir():
    """A directory the nagios user can reach (pytest's tmp_path is under a 0700 parent)."""
    path = Path(tempfile.mkdtemp(prefix="ctc-packages.", dir="/var/tmp"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


def icinga_defines(base: Path) -> list[str]:
    """Stock configuration, but cache, state and logs in a private directory."""
    args = []
    for const in ("DataDir", "CacheDir", "LogDir", "InitRunDir", "SpoolDir"):
        path = base / const.lower()
        path.mkdir()
        shutil.chown(path, "nagios", "nagios")
        args.append(f"-D{const}={path}")
    return args


def test_icinga2_loads_the_checkcommands_through_debians_stock_config(installed, open_dir):
    need_root_tools("icinga2")
    stock = run(["dpkg", "--verify", "icinga2-common", "icinga2-bin"]).stdout
    assert "/etc/icinga2/icinga2.conf" not in stock, "icinga2.conf is not Debian's: " + stock
    defines = icinga_defines(open_dir)
    done = run(["icinga2", "daemon", "-C", *defines])
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Finished validating the configuration file(s)." in done.stdout
    listed = run(["icinga2", "object", "list", "--type", "CheckCommand", "--name", "conntrack*",
                  *defines], check=True).stdout
    conf = "/usr/share/icinga2/include/plugins-contrib.d/conntrack-checks.conf"
    for plugin in PLUGINS:
        command = plugin[len("check_"):]
        assert f"Object '{command}' of type 'CheckCommand':" in listed
    assert f"% declared in '{conf}'" in listed
    assert f'"{PLUGIN_DIR}/check_conntrack"' in listed  # PluginContribDir of constants.conf


def test_nrpe_answers_with_the_shipped_snippet_after_the_admin_step(installed, open_dir):
    """Debian's nrpe.cfg, its nrpe.d/ and /etc/sudoers.d holding what README.Debian copies."""
    need_root_tools("nrpe", "unshare", "sudo")
    nrpe_d, sudoers_d = open_dir / "nrpe.d", open_dir / "sudoers.d"
    nrpe_d.mkdir()
    sudoers_d.mkdir()
    share = Path("/usr/share/conntrack-checks")
    shutil.copy(share / "nrpe" / "conntrack-checks.cfg", nrpe_d)  # the admin's step
    run(["install", "-m", "0440", share / "sudoers" / "conntrack-checks", sudoers_d],
        check=True)
    port = free_port()
    conf = open_dir / "nrpe.cfg"
    lines = []
    for line in Path("/etc/nagios/nrpe.cfg").read_text().splitlines():
        key = line.split("=", 1)[0]
        if key == "server_port":
            line = f"server_port={port}"
        elif key == "pid_file":
            line = f"pid_file={open_dir}/nrpe.pid"
        lines.append(line)
    conf.write_text("\n".join(lines) + "\n")
    assert "include_dir=/etc/nagios/nrpe.d/" in lines
    private = ('mount --bind "$1" /etc/nagios/nrpe.d && mount --bind "$2" /etc/sudoers.d '
               '&& exec /usr/sbin/nrpe -c "$3" -f')
    daemon = subprocess.Popen(["unshare", "--mount", "--propagation", "slave", "sh", "-c",
                               private, "sh", nrpe_d, sudoers_d, conf],
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                              stdin=subprocess.DEVNULL, env=CLEAN_ENV)
    try:
        wait_listening(port)
        check_nrpe = [PLUGIN_DIR / "check_nrpe", "-H", "127.0.0.1", "-p", port, "-t", "60", "-c"]
        plain = run([*check_nrpe, "check_conntrack"])
        by_hand = as_nagios(PLUGIN_DIR / "check_conntrack", "-w", "80", "-c", "90")
        assert plain.returncode == by_hand.returncode
        assert plain.stdout.split(" - ")[0] == by_hand.stdout.split(" - ")[0]
        assert plain.returncode in (0, 1, 2), plain.stdout
        through_sudo = run([*check_nrpe, "check_conntrack_all_netns"])
        assert through_sudo.returncode in (0, 1, 2), through_sudo.stdout
        assert "namespaces=" in through_sudo.stdout
        unknown = run([*check_nrpe, "no_such_command"])
        assert "Command 'no_such_command' not defined" in unknown.stdout
    finally:
        daemon.terminate()
        log, _ = daemon.communicate(timeout=30)
    assert "Listening for connections" in log or "Starting up daemon" in log or log == "", log


def test_autopkgtest_passes_with_the_null_runner(installed, tmp_path):
    need_root_tools("autopkgtest")
    clone = Path(installed["deb"]).parent.parent
    done = run(["autopkgtest", "--output-dir", tmp_path / "out", installed["deb"], clone,
                "--", "null"], env={**CLEAN_ENV, "DEBIAN_FRONTEND": "noninteractive"})
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    summary = (tmp_path / "out" / "summary").read_text()
    assert "plugins              PASS" in summary and "icinga2-commands     PASS" in summary, \
        summary


# --- PyPI: sdist and wheel -------------------------------------------------------------


def test_twine_check_strict_passes_for_the_sdist_and_the_wheel(dist):
    need_root_tools("twine")
    files = [only(dist, "conntrack*-*.tar.gz"), only(dist, "conntrack_checks-*.whl")]
    done = run(["twine", "check", "--strict", *files])
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.count("PASSED") == 2, done.stdout


def test_the_sdist_carries_contrib_tests_docs_and_the_packaging(dist):
    sdist = only(dist, "conntrack*-*.tar.gz")
    names = run(["tar", "tzf", sdist], check=True).stdout.split()
    top = f"{sdist.name[:-len('.tar.gz')]}/"
    for path in ("contrib/generate.py", "contrib/nrpe/conntrack-checks.cfg",
                 "tests/conftest.py", "tests/integration/lab.py", "docs/installing.rst",
                 "docs/check_conntrack_log.rst", "packaging/manpages", "NEWS", "LICENSE",
                 "plugins/check_conntrack", "lib/conntrack_checks/__init__.py"):
        assert top + path in names, path


@pytest.fixture(scope="module")
def wheel_venv(dist):
    """A fresh venv from /usr/bin/python3 with the wheel (pip fetches nagiosplugin)."""
    base = Path(tempfile.mkdtemp(prefix="ctc-wheel.", dir="/var/tmp"))
    try:
        base.chmod(0o755)
        run(["/usr/bin/python3", "-m", "venv", base / "venv"], check=True)
        run([base / "venv" / "bin" / "pip", "install", "--quiet", "--disable-pip-version-check",
             only(dist, "conntrack_checks-*.whl")], check=True)
        yield base / "venv"
    finally:
        shutil.rmtree(base, ignore_errors=True)


def test_the_wheel_in_a_fresh_venv_runs_every_plugin_as_nagios(wheel_venv):
    for plugin in PLUGINS:
        done = as_nagios(wheel_venv / "bin" / plugin, "--version")
        assert (done.returncode, done.stdout) == (3, f"{plugin} (conntrack-checks) "
                                                     f"{__version__}\n"), done
        done = as_nagios(wheel_venv / "bin" / plugin, state=wheel_venv.parent / "state")
        assert done.stdout.startswith(STATUS_NAME[plugin] + " "), done
        assert "Traceback" not in done.stdout + done.stderr
    done = run([wheel_venv / "bin" / "conntrack-report", "--version"])
    assert done.stdout == f"conntrack-report (conntrack-checks) {__version__}\n"


# --- one file: conntrack-checks.pyz ----------------------------------------------------


def pythons() -> list[str]:
    """Every python3 >= 3.8 this machine has: Debian's, and pyenv's versions if present."""
    found = ["/usr/bin/python3"]
    for python in sorted(Path("/root/.pyenv/versions").glob("3.*/bin/python3")):
        minor = python.parents[1].name.split(".")[1]
        if minor.isdigit() and int(minor) >= 8:
            found.append(str(python))
    return found


@pytest.fixture(scope="module")
def pyz_dir(dist):
    """A plain directory (not a plugin dir) with the .pyz and a link per executable."""
    base = Path(tempfile.mkdtemp(prefix="ctc-pyz.", dir="/var/tmp"))
    try:
        base.chmod(0o755)
        shutil.copy2(only(dist, "conntrack-checks.pyz"), base)
        for name in executables():
            (base / name).symlink_to("conntrack-checks.pyz")
        yield base
    finally:
        shutil.rmtree(base, ignore_errors=True)


def test_the_pyz_is_executable_by_everyone_and_bundles_nagiosplugins_licence(dist):
    pyz = only(dist, "conntrack-checks.pyz")
    assert oct(pyz.stat().st_mode & 0o777) == "0o755"
    with zipfile.ZipFile(pyz) as bundle:
        names = bundle.namelist()
        licence = [n for n in names if n.startswith("nagiosplugin-")
                   and n.endswith("/licenses/LICENSE.txt")]
        assert licence, names
        assert "Zope Public License" in bundle.read(licence[0]).decode()
        assert "conntrack_checks/__init__.py" in names
        assert "conntrack_checks/__init__.pyc" in names  # bytecode next to the source


def test_the_pyz_runs_as_nagios_through_a_symlink_and_by_name(pyz_dir):
    for plugin in PLUGINS:
        link = as_nagios(pyz_dir / plugin, "--version")
        by_name = as_nagios(pyz_dir / "conntrack-checks.pyz", plugin, "--version")
        want = (3, f"{plugin} (conntrack-checks) {__version__}\n")
        assert (link.returncode, link.stdout) == want, link
        assert (by_name.returncode, by_name.stdout) == want, by_name
        done = as_nagios(pyz_dir / plugin, state=pyz_dir / "state")
        assert done.stdout.startswith(STATUS_NAME[plugin] + " "), done
        assert "Traceback" not in done.stdout + done.stderr
    link = as_nagios(pyz_dir / "check_conntrack", "-w", "70")
    by_name = as_nagios(pyz_dir / "conntrack-checks.pyz", "check_conntrack", "-w", "70")
    assert link.returncode in (0, 1, 2), link
    assert (link.returncode, link.stdout.split(" - ")[0]) == \
        (by_name.returncode, by_name.stdout.split(" - ")[0])


def test_the_pyz_runs_the_munin_plugin_through_a_link(pyz_dir):
    if "conntrack-munin" not in executables():
        return
    done = as_nagios(pyz_dir / "conntrack-munin", "autoconf")
    assert done.returncode == 0 and done.stdout.split()[0] in ("yes", "no"), done


def test_the_pyz_without_a_known_name_lists_the_executables(pyz_dir):
    done = as_nagios(pyz_dir / "conntrack-checks.pyz", "check_nothing")
    assert done.returncode == 3
    # what the .pyz can dispatch: conntrack-munin is no main() behind a link name (Munin
    # runs the plugin file itself, linked as the service conntrack)
    runnable = [name for name in executables() if module_name(name)]
    assert "Executables: " + ", ".join(runnable) in done.stdout


@pytest.mark.parametrize("python", pythons())
def test_the_pyz_runs_under_every_python_of_the_machine(pyz_dir, python):
    """As root: nagios cannot execute pyenv's interpreters under /root."""
    version = run([python, "-c", "import sys; print(sys.version_info >= (3, 8))"], check=True)
    assert version.stdout == "True\n"
    for plugin in PLUGINS:
        done = run([python, pyz_dir / "conntrack-checks.pyz", plugin, "--version"])
        assert (done.returncode, done.stdout) == (3, f"{plugin} (conntrack-checks) "
                                                     f"{__version__}\n"), done
        done = run([python, pyz_dir / plugin, "--help"])
        assert done.returncode == 3 and f"usage: {plugin}" in done.stdout, done
    done = run([python, pyz_dir / "check_conntrack"])
    assert done.returncode in (0, 1, 2) and done.stdout.startswith("CONNTRACK "), done


def test_the_pyz_says_in_one_line_that_an_older_python_is_too_old(pyz_dir):
    """With the machine's pythons older than 3.8 (pyenv's 3.6 and 3.7 here; none in CI)."""
    older = sorted(Path("/root/.pyenv/versions").glob("3.[67].*/bin/python3"))
    for python in older:
        done = run([python, pyz_dir / "conntrack-checks.pyz", "check_conntrack"])
        version = python.parents[1].name
        assert (done.returncode, done.stdout) == (
            3, f"CONNTRACK UNKNOWN - conntrack-checks.pyz needs Python 3.8 or newer, not "
               f"{version}: run it with a newer python3 (python3.8 conntrack-checks.pyz NAME "
               "...)\n"), done


def test_install_plugins_installs_the_pyz_into_a_plugin_dir(dist, open_dir):
    plugins = open_dir / "plugins"
    done = run([REPO / "contrib" / "install-plugins", "--pyz", only(dist, "conntrack-checks.pyz"),
                "--plugin-dir", plugins])
    assert done.returncode == 0, done.stderr
    for plugin in PLUGINS:
        assert os.readlink(plugins / plugin) == "conntrack-checks.pyz"
        assert f"{plugins}/{plugin} -> conntrack-checks.pyz ({plugin} (conntrack-checks) " \
            in done.stdout
    assert oct((plugins / "conntrack-checks.pyz").stat().st_mode & 0o777) == "0o755"
    ran = as_nagios(plugins / "check_conntrack")
    assert ran.returncode in (0, 1, 2) and ran.stdout.startswith("CONNTRACK "), ran


# --- RPM (EL 9, Fedora) ----------------------------------------------------------------


def test_the_rpm_puts_plugins_in_the_arch_plugin_dir_and_needs_nagiosplugin(dist):
    need_root_tools("rpm")
    rpm = only(dist, f"nagios-plugins-conntrack-checks-{__version__}-*.rpm")
    assert not rpm.name.endswith(".noarch.rpm"), "%{_libdir} is arch-dependent"
    files = run(["rpm", "-qlp", rpm], check=True).stdout.split()
    libdir = run(["rpm", "--eval", "%{_libdir}"], check=True).stdout.strip()
    for plugin in PLUGINS:
        assert f"{libdir}/nagios/plugins/{plugin}" in files
        assert f"/usr/share/man/man1/{plugin}.1" in files or \
            f"/usr/share/man/man1/{plugin}.1.gz" in files
    assert "/usr/bin/conntrack-report" in files
    assert "/usr/share/icinga2/include/plugins-contrib.d/conntrack-checks.conf" in files
    assert not [f for f in files if f.startswith("/etc")]
    assert [f for f in files if f.endswith("site-packages/conntrack_checks/__init__.py")]
    requires = run(["rpm", "-qp", "--requires", rpm], check=True).stdout.splitlines()
    assert "python3-nagiosplugin >= 1.3" in requires
    assert "nagios-common" in requires
    # The files for the admin carry the RPM's plugin directory.
    with tempfile.TemporaryDirectory() as tmp:
        run(["sh", "-c", f'rpm2cpio "{rpm}" | (cd "{tmp}" && cpio -idm --quiet)'], check=True)
        sudoers = (Path(tmp) / "usr/share/conntrack-checks/sudoers/conntrack-checks").read_text()
        assert f"{libdir}/nagios/plugins/check_conntrack --all-netns" in sudoers
        assert "/usr/lib/nagios/plugins" not in sudoers
