"""Everything the tuning rules look at, read once: the running kernel and the boot files."""

from __future__ import annotations

import os

from ..errors import ProbeError
from ..kernel import bootconf, netns, sizing, sysctl
from .findings import TIMEOUTS


class KernelDefault:
    """The size the kernel of one generation chooses at module load for this RAM."""

    __slots__ = ("buckets", "era", "max")

    def __init__(self, era: str, buckets: int, max: int):
        self.era = era  # a key of sizing.ERAS
        self.buckets = buckets
        self.max = max

    def as_dict(self) -> dict:
        return {"era": self.era, "buckets": self.buckets, "max": self.max}


class Facts:
    """The running values, the kernel's defaults for this machine and the boot files.

    ``details`` says where each value came from (the plugin's -v). Raises
    ProbeError (ModuleMissing without nf_conntrack) when something the rules
    need cannot be read.
    """

    def __init__(self, roots: sysctl.Roots, config_root: str = "/", namespaces=None,
                 all_netns: bool = False):
        self.roots = roots
        self.conf_root = bootconf.ConfigRoot(config_root)
        self.namespaces = namespaces or [netns.Namespace.current()]
        self.all_netns = all_netns
        self.max, max_src = sysctl.read_max(roots)
        self.buckets, buckets_src = sysctl.read_buckets(roots)
        self.details = [f"max from {max_src}", f"buckets from {buckets_src}"]
        self.ip_era = max_src.endswith("ip_conntrack_max")  # before 2.6.15: other names
        self.buckets_writable = sysctl.buckets_writable(roots)
        self.builtin = sysctl.module_loaded(roots) and not any(
            os.path.exists(roots.sys_path(f"module/{m}/{f}"))
            for m in bootconf.CONNTRACK_MODULES for f in ("refcnt", "initstate"))
        self.eras, era_why = sizing.detect_eras(roots)
        self.ram, ram_src = sizing.read_ram(roots)
        self.ptr, ptr_src = sizing.pointer_size(roots)
        self.slab = sizing.read_slab(roots)
        self.cpus = os.cpu_count() or 1
        self.kernel_defaults = [KernelDefault(e, *sizing.ERAS[e].default(self.ram, self.ptr))
                                for e in self.eras]
        names = " or ".join(sizing.ERAS[e].name for e in self.eras)
        self.details.append(f"kernel generation: {names} ({era_why})")
        self.details.append(f"RAM from {ram_src}; pointer size {self.ptr} B ({ptr_src})")
        if not os.path.isdir(self.conf_root.real("/etc")):
            raise ProbeError(f"no etc directory under --config-root {self.conf_root.root}: "
                             "point it at the host's root directory")
        self.cmdline = bootconf.read_cmdline(roots.proc)
        self.boot_sysctl = bootconf.SysctlConfig(self.conf_root)
        self.details.append(f"boot files read in {self.boot_sysctl.order_text()}"
                            + (f" under {self.conf_root.root}" if self.conf_root.root != "/"
                               else ""))
        self.details += [f"{ln.where}: '{ln.text}' is a glob: not evaluated"
                         for ln in self.boot_sysctl.globs if "conntrack" in ln.key]
        self.timeouts, self.unreadable = netns.read_each(self.namespaces, self._timeouts_here,
                                                         all_netns)
        self.details += [f"netns {ns.name} not read: {why}" for ns, why in self.unreadable]
        # a built-in module takes hashsize= from the command line only, never modprobe.d
        valid = [ln for ln in bootconf.modprobe_hashsize(None if self.builtin else self.conf_root,
                                                         self.cmdline)
                 if bootconf.leading_int(ln.value)]
        self.hashsize_line = valid[-1] if valid else None
        self.hashsize = bootconf.leading_int(valid[-1].value) if valid else None
        # Looked for only when a rule meets a value kube-proxy sets: reading every
        # process's comm costs milliseconds on a busy node (kube_proxy_runs).
        self._kube_proxy: bool | None = None

    def _timeouts_here(self, ns: netns.Namespace) -> dict:
        """The timeouts of the namespace this process is in: read_each has entered
        ``ns`` with setns, and /proc/sys/net shows the namespace of the reader."""
        prefix = self.timeout_prefix()
        values = {}
        for name in TIMEOUTS:
            got = sysctl.read_first([f"{prefix}{name}"])
            if got is not None:
                values[name] = got[0]
        return values

    def timeout_prefix(self) -> str:
        """Where this kernel keeps the timeouts (ip_conntrack names before 2.6.15)."""
        if self.ip_era:
            return self.roots.proc_path("sys/net/ipv4/netfilter/ip_conntrack_")
        return self.roots.proc_path("sys/net/netfilter/nf_conntrack_")

    def host_timeouts(self) -> dict:
        """The timeouts of the host's namespace ({} when it was not checked)."""
        return next((values for ns, values in self.timeouts if ns.is_host), {})

    def kube_proxy_runs(self) -> bool:
        """Whether kube-proxy runs: it sets max and two timeouts whenever it starts."""
        if self._kube_proxy is None:
            self._kube_proxy = _process_runs(self.roots, "kube-proxy")
        return self._kube_proxy

    def exists(self, path: str) -> bool:
        """Whether this kernel has the sysctl ``path`` (net/netfilter/...)."""
        return os.path.exists(self.roots.proc_path("sys/" + path))

    def key(self, name: str) -> str:
        """The sysctl this kernel calls the conntrack variable ``name`` (max, udp_timeout)."""
        if self.ip_era:
            return f"net.ipv4.netfilter.ip_conntrack_{name}"
        return f"net.netfilter.nf_conntrack_{name}"

    def round_buckets(self, value: int) -> int:
        """A hash size as the kernel rounds it: up to a page of bucket heads (nf_conntrack)."""
        if self.eras == ["ip_conntrack"]:
            return value
        per_page = sizing.PAGE_BYTES // self.ptr
        return -(-value // per_page) * per_page


def _process_runs(roots: sysctl.Roots, comm: str) -> bool:
    try:
        pids = [p for p in os.listdir(roots.proc) if p.isdigit()]
    except OSError:
        return False
    for pid in pids:
        try:
            with open(roots.proc_path(f"{pid}/comm"), encoding="ascii",
                      errors="replace") as handle:
                if handle.read().strip() == comm:
                    return True
        except OSError:
            continue
    return False
