"""What plugin-conf.d sets for conntrack-munin (env.X lines), with the defaults.

Each setting is read once from the environment munin-node (or munin-run)
gives the plugin; a bad value is one line on stderr and the default, never
a failed fetch.
"""

from __future__ import annotations

import fnmatch
import os

from .. import defaults, state

# fw_conntrack's limits and check_conntrack's defaults: percent of nf_conntrack_max.
USAGE = (float(defaults.CONNTRACK["warning"]), float(defaults.CONNTRACK["critical"]))
# Entries of the table read for the states graph before the rest is estimated.
STATES_SAMPLE = 100000
NAMESPACE_CHOICES = ("auto", "all", "host")


class Settings:
    """The env settings of one run, with what was wrong in them (``problems``)."""

    __slots__ = (
        "critical",
        "dirtyconfig",
        "exclude",
        "include",
        "multigraph",
        "namespaces",
        "problems",
        "proc_root",
        "root",
        "state_dir",
        "states",
        "states_sample",
        "sys_root",
        "warning",
    )

    def __init__(self, environ=None):
        env = os.environ if environ is None else environ
        self.problems: list[str] = []
        self.root = os.geteuid() == 0
        self.multigraph = env.get("MUNIN_CAP_MULTIGRAPH") == "1"
        self.dirtyconfig = env.get("MUNIN_CAP_DIRTYCONFIG") == "1"
        self.proc_root = env.get("proc_root") or "/proc"
        self.sys_root = env.get("sys_root") or "/sys"
        self.warning = self.percent(env, "warning", USAGE[0])
        self.critical = self.percent(env, "critical", USAGE[1])
        namespaces = env.get("netns", "auto").strip() or "auto"
        if namespaces not in NAMESPACE_CHOICES:
            self.problems.append(f"env.netns {namespaces!r} is not auto, all or host: auto used")
            namespaces = "auto"
        if namespaces == "auto":
            namespaces = "all" if self.root else "host"
        self.namespaces = namespaces
        self.include = env.get("include", "").split()
        self.exclude = env.get("exclude", "").split()
        states = env.get("states", "auto").strip() or "auto"
        if states not in ("auto", "yes", "no"):
            self.problems.append(f"env.states {states!r} is not auto, yes or no: auto used")
            states = "auto"
        self.states = states
        self.states_sample = self.count(env, "states_sample", STATES_SAMPLE)
        plugstate = env.get("MUNIN_PLUGSTATE")
        self.state_dir = (os.path.join(plugstate, "conntrack-checks") if plugstate
                          else state.default_state_dir())

    def percent(self, env, name: str, default: float) -> float:
        text = env.get(name)
        if text is None or not text.strip():
            return default
        try:
            value = float(text)
        except ValueError:
            value = -1.0
        if not 0 < value <= 100 or value != value:
            self.problems.append(f"env.{name} {text!r} is not a percentage of "
                                 f"nf_conntrack_max (0-100): {default:g} used")
            return default
        return value

    def count(self, env, name: str, default: int) -> int:
        text = env.get(name)
        if text is None or not text.strip():
            return default
        if not text.strip().isdigit() or int(text) < 1:
            self.problems.append(f"env.{name} {text!r} is not a whole number above 0: "
                                 f"{default} used")
            return default
        return int(text)

    def wanted(self, name: str) -> bool:
        """A namespace passes env.include (when set) and not env.exclude (globs)."""
        if self.include and not any(fnmatch.fnmatchcase(name, p) for p in self.include):
            return False
        return not any(fnmatch.fnmatchcase(name, p) for p in self.exclude)
