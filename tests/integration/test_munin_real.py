"""conntrack-munin as Munin runs it: munin-run, a real munin-node over TCP, a real master.

munin-run runs the installed plugin with the shipped plugin-conf.d example
(as nobody) and with its ``user root`` line enabled. A munin-node started by
hand on 127.0.0.1 (a free port, no systemd) answers the protocol, and
munin-update + munin-graph (munin 2.0.73's own programs, as user munin)
draw a PNG of every graph. A Lab namespace filled past a lowered max
checks the values against conntrack-tools.
"""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
from lab import Lab, need_root_tools
from ports import free_port

CONTRIB = Path(__file__).resolve().parents[2] / "contrib" / "munin"
LAB_MAX = 300
PLUGSTATE = Path("/var/lib/munin-node/plugin-state")
SERVICE = Path("/etc/munin/plugins/conntrack")
TEST_CONF = Path("/etc/munin/plugin-conf.d/zz-conntrack-test")
# The installed executable next to the interpreter running the tests.
PLUGIN = str(Path(sys.executable).parent / "conntrack-munin")


@pytest.fixture(scope="module")
def lab():
    need_root_tools("ip", "nft", "conntrack", "munin-run", "munin-node")
    with Lab(max_entries=LAB_MAX) as lab:
        yield lab


@pytest.fixture(scope="module")
def service():
    """A service directory with the plugin linked as conntrack, and two settings files:
    the shipped example as it is (nobody) and with its user root line enabled."""
    base = Path(tempfile.mkdtemp(prefix="ctmunin-"))
    base.chmod(0o755)
    (base / "plugins").mkdir()
    (base / "plugins" / "conntrack").symlink_to(PLUGIN)
    shipped = (CONTRIB / "conntrack").read_text()
    assert "\n#user root\n" in shipped
    (base / "nobody.conf").write_text(shipped)
    (base / "root.conf").write_text(shipped.replace("\n#user root\n", "\nuser root\n"))
    yield base
    shutil.rmtree(base)
    for user in ("nobody", "root"):
        shutil.rmtree(PLUGSTATE / user / "conntrack-checks", ignore_errors=True)


def munin_run(base: Path, user: str, *args, **env):
    done = subprocess.run(
        ["munin-run", "--servicedir", str(base / "plugins"), "--sconffile",
         str(base / f"{user}.conf"), "conntrack", *args],
        capture_output=True, text=True, timeout=120, env={**os.environ, **env})
    return done.returncode, done.stdout, done.stderr


def graphs(text: str) -> dict[str, dict[str, str]]:
    found: dict[str, dict[str, str]] = {}
    for line in text.splitlines():
        if line.startswith("multigraph "):
            current = found.setdefault(line.split()[1], {})
        elif line and line != ".":
            key, _, value = line.partition(" ")
            current[key] = value
    return found


def clean(name: str) -> str:
    return "".join(c if c.isalnum() or c == "_" else "_" for c in name)


def test_munin_run_as_nobody_with_the_shipped_settings(lab, service):
    code, out, err = munin_run(service, "nobody", "autoconf")
    assert (code, out) == (0, "yes\n"), err
    code, out, err = munin_run(service, "nobody", "config")
    assert code == 0, err
    shown = graphs(out)
    assert {"conntrack", "conntrack.hash", "conntrack.counters_host"} <= set(shown)
    assert "conntrack.states" not in shown  # the table needs root
    assert shown["conntrack"]["graph_order"] == "max ns_host"  # other namespaces need root
    code, out, err = munin_run(service, "nobody")
    assert code == 0, err
    values = graphs(out)
    assert values["conntrack"]["max.value"] == str(LAB_MAX)
    assert values["conntrack.counters_host"]["drop.value"].isdigit()
    saved = PLUGSTATE / "nobody" / "conntrack-checks" / "conntrack-munin_counters.json"
    assert saved.stat().st_uid == pwd.getpwnam("nobody").pw_uid
    assert ("conntrack.log" in values) != ("table-full messages not graphed" in err)


def test_munin_node_configure_suggests_it_where_nf_conntrack_is_loaded(lab, service):
    """family=auto and autoconf as munin-node-configure reads them (its own parser)."""
    done = subprocess.run(["munin-node-configure", "--libdir", str(service / "plugins"),
                           "--suggest"], capture_output=True, text=True, timeout=120)
    rows = {line.split("|")[0].strip(): [c.strip() for c in line.split("|")[1:]]
            for line in done.stdout.splitlines() if "|" in line}
    assert rows["conntrack"][1] == "yes", done.stdout + done.stderr


def test_munin_run_as_root_graphs_each_namespace_and_the_states(lab, service):
    name = lab.namespace("mr", flows=40)
    code, out, err = munin_run(service, "root", "config")
    assert code == 0, err
    shown = graphs(out)
    assert {"conntrack.states", f"conntrack.counters_{clean(name)}"} <= set(shown)
    assert shown["conntrack"]["graph_order"].startswith("max ns_host ")
    assert shown["conntrack.states"]["total.graph"] == "no"
    code, out, err = munin_run(service, "root", MUNIN_CAP_DIRTYCONFIG="1")
    assert code == 0, err
    values = graphs(out)
    assert values["conntrack"][f"ns_{clean(name)}.value"] == str(lab.count(name))
    assert int(values["conntrack.states"]["total.value"]) >= 0


def test_drops_rise_by_what_conntrack_s_counts_and_usage_is_conntrack_c(lab, service):
    name = lab.namespace("md")
    field = f"conntrack.counters_{clean(name)}"
    code, out, err = munin_run(service, "root")
    assert code == 0, err
    before_value = int(graphs(out)[field]["drop.value"])
    before = lab.stats(name)["drop"]
    lab.fill(name, LAB_MAX + 60)
    after = lab.stats(name)["drop"]
    code, out, err = munin_run(service, "root")
    values = graphs(out)
    assert after - before > 0
    assert int(values[field]["drop.value"]) - before_value == after - before
    assert values["conntrack"][f"ns_{clean(name)}.value"] == str(lab.count(name))


class Node:
    """A munin-node on 127.0.0.1, started by hand in the foreground, stopped by its pid."""

    def __init__(self, base: Path):
        self.port = free_port()
        conf = base / "munin-node.conf"
        conf.write_text(
            f"log_level 4\nlog_file {base}/munin-node.log\npid_file {base}/munin-node.pid\n"
            "background 0\nsetsid 0\nuser root\ngroup root\nallow ^127\\.0\\.0\\.1$\n"
            f"host 127.0.0.1\nport {self.port}\n")
        self.child = subprocess.Popen(["munin-node", "--config", str(conf), "--foreground"],
                                      stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.monotonic() + 30
        while True:
            try:
                self.sock = socket.create_connection(("127.0.0.1", self.port), timeout=60)
                break
            except OSError:
                assert self.child.poll() is None, self.child.stderr.read()
                assert time.monotonic() < deadline, "munin-node did not listen in 30s"
                time.sleep(0.2)
        self.file = self.sock.makefile("rw")
        self.greeting = self.file.readline()

    def ask(self, line: str, lines: bool = True) -> list[str]:
        self.file.write(line + "\n")
        self.file.flush()
        if not lines:
            return [self.file.readline().rstrip("\n")]
        out = []
        while True:
            got = self.file.readline()
            assert got, f"munin-node closed the connection after {line!r}"
            if got == ".\n":
                return out
            out.append(got.rstrip("\n"))

    def stop(self) -> None:
        self.file.close()
        self.sock.close()
        self.child.terminate()
        self.child.wait(timeout=30)


def test_a_munin_node_answers_and_a_master_draws_every_graph(lab, service):
    name = lab.namespace("mn", flows=30)
    linked_before = SERVICE.is_symlink() and os.readlink(SERVICE)
    if not linked_before:  # with the shipped link command
        done = subprocess.run([str(CONTRIB / "link"), PLUGIN], capture_output=True, text=True,
                              timeout=60)
        assert done.returncode == 0 and os.readlink(SERVICE) == PLUGIN, done.stderr
    TEST_CONF.write_text((service / "root.conf").read_text())
    master = Path(tempfile.mkdtemp(prefix="ctmunin-master-"))
    node = None
    try:
        node = Node(service)
        assert node.greeting.startswith("# munin node at ")
        assert node.ask("cap multigraph dirtyconfig", lines=False) == [
            "cap multigraph dirtyconfig"]
        assert "conntrack" in node.ask("list", lines=False)[0].split()
        config = graphs("\n".join(node.ask("config conntrack")))
        assert config["conntrack"]["graph_category"] == "network"
        assert config["conntrack"][f"ns_{clean(name)}.value"] == str(lab.count(name))
        # munindoc finds the linked plugin and shows the POD of its docstring
        doc = subprocess.run(["munindoc", "conntrack"], capture_output=True, text=True,
                             timeout=60)
        assert "conntrack - Munin plugin (conntrack-munin)" in doc.stdout, doc.stderr
        fetched = graphs("\n".join(node.ask("fetch conntrack")))
        assert set(fetched) == set(config)
        assert fetched["conntrack"]["max.value"] == str(LAB_MAX)

        munin = pwd.getpwnam("munin")
        for part in ("db", "www", "log", "run"):
            (master / part).mkdir()
            os.chown(master / part, munin.pw_uid, munin.pw_gid)
        master.chmod(0o755)
        conf = master / "munin.conf"
        conf.write_text(
            f"dbdir {master}/db\nhtmldir {master}/www\nlogdir {master}/log\n"
            f"rundir {master}/run\ntmpldir /etc/munin/templates\n"
            f"staticdir /etc/munin/static\n[ctest;node]\n    address 127.0.0.1\n"
            f"    port {node.port}\n    use_node_name yes\n")
        for cmd in (["/usr/share/munin/munin-update", f"--config_file={conf}",
                     "--service", "conntrack", "--nofork"],
                    # munin-cron's order: munin-html needs munin-limits' file and writes
                    # the list of graphs munin-graph draws
                    ["/usr/share/munin/munin-limits", "--config", str(conf)],
                    ["/usr/share/munin/munin-html", "--config", str(conf)],
                    ["/usr/share/munin/munin-graph", "--config", str(conf), "--cron"]):
            done = subprocess.run(["runuser", "-u", "munin", "--", *cmd], capture_output=True,
                                  text=True, timeout=120)
            assert done.returncode == 0, done.stderr
        drawn = master / "www" / "ctest" / "node"
        for graph in config:
            png = drawn / (graph.replace(".", "/", 1) + "-day.png")
            assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", graph
    finally:
        if node is not None:
            node.stop()
        shutil.rmtree(master, ignore_errors=True)
        TEST_CONF.unlink()
        if not linked_before:
            SERVICE.unlink()
