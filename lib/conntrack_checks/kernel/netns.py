"""Network namespaces: finding them and reading the table inside them.

The conntrack count, the stat file and the table are per network namespace
and the kernel shows each process those of the namespace it is in, so a
namespace is read by entering it with setns(2) (CAP_SYS_ADMIN) and leaving
it again. Max and buckets are global.
"""

from __future__ import annotations

import errno
import os
import re
from contextlib import contextmanager

from ..errors import ModuleMissing, ProbeError

CLONE_NEWNET = 0x40000000
# Where `ip netns add` bind-mounts the namespaces it names.
NETNS_RUN_DIR = "/run/netns"
# What the output calls the namespace this process is in.
CURRENT = "this namespace"


class Namespace:
    """One network namespace: how to name it and how to enter it."""

    __slots__ = ("host", "inode", "name", "path", "pids")

    def __init__(self, name: str, path: str | None, inode: int | None = None):
        self.name = name  # what the output calls it
        self.path = path  # file to enter it through; None = the current one
        self.inode = inode  # as in `readlink /proc/PID/ns/net`: net:[inode]
        self.pids: list[int] = []
        self.host = False  # discover() found it to be PID 1's (see host_key)

    @classmethod
    def current(cls) -> Namespace:
        """The namespace this process is in: read where we are, no setns."""
        return cls(CURRENT, None)

    @property
    def is_host(self) -> bool:
        """The host's namespace, as far as we know: the current one or PID 1's."""
        return self.path is None or self.host

    @property
    def label(self) -> str:
        """A perfdata-safe label, stable while the namespace exists."""
        return re.sub(r"[^\w.-]", "_", self.name)

    def prefix(self, all_netns: bool) -> str:
        """How a status text names it: nothing for the current one."""
        if self.path is None:
            return ""
        return f"{self.name}: " if all_netns else f"netns {self.name}: "

    def describe(self) -> str:
        """How a sentence names it: "this namespace" or "netns NAME"."""
        if self.path is None:
            return CURRENT
        return f"netns {self.name}"

    def __repr__(self) -> str:
        return f"Namespace({self.name!r}, {self.path!r}, {self.inode!r})"


def named(name: str, run_dir: str = NETNS_RUN_DIR) -> Namespace:
    """The namespace `ip netns` knows as ``name``."""
    if not name or "/" in name or name in (".", ".."):
        raise ProbeError(f"--netns {name!r} is not an ip netns name")
    path = os.path.join(run_dir, name)
    return Namespace(name, path, _inode(path, f"no network namespace named {name!r} "
                                              "(`ip netns list` shows the names)"))


def from_path(path: str) -> Namespace:
    """Any namespace file, such as /proc/PID/ns/net."""
    return Namespace(path, path, _inode(path, f"no namespace file {path}"))


def _inode(path: str, missing: str) -> int:
    try:
        return os.stat(path).st_ino
    except FileNotFoundError:
        raise ProbeError(missing) from None
    except PermissionError:
        raise ProbeError(
            f"cannot open {path}: permission denied; reading another "
            "namespace needs root (see contrib/sudoers)"
        ) from None
    except OSError as exc:
        raise ProbeError(f"cannot open {path}: {exc.strerror}") from None


def discover(proc_root: str = "/proc", run_dir: str = NETNS_RUN_DIR) -> list[Namespace]:
    """Every distinct network namespace of the host.

    Named namespaces (`ip netns`) first, under their names; then those of
    running processes, the one of PID 1 (or, where PID 1 is hidden, our
    own) called ``host`` and the others ``ns<inode>``. The same namespace seen twice is listed once.
    """
    found: dict[tuple[int, int], Namespace] = {}
    for name, path, st in _named(run_dir):
        found.setdefault((st.st_dev, st.st_ino), Namespace(name, path, st.st_ino))
    try:
        entries = os.listdir(proc_root)
    except OSError as exc:
        raise ProbeError(f"cannot list {proc_root}: {exc.strerror}") from None
    pids = sorted(int(e) for e in entries if e.isdigit())
    host = host_key(proc_root)
    denied = 0
    for pid in pids:
        path = f"{proc_root}/{pid}/ns/net"
        try:
            st = os.stat(path)
        except PermissionError:
            denied += 1
            continue
        except OSError:
            continue  # the process ended
        key = (st.st_dev, st.st_ino)
        ns = found.get(key)
        if ns is None:
            name = "host" if key == host else f"ns{st.st_ino}"
            ns = found[key] = Namespace(name, path, st.st_ino)
        if len(ns.pids) < 3:
            ns.pids.append(pid)
    if denied and not found:
        raise ProbeError(
            f"cannot see the namespaces of {denied} processes: permission "
            "denied; --all-netns needs root (see contrib/sudoers)"
        )
    if host in found:
        found[host].host = True
    return sorted(found.values(), key=lambda ns: not ns.host)


def _named(run_dir: str):
    """(name, path, stat) of each namespace `ip netns` named, in name order."""
    try:
        names = sorted(os.listdir(run_dir))
    except OSError:
        return
    for name in names:
        path = os.path.join(run_dir, name)
        try:
            yield name, path, os.stat(path)
        except OSError:
            continue  # deleted meanwhile, or a stale name


def names_by_inode(run_dir: str = NETNS_RUN_DIR) -> dict[int, str]:
    """Namespace inode -> its `ip netns` name (the first name of one named twice)."""
    names: dict[int, str] = {}
    for name, _, st in _named(run_dir):
        names.setdefault(st.st_ino, name)
    return names


def host_key(proc_root: str):
    """The namespace called ``host``: PID 1's, or ours where PID 1's is hidden."""
    for pid in ("1", "self"):
        try:
            st = os.stat(f"{proc_root}/{pid}/ns/net")
        except OSError:
            continue
        return st.st_dev, st.st_ino
    return None


def _setns_function():
    setns = getattr(os, "setns", None)  # Python 3.12+
    if setns is not None:
        return setns
    import ctypes  # only paid when a namespace is entered

    libc = ctypes.CDLL(None, use_errno=True)

    def setns_ctypes(fd: int, nstype: int) -> None:
        if libc.setns(fd, nstype) != 0:
            err = ctypes.get_errno()
            raise OSError(err, os.strerror(err))

    return setns_ctypes


class Entering:
    """Enters namespaces one after another and always returns home."""

    def __init__(self):
        self._setns = None
        self._home = None

    def __enter__(self) -> Entering:
        return self

    def __exit__(self, *exc) -> None:
        if self._home is not None:
            os.close(self._home)
            self._home = None

    @contextmanager
    def inside(self, ns: Namespace):
        """Run the body inside ``ns`` (the current namespace: stay)."""
        if ns.path is None:
            yield
            return
        if self._setns is None:
            self._setns = _setns_function()
            self._home = os.open("/proc/self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
        try:
            fd = os.open(ns.path, os.O_RDONLY | os.O_CLOEXEC)
        except FileNotFoundError:
            raise ProbeError(f"{ns.describe()} vanished ({ns.path})") from None
        except PermissionError:
            raise ProbeError(
                f"cannot open {ns.path}: permission denied; reading another "
                "namespace needs root (see contrib/sudoers)"
            ) from None
        try:
            try:
                self._setns(fd, CLONE_NEWNET)
            except OSError as exc:
                if exc.errno == errno.EPERM:
                    raise ProbeError(
                        f"cannot enter {ns.describe()}: operation not permitted; "
                        "reading another namespace needs root (CAP_SYS_ADMIN), "
                        "see contrib/sudoers"
                    ) from None
                raise ProbeError(f"cannot enter {ns.describe()} ({ns.path}): "
                                 f"{exc.strerror}") from None
        finally:
            os.close(fd)
        try:
            yield
        finally:
            self._setns(self._home, CLONE_NEWNET)


def read_each(namespaces: list[Namespace], read, all_netns: bool, stop=None):
    """``read(ns)`` inside each namespace: ([(ns, value)], [(ns, why not)]).

    With ``all_netns`` a namespace that cannot be read is listed, not fatal
    (a process may end meanwhile); when none can be read, or for a single
    namespace, the ProbeError stands. A missing module always does.
    ``stop(value)`` true ends the round after that namespace.
    """
    done, unreadable = [], []
    with Entering() as entering:
        for ns in namespaces:
            try:
                with entering.inside(ns):
                    value = read(ns)
            except ModuleMissing:
                raise
            except ProbeError as exc:
                if not all_netns:
                    raise
                unreadable.append((ns, str(exc)))
                continue
            done.append((ns, value))
            if stop is not None and stop(value):
                break
    if not done:
        reasons = "; ".join(f"{ns.name}: {why}" for ns, why in unreadable[:2])
        raise ProbeError(f"no namespace could be read ({reasons})")
    return done, unreadable
