"""The conntrack table's size as the kernel shows it, in every generation.

Each value has a list of files, newest kernel first; the first that exists
gives the value and is remembered, so ``-v`` can say where it came from.
The count is per network namespace (it is read in the namespace the process
is in); max and buckets are global.
"""

from __future__ import annotations

import errno
import os

from ..errors import ModuleMissing, ProbeError

# nf_conntrack (2.6.15+) first, then the ip_conntrack era (<= 2.6.22 and
# nf_conntrack's PROC_COMPAT up to 4.8).
COUNT_FILES = (
    "sys/net/netfilter/nf_conntrack_count",
    "sys/net/ipv4/netfilter/ip_conntrack_count",
)
MAX_FILES = (
    "sys/net/netfilter/nf_conntrack_max",
    "sys/net/nf_conntrack_max",
    "sys/net/ipv4/netfilter/ip_conntrack_max",
    "sys/net/ipv4/ip_conntrack_max",
)
BUCKETS_FILES = (
    "sys/net/netfilter/nf_conntrack_buckets",
    "sys/net/ipv4/netfilter/ip_conntrack_buckets",
)
# Under --sys-root; mode 0600, so only root reads it.
HASHSIZE_FILES = (
    "module/nf_conntrack/parameters/hashsize",
    "module/ip_conntrack/parameters/hashsize",
)
MODULE_DIRS = ("module/nf_conntrack", "module/ip_conntrack")

# count is an int, max and hashsize unsigned ints in every kernel.
VALUE_LIMIT = 2**32 - 1


class Roots:
    """Where procfs and sysfs are mounted (an agent may see the host's elsewhere)."""

    def __init__(self, proc: str = "/proc", sys: str = "/sys"):
        self.proc = proc.rstrip("/") or "/"
        self.sys = sys.rstrip("/") or "/"

    def proc_path(self, rel: str) -> str:
        return os.path.join(self.proc, rel)

    def sys_path(self, rel: str) -> str:
        return os.path.join(self.sys, rel)


def parse_count(text: str, path: str) -> int:
    """A non-negative decimal integer, as the kernel writes sysctls."""
    value = text.strip()
    if not value.isdigit() or not value.isascii():
        shown = value[:40] if value else "nothing"
        raise ProbeError(
            f"{path} holds {shown!r}, not a number: check that --proc-root/"
            "--sys-root point at a mounted procfs/sysfs"
        )
    number = int(value)
    if number > VALUE_LIMIT:
        raise ProbeError(
            f"{path} holds {number}, more than the kernel can store "
            f"({VALUE_LIMIT}): the file is not a kernel value"
        )
    return number


def read_text(path: str, limit: int | None = 4096) -> str:
    """The file's text (all of it with limit=None); OSError other than 'missing'
    becomes a ProbeError."""
    try:
        # Bytes decoded here: a text-mode file would look up (import) the codec.
        with open(path, "rb") as handle:
            return handle.read(-1 if limit is None else limit).decode("ascii", "replace")
    except PermissionError:
        raise ProbeError(
            f"cannot read {path}: permission denied; run the plugin as root "
            "or through the sudoers rule in contrib/sudoers"
        ) from None
    except FileNotFoundError:
        raise
    except IsADirectoryError:
        raise ProbeError(f"{path} is a directory, not a kernel value") from None
    except OSError as exc:
        if exc.errno == errno.ENOTDIR:
            raise FileNotFoundError(path) from None
        raise ProbeError(f"cannot read {path}: {exc.strerror}") from None


def read_first(paths: list[str]) -> tuple[int, str] | None:
    """The first of ``paths`` that exists, parsed; None if none exists.

    A file that exists but cannot be read is skipped while a later one can
    be read (``hashsize`` is root-only, the sysctl is not); if none can be,
    the first permission error is raised.
    """
    denied = None
    for path in paths:
        try:
            return parse_count(read_text(path), path), path
        except FileNotFoundError:
            continue
        except ProbeError as exc:
            if "permission denied" not in str(exc):
                raise
            denied = denied or exc
    if denied:
        raise denied
    return None


def module_loaded(roots: Roots) -> bool:
    return any(os.path.isdir(roots.sys_path(d)) for d in MODULE_DIRS)


class TableSize:
    """count, max and buckets, with the file each came from."""

    __slots__ = ("buckets", "count", "max", "sources")

    def __init__(self, count: int, max: int, buckets: int | None, sources: dict):
        self.count = count
        self.max = max
        self.buckets = buckets
        self.sources = sources

    @property
    def usage(self) -> float | None:
        """count as a percentage of max; None when max is 0 (no limit)."""
        return 100.0 * self.count / self.max if self.max else None


def read_count(roots: Roots) -> tuple[int, str]:
    """The entry count of the namespace this process is in."""
    found = read_first([roots.proc_path(p) for p in COUNT_FILES])
    if found is None:
        if module_loaded(roots):
            raise ProbeError(
                f"nf_conntrack is loaded but {roots.proc_path(COUNT_FILES[0])} "
                "is missing: this namespace hides the conntrack sysctls "
                "(user namespace) or --proc-root is not a procfs"
            )
        raise ModuleMissing(
            "nf_conntrack is not loaded: no connections are tracked "
            f"(no {roots.proc_path(COUNT_FILES[0])})"
        )
    return found


def read_max(roots: Roots) -> tuple[int, str]:
    """The global max; ModuleMissing when it cannot be read because nf_conntrack is not loaded."""
    try:
        found = read_first([roots.proc_path(p) for p in MAX_FILES])
        if found is None:
            raise ProbeError(
                f"no conntrack max in {roots.proc_path(MAX_FILES[0])} or its older "
                "names: check --proc-root"
            )
    except ProbeError:
        read_count(roots)  # raises ModuleMissing when the module is not loaded
        raise
    return found


def buckets_writable(roots: Roots) -> bool:
    """Whether nf_conntrack_buckets can be written (4.8+; before, only hashsize= resizes)."""
    try:
        return bool(os.stat(roots.proc_path(BUCKETS_FILES[0])).st_mode & 0o200)
    except OSError:
        return False


def read_buckets(roots: Roots) -> tuple[int, str]:
    """Hash buckets: the sysctl (readable by all), else the module parameter."""
    paths = [roots.proc_path(p) for p in BUCKETS_FILES]
    paths += [roots.sys_path(p) for p in HASHSIZE_FILES]
    found = read_first(paths)
    if found is None:
        raise ProbeError(
            f"no conntrack hash size in {paths[0]} or {paths[-2]}: check "
            "--proc-root and --sys-root"
        )
    if found[0] == 0:
        raise ProbeError(f"{found[1]} says the hash has 0 buckets: not a kernel value")
    return found


def read_table_size(roots: Roots, buckets: bool = False) -> TableSize:
    count, count_src = read_count(roots)
    limit, max_src = read_max(roots)
    sources = {"count": count_src, "max": max_src}
    size = None
    if buckets:
        size, sources["buckets"] = read_buckets(roots)
    return TableSize(count, limit, size, sources)
