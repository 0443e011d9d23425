"""The state module: atomic, private, locked, and honest about bad state."""

from __future__ import annotations

import fcntl
import json
import os
import re
import stat
import subprocess
import sys
from pathlib import Path

import pyfakefs.helpers
import pytest
from conntrack_checks import state
from conntrack_checks.state import StateError, StateFile

LIB = str(Path(state.__file__).resolve().parent.parent)


def store(tmp_path, **kwargs):
    kwargs.setdefault("state_dir", str(tmp_path / "st"))
    return StateFile("check_test", ["netns", "web"], **kwargs)


def test_first_run_then_round_trip(tmp_path):
    with store(tmp_path) as st:
        assert st.load() == (None, None)
        st.save({"drop": 5})
    with store(tmp_path) as st:
        assert st.load() == ({"drop": 5}, None)
    path = Path(st.path)
    assert path.name == "check_test_netns_web.json"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert [p.name for p in path.parent.iterdir() if p.name.endswith(".tmp")] == []


def test_instance_names_are_readable_and_unique():
    assert state.instance_name("check_x", ["all-netns"]) == "check_x_all-netns.json"
    a = state.instance_name("check_x", ["/srv/a b"])
    b = state.instance_name("check_x", ["/srv/a-b"])
    assert a != b and a.startswith("check_x_srv-a-b_")
    assert len(state.instance_name("check_x", ["y" * 300])) < 100


@pytest.mark.parametrize("part", ["/srv/a b", "a-/b", "--x//y--", "netns web_1.x", "ns é/ü",
                                  "/proc/4242/ns/net", "", "///", "a\tb\nc"])
def test_file_words_replace_runs_like_the_regex(part):
    assert state._file_word(part) == re.sub(r"[^\w.-]+", "-", part).strip("-")


@pytest.mark.parametrize("content, note", [
    (b"{not json", "was corrupt"),
    (b"\xff\xfe", "was corrupt"),
    (b"", "was corrupt"),
    (b"[]", "was not ours"),
    (json.dumps({"format": "other", "data": {}}).encode(), "was not ours"),
    (json.dumps({"format": state.FORMAT, "plugin": "check_other", "key": "k",
                 "data": {}}).encode(), "belonged to another check (check_other)"),
])
def test_bad_state_resets_the_baseline_with_a_note(tmp_path, content, note):
    with store(tmp_path) as st:
        Path(st.path).write_bytes(content)
        data, why = st.load()
        assert data is None and note in why and "baseline reset" in why
        st.save({"ok": 1})  # and the state is repaired
        assert st.load() == ({"ok": 1}, None)


def test_a_symlinked_state_file_is_neither_read_nor_followed(tmp_path):
    target = tmp_path / "victim"
    target.write_text("precious")
    with store(tmp_path) as st:
        os.symlink(target, st.path)
        data, why = st.load()
        assert data is None and "was a symlink" in why
        st.save({"a": 1})
    assert target.read_text() == "precious"
    assert not Path(st.path).is_symlink()


def test_a_symlinked_lock_file_is_refused(tmp_path):
    st = store(tmp_path)
    os.makedirs(st.directory, mode=0o700)
    os.symlink(tmp_path / "elsewhere", st.path + ".lock")
    with pytest.raises(StateError, match=r"\.lock is a symlink: state is never written"):
        st.__enter__()


@pytest.mark.parametrize("make, words", [
    (lambda d: os.symlink("/tmp", d), "is not a directory (a symlink?)"),
    (lambda d: os.makedirs(d, mode=0o777) or os.chmod(d, 0o777), "writable by others: chmod 700"),
    (lambda d: os.makedirs(d, mode=0o700) or os.chown(d, 4321, 4321), "belongs to uid 4321"),
])
def test_an_unsafe_directory_is_refused(tmp_path, make, words):
    st = store(tmp_path)
    make(st.directory)
    with pytest.raises(StateError, match=re.escape(words)):
        st.__enter__()


def test_a_missing_state_file_directory_is_not_created(tmp_path):
    st = StateFile("check_test", [], state_file=str(tmp_path / "nope" / "x.json"))
    with pytest.raises(StateError, match="does not exist: create it"):
        st.__enter__()


def test_a_failed_rename_keeps_the_old_state(tmp_path, monkeypatch):
    with store(tmp_path) as st:
        st.save({"n": 1})

        def broken(src, dst):
            raise OSError(28, "No space left on device")

        monkeypatch.setattr(state.os, "rename", broken)
        with pytest.raises(StateError, match="No space left on device"):
            st.save({"n": 2})
        monkeypatch.undo()
        assert st.load() == ({"n": 1}, None)
        assert not any(p.name.endswith(".tmp") for p in Path(st.directory).iterdir())


def test_the_lock_times_out_with_a_clear_message(tmp_path):
    st = store(tmp_path, lock_timeout=0.2)
    with st:
        pass  # creates the lock file
    holder = os.open(st.path + ".lock", os.O_RDWR)
    fcntl.flock(holder, fcntl.LOCK_EX)
    try:
        with pytest.raises(StateError, match=r"another run of this check has held .* for "
                                             r"0\.2s: try again later"):
            st.__enter__()
    finally:
        os.close(holder)


def test_unwritable_directory_is_a_state_error(fs, monkeypatch):
    fs.create_dir("/st", perm_bits=0o500)
    os.chown("/st", 1000, 1000)
    pyfakefs.helpers.set_uid(1000)
    monkeypatch.setattr(state.os, "geteuid", lambda: 1000)
    st = StateFile("check_test", [], state_dir="/st")
    try:
        with pytest.raises(StateError, match=r"cannot write state /st/.*Permission denied; "
                                             r"give the monitoring user a writable"), st:
            st.save({})
    finally:
        pyfakefs.helpers.reset_ids()


INCREMENT = """
import sys
sys.path.insert(0, sys.argv[1])
from conntrack_checks.state import StateFile
for _ in range(25):
    with StateFile("check_test", ["race"], state_dir=sys.argv[2], lock_timeout=30) as st:
        data, _ = st.load()
        data = data or {"n": 0}
        data["n"] += 1
        st.save(data)
"""


def test_eight_concurrent_runs_count_every_increment_once(tmp_path):
    procs = [subprocess.Popen([sys.executable, "-c", INCREMENT, LIB, str(tmp_path / "st")])
             for _ in range(8)]
    assert [p.wait(timeout=120) for p in procs] == [0] * 8
    with StateFile("check_test", ["race"], state_dir=str(tmp_path / "st")) as st:
        assert st.load() == ({"n": 200}, None)


def test_default_directory_survives_reboots(monkeypatch):
    monkeypatch.setattr(state.os, "geteuid", lambda: 0)
    assert state.default_state_dir() == "/var/lib/conntrack-checks"
    monkeypatch.setattr(state.os, "geteuid", lambda: 1000)
    monkeypatch.setenv("HOME", "/var/lib/nagios")
    monkeypatch.delenv("XDG_STATE_HOME", raising=False)
    assert state.default_state_dir() == "/var/lib/nagios/.local/state/conntrack-checks"
