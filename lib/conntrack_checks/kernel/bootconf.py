"""What the next boot applies: sysctl.d, modprobe.d, modules-load.d, EL iptables-config.

Files are read the way the tools that apply them read them. sysctl.d as
systemd-sysctl (v207+) does: ``*.conf`` from /etc, /run, /usr/local/lib,
/usr/lib and /lib, a name in an earlier directory shadows the same name in a
later one (a link to /dev/null masks it), all sorted by file name, a later
assignment overrides an earlier one; /etc/sysctl.conf only through a link
in sysctl.d (99-sysctl.conf -> ../sysctl.conf). Without systemd-sysctl,
procps' ``sysctl --system`` order: the same, then /etc/sysctl.conf last.
modprobe.d as kmod does (same shadowing, ``options`` lines add up, the
kernel command line last). Everything lives under a configurable root so a
host's tree can be read from a container, and fixtures from a directory.
"""

from __future__ import annotations

import os
import re

SYSCTL_DIRS = ("etc/sysctl.d", "run/sysctl.d", "usr/local/lib/sysctl.d", "usr/lib/sysctl.d",
               "lib/sysctl.d")
MODPROBE_DIRS = ("etc/modprobe.d", "run/modprobe.d", "usr/local/lib/modprobe.d",
                 "usr/lib/modprobe.d", "lib/modprobe.d")
MODULES_LOAD_DIRS = ("etc/modules-load.d", "run/modules-load.d", "usr/local/lib/modules-load.d",
                     "usr/lib/modules-load.d", "lib/modules-load.d")
UDEV_DIRS = ("etc/udev/rules.d", "run/udev/rules.d", "usr/lib/udev/rules.d", "lib/udev/rules.d")
SYSTEMD_SYSCTL = ("usr/lib/systemd/systemd-sysctl", "lib/systemd/systemd-sysctl")
SYSCTL_CONF = "/etc/sysctl.conf"
IPTABLES_CONFIG = ("/etc/sysconfig/iptables-config", "/etc/sysconfig/ip6tables-config")
# Modules whose loading pulls nf_conntrack in as a dependency.
PULLS_CONNTRACK = {"nf_conntrack", "ip_conntrack", "nf_nat", "nft_ct", "nft_nat", "nft_masq",
                   "nft_redir", "xt_conntrack", "xt_state", "xt_nat", "xt_masquerade", "xt_ct",
                   "xt_connmark", "iptable_nat", "ip6table_nat", "openvswitch"}
CONNTRACK_MODULES = ("nf_conntrack", "ip_conntrack")
_LEADING_INT = re.compile(r"([0-9]+)(?:[ \t].*)?\Z")


class Line:
    """One assignment in a configuration file, with where it is."""

    __slots__ = ("ignore_errors", "key", "listed", "number", "path", "text", "value")

    def __init__(self, path, number, text, key, value, listed=None, ignore_errors=False):
        self.path = path  # the file that holds the line (display path)
        self.listed = listed or path  # the name it was found under (a link in sysctl.d)
        self.number = number
        self.text = text
        self.key = key
        self.value = value
        self.ignore_errors = ignore_errors

    @property
    def where(self) -> str:
        via = f" (via {self.listed})" if self.listed != self.path else ""
        return f"{self.path}:{self.number}{via}"


class ConfigRoot:
    """Paths as the host names them, read under ``root``."""

    def __init__(self, root: str = "/"):
        self.root = os.path.abspath(root)
        self._listed: dict = {}

    def real(self, shown: str) -> str:
        return os.path.join(self.root, shown.lstrip("/"))

    def resolve(self, shown: str) -> str | None:
        """Follow links within the root; None when masked (a link to /dev/null)."""
        for _ in range(40):
            real = self.real(shown)
            if not os.path.islink(real):
                return shown
            target = os.readlink(real)
            if target == "/dev/null":
                return None
            shown = target if target.startswith("/") else os.path.normpath(
                os.path.join(os.path.dirname(shown), target))
        return None

    def read_lines(self, shown: str) -> list[str] | None:
        try:
            with open(self.real(shown), encoding="utf-8", errors="replace") as handle:
                return handle.read().splitlines()
        except OSError:
            return None

    def conf_files(self, dirs, suffix=".conf") -> list[tuple[str, str | None]]:
        """(name as listed, file it resolves to or None if masked), by file name."""
        if (dirs, suffix) not in self._listed:
            self._listed[dirs, suffix] = self._conf_files(dirs, suffix)
        return self._listed[dirs, suffix]

    def _conf_files(self, dirs, suffix):
        chosen: dict[str, str] = {}
        for rel in dirs:
            shown_dir = "/" + rel
            try:
                names = os.listdir(self.real(shown_dir))
            except OSError:
                continue
            for name in names:
                if name.startswith(".") or not name.endswith(suffix) or name in chosen:
                    continue
                chosen[name] = f"{shown_dir}/{name}"
        return [(chosen[name], self.resolve(chosen[name])) for name in sorted(chosen)]


def normalize_key(key: str) -> str:
    """A sysctl name as a path under /proc/sys, as systemd-sysctl normalizes it.

    If the first separator is a dot, dots and slashes swap places
    (``net.netfilter.nf_conntrack_max``); if it is a slash the name is a path
    already.
    """
    key = key.strip()
    first = next((c for c in key if c in "./"), "")
    if first == ".":
        key = key.translate(str.maketrans("./", "/."))
    return "/".join(part for part in key.split("/") if part)


def dotted(path: str) -> str:
    return path.replace("/", ".")


def conntrack_name(path: str) -> str | None:
    """The variable a sysctl path names (``max``, ``tcp_timeout_established``), or None."""
    for prefix in ("net/netfilter/nf_conntrack_", "net/ipv4/netfilter/ip_conntrack_",
                   "net/nf_conntrack_", "net/ipv4/ip_conntrack_"):
        if path.startswith(prefix) and len(path) > len(prefix):
            return path[len(prefix):]
    return None


def leading_int(value: str) -> int | None:
    """The number the kernel takes from ``value``: digits, then a blank or the end."""
    found = _LEADING_INT.match(value)
    return int(found.group(1)) if found else None


def parse_sysctl(lines: list[str], shown: str, listed: str, only: str = "") -> list[Line]:
    """Assignments of one sysctl file (lines that are none are skipped, as sysctl does).

    ``only``: skip lines that do not contain this text (all but conntrack's).
    """
    out = []
    for number, raw in enumerate(lines, 1):
        if only not in raw:
            continue
        text = raw.strip()
        if not text or text[0] in "#;":
            continue
        key, sep, value = text.partition("=")
        if not sep:
            continue
        key = key.strip()
        ignore = key.startswith("-")
        key = normalize_key(key.lstrip("-"))
        out.append(Line(shown, number, text, key, value.strip(), listed, ignore))
    return out


class SysctlConfig:
    """Every conntrack sysctl assignment the next boot makes, in the order it makes them."""

    def __init__(self, root: ConfigRoot):
        self.root = root
        self.tool = "systemd-sysctl" if any(
            os.path.exists(os.path.join(root.root, p)) for p in SYSTEMD_SYSCTL) else "procps"
        self.lines: list[Line] = []
        self.unread: list[Line] = []  # /etc/sysctl.conf when systemd-sysctl never reads it
        self.globs: list[Line] = []
        files = root.conf_files(SYSCTL_DIRS)
        reads_sysctl_conf = False
        for listed, real in files:
            if real is None:  # masked: a link to /dev/null
                continue
            reads_sysctl_conf |= real == SYSCTL_CONF
            self._read(real, listed, self.lines)
        self.native = False
        if self.tool == "procps":
            self._read(SYSCTL_CONF, SYSCTL_CONF, self.lines)
            return
        tail: list[Line] = []
        self._read(SYSCTL_CONF, SYSCTL_CONF, tail)
        if any(conntrack_name(ln.key) for ln in tail) and self._reads_sysctl_conf_itself():
            self.native = True
            self.lines.extend(tail)
        elif not reads_sysctl_conf:
            self.unread.extend(tail)

    def _reads_sysctl_conf_itself(self) -> bool:
        """systemd-sysctl before 207, and RHEL 7's 219 ("sysctl: bring back
        /etc/sysctl.conf"), read /etc/sysctl.conf last; their binary names it."""
        for rel in SYSTEMD_SYSCTL:
            try:
                with open(os.path.join(self.root.root, rel), "rb") as handle:
                    return SYSCTL_CONF.encode() in handle.read(4 << 20)
            except OSError:
                continue
        return False

    def _read(self, shown: str, listed: str, into: list[Line]) -> None:
        lines = self.root.read_lines(shown)
        if lines is None:
            return
        found = parse_sysctl(lines, shown, listed, only="conntrack")
        # systemd 249+ takes globs (net.netfilter.nf_conntrack_*): not evaluated here
        self.globs.extend(ln for ln in found if any(c in ln.key for c in "*?["))
        into.extend(ln for ln in found if not any(c in ln.key for c in "*?["))

    def conntrack_lines(self, unread: bool = False) -> list[Line]:
        return [ln for ln in (self.unread if unread else self.lines) if conntrack_name(ln.key)]

    def effective(self, name: str, exists) -> tuple[Line | None, list[Line]]:
        """The assignment that wins for variable ``name`` and all that set it.

        ``exists(path)`` says whether the running kernel has the sysctl; lines
        for names it lacks do nothing and are left out.
        """
        setting = [ln for ln in self.lines if conntrack_name(ln.key) == name and exists(ln.key)]
        return (setting[-1] if setting else None), setting

    def order_text(self) -> str:
        if self.native:
            return ("systemd-sysctl order: sysctl.d files of /etc, /run, /usr/local/lib, "
                    "/usr/lib, /lib sorted by name, later wins; this systemd-sysctl also reads "
                    "/etc/sysctl.conf last (before v207, or RHEL 7's patch)")
        if self.tool == "systemd-sysctl":
            return ("systemd-sysctl order: sysctl.d files of /etc, /run, /usr/local/lib, "
                    "/usr/lib, /lib sorted by name, later wins; /etc/sysctl.conf only "
                    "through a link in sysctl.d")
        return ("sysctl --system order (no systemd-sysctl): sysctl.d files sorted by name, "
                "then /etc/sysctl.conf last")


def modprobe_hashsize(root: ConfigRoot | None, cmdline: list[str]) -> list[Line]:
    """``options nf_conntrack hashsize=N`` lines in kmod's order, the command line last.

    Without a root (a built-in module) only the kernel command line counts.
    """
    found = []
    for listed, real in root.conf_files(MODPROBE_DIRS) if root else []:
        lines = root.read_lines(real) if real else None
        if not lines:
            continue
        joined, start, number = "", 0, 0
        for number, raw in enumerate(lines, 1):
            if not joined:
                start = number
            if raw.endswith("\\"):
                joined += raw[:-1] + " "
                continue
            text, joined = (joined + raw).strip(), ""
            words = text.split()
            if len(words) < 3 or words[0] != "options":
                continue
            if words[1].replace("-", "_") not in CONNTRACK_MODULES:
                continue
            for word in words[2:]:
                param, _, value = word.partition("=")
                if param == "hashsize":
                    found.append(Line(real, start, text, "hashsize", value, listed))
    for word in cmdline:
        module, _, rest = word.partition(".")
        param, _, value = rest.partition("=")
        if module.replace("-", "_") in CONNTRACK_MODULES and param == "hashsize":
            found.append(Line("/proc/cmdline", 1, word, "hashsize", value))
    return found


def modules_loaded_early(root: ConfigRoot, cmdline: list[str]) -> list[tuple[str, str]]:
    """(module, where) for modules loaded at boot that bring nf_conntrack."""
    found = []
    sources = [(listed, real) for listed, real in root.conf_files(MODULES_LOAD_DIRS) if real]
    if "/etc/modules" not in [real for _, real in sources]:
        sources.append(("/etc/modules", "/etc/modules"))
    for _, real in sources:
        for number, raw in enumerate(root.read_lines(real) or [], 1):
            words = raw.split()
            if not words or words[0][0] in "#;":
                continue
            module = words[0].replace("-", "_")
            if module in PULLS_CONNTRACK or module.startswith(("nf_conntrack", "nf_nat")):
                found.append((module, f"{real}:{number}"))
    for word in cmdline:
        key, _, value = word.partition("=")
        if key in ("modules-load", "rd.modules-load", "modules_load", "rd.modules_load"):
            for module in value.replace("-", "_").split(","):
                if module in PULLS_CONNTRACK or module.startswith(("nf_conntrack", "nf_nat")):
                    found.append((module, "/proc/cmdline"))
    return found


def udev_reapply(root: ConfigRoot) -> str | None:
    """A udev rule that re-runs systemd-sysctl when nf_conntrack loads, if any."""
    for listed, real in root.conf_files(UDEV_DIRS, suffix=".rules"):
        for number, raw in enumerate(root.read_lines(real) or [] if real else [], 1):
            if "nf_conntrack" in raw and "sysctl" in raw and not raw.lstrip().startswith("#"):
                return f"{listed}:{number}"
    return None


def shell_vars(root: ConfigRoot, shown: str) -> dict[str, tuple[str, int]] | None:
    """``NAME=value`` lines of a sourced shell file (EL sysconfig); None if absent."""
    lines = root.read_lines(shown)
    if lines is None:
        return None
    found = {}
    for number, raw in enumerate(lines, 1):
        text = raw.strip()
        if text.startswith("export "):
            text = text[7:].strip()
        name, sep, value = text.partition("=")
        if not sep or not name.isidentifier():
            continue
        value = value.strip()
        if value[:1] in "\"'" and value.endswith(value[:1]) and len(value) >= 2:
            value = value[1:-1]
        else:
            value = value.split("#")[0].strip()
        found[name] = (value, number)
    return found


def read_cmdline(proc_root: str) -> list[str]:
    try:
        with open(os.path.join(proc_root, "cmdline"), encoding="utf-8",
                  errors="replace") as handle:
            words = handle.read().split()
    except OSError:
        return []
    return words[:words.index("--")] if "--" in words else words
