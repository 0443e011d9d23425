"""State kept between runs of a stateful plugin (counters, log positions).

One JSON file per check instance in a private directory (0700, owned by the
user, not a symlink). Every write goes to a temporary file that is fsynced
and renamed over the old one, so a crash leaves the old state or the new
one, never half of each; files are 0600 and never opened through a
symlink. A lock file next to the state serialises runs of the same
instance (Icinga retries, two HA zones) with a timeout, so each delta is
counted once.

Default directory: ``/var/lib/conntrack-checks`` for root; for other users
``$XDG_STATE_HOME/conntrack-checks`` or ``~/.local/state/conntrack-checks``
(``/var/lib/nagios/.local/state/conntrack-checks`` for Debian's nagios
user). Both survive reboots; ``--state-dir`` or ``--state-file`` choose
another place.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import stat
import time
import zlib

from .errors import ProbeError

FORMAT = "conntrack-checks-state/1"
ROOT_STATE_DIR = "/var/lib/conntrack-checks"
BOOT_ID_FILE = "sys/kernel/random/boot_id"


class StateError(ProbeError):
    """The state cannot be used: the plugin still shows what it read."""


def default_state_dir() -> str:
    if os.geteuid() == 0:
        return ROOT_STATE_DIR
    base = os.environ.get("XDG_STATE_HOME") or os.path.join(
        os.path.expanduser("~"), ".local", "state")
    return os.path.join(base, "conntrack-checks")


def instance_name(plugin: str, parts: list[str]) -> str:
    """A readable file name for one check instance, e.g. ``check_x_netns-web.json``.

    ``parts`` are the options that make this instance different from another
    (namespace, roots, sources); a checksum keeps long or odd ones unique.
    """
    words = [_file_word(p) for p in parts if p]
    name = "_".join([plugin, *words])
    if len(name) > 100 or any(p != w for p, w in zip(parts, words)):
        name = name[:80] + "_" + format(zlib.crc32("\0".join(parts).encode()), "08x")
    return name + ".json"


def _file_word(part: str) -> str:
    """``part`` with each run of characters other than letters, digits, ``_.-`` as one ``-``."""
    chars = []
    replacing = False
    for char in part:
        if char.isalnum() or char in "_.-":
            chars.append(char)
            replacing = False
        elif not replacing:
            chars.append("-")
            replacing = True
    return "".join(chars).strip("-")


def boot_id(proc_root: str = "/proc") -> str | None:
    try:
        with open(os.path.join(proc_root, BOOT_ID_FILE)) as handle:
            return handle.read().strip() or None
    except OSError:
        return None


def add_state_options(parser) -> None:
    parser.add_argument("--state-dir", metavar="DIR",
                        help="private directory for state between runs (default "
                             f"{ROOT_STATE_DIR} for root, ~/.local/state/conntrack-checks "
                             "for other users)")
    parser.add_argument("--state-file", metavar="FILE",
                        help="state file of this check instance (default: derived from "
                             "the plugin and its options, in --state-dir)")


class StateFile:
    """The state of one check instance; use as ``with StateFile(...) as st``."""

    def __init__(self, plugin: str, parts: list[str], state_file: str | None = None,
                 state_dir: str | None = None, lock_timeout: float = 5.0):
        self.plugin = plugin
        self.key = "\0".join(parts)
        if state_file:
            self.path = os.path.abspath(state_file)
            self.directory = os.path.dirname(self.path)
            self.create_dir = False
        else:
            self.directory = os.path.abspath(state_dir or default_state_dir())
            self.path = os.path.join(self.directory, instance_name(plugin, parts))
            self.create_dir = True
        self.lock_timeout = lock_timeout
        self._lock_fd: int | None = None

    # --- directory and lock ---------------------------------------------------

    def _check_directory(self) -> None:
        try:
            st = os.lstat(self.directory)
        except FileNotFoundError:
            if not self.create_dir:
                raise StateError(f"state directory {self.directory} does not exist: "
                                 "create it (mode 0700, owned by the monitoring user)") from None
            try:
                os.makedirs(self.directory, mode=0o700)
            except OSError as exc:
                raise StateError(
                    f"cannot create state directory {self.directory}: {exc.strerror}; "
                    "create it for the monitoring user or choose --state-dir") from None
            st = os.lstat(self.directory)
        except OSError as exc:
            raise StateError(f"cannot use state directory {self.directory}: "
                             f"{exc.strerror}") from None
        if stat.S_ISLNK(st.st_mode) or not stat.S_ISDIR(st.st_mode):
            raise StateError(f"state directory {self.directory} is not a directory "
                             "(a symlink?): use a real directory, mode 0700")
        if st.st_uid != os.geteuid():
            raise StateError(f"state directory {self.directory} belongs to uid {st.st_uid}, "
                             f"not to this user (uid {os.geteuid()}): chown it or choose "
                             "--state-dir")
        if st.st_mode & 0o022:
            raise StateError(f"state directory {self.directory} is writable by others: "
                             f"chmod 700 {self.directory}")

    def __enter__(self) -> StateFile:
        self._check_directory()
        lock = self.path + ".lock"
        try:
            fd = os.open(lock, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
        except OSError as exc:
            raise StateError(self._write_problem(lock, exc)) from None
        deadline = time.monotonic() + self.lock_timeout
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    os.close(fd)
                    raise StateError(
                        f"another run of this check has held {lock} for "
                        f"{self.lock_timeout:g}s: try again later") from None
                time.sleep(0.02)
        self._lock_fd = fd
        return self

    def __exit__(self, *exc) -> None:
        if self._lock_fd is not None:
            os.close(self._lock_fd)  # releases the lock
            self._lock_fd = None

    def _write_problem(self, path: str, exc: OSError) -> str:
        if exc.errno == errno.ELOOP:
            return f"{path} is a symlink: state is never written through one; remove it"
        if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
            return (f"cannot write state {path}: {exc.strerror}; give the monitoring user "
                    "a writable --state-dir")
        return f"cannot write state {path}: {exc.strerror}"

    # --- reading and writing --------------------------------------------------

    def load(self) -> tuple[dict | None, str | None]:
        """(data, note): data None on a first run or when the state is unusable.

        The note says why a baseline starts again (corrupt or foreign state).
        """
        try:
            fd = os.open(self.path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
        except FileNotFoundError:
            return None, None
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                return None, f"state {self.path} was a symlink: ignored, baseline reset"
            raise StateError(f"cannot read state {self.path}: {exc.strerror}") from None
        with os.fdopen(fd, "rb") as handle:
            raw = handle.read(16 * 1024 * 1024)
        try:
            doc = json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, ValueError):
            return None, f"state {self.path} was corrupt: baseline reset"
        if not isinstance(doc, dict) or doc.get("format") != FORMAT \
                or not isinstance(doc.get("data"), dict):
            return None, f"state {self.path} was not ours: baseline reset"
        if doc.get("plugin") != self.plugin or doc.get("key") != self.key:
            return None, (f"state {self.path} belonged to another check "
                          f"({doc.get('plugin')}): baseline reset")
        return doc["data"], None

    def save(self, data: dict) -> None:
        doc = {"format": FORMAT, "plugin": self.plugin, "key": self.key,
               "saved": time.time(), "data": data}
        payload = json.dumps(doc, separators=(",", ":"), sort_keys=True).encode()
        tmp = f"{self.path}.{os.getpid()}.tmp"
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW
                         | os.O_CLOEXEC, 0o600)
        except FileExistsError:
            os.unlink(tmp)  # left by a killed run with our pid
            return self.save(data)
        except OSError as exc:
            raise StateError(self._write_problem(tmp, exc)) from None
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(payload)
                handle.flush()
                os.fsync(handle.fileno())
            os.rename(tmp, self.path)
        except OSError as exc:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise StateError(self._write_problem(self.path, exc)) from None
        try:
            dir_fd = os.open(self.directory, os.O_RDONLY | os.O_DIRECTORY)
            try:
                os.fsync(dir_fd)
            finally:
                os.close(dir_fd)
        except OSError:
            pass  # the rename is done; a lost directory fsync only risks a crash window
