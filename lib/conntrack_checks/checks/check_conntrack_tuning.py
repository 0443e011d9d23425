"""check_conntrack_tuning: which conntrack settings will bite?

Persistence: compares the running max, hash size and timeouts with what the
next boot applies (sysctl.d and /etc/sysctl.conf in systemd-sysctl's order,
hashsize= in modprobe.d or on the kernel command line, else the kernel's
default); warns about a conntrack sysctl that is applied before a loadable
nf_conntrack is loaded (lost), keys this kernel does not have, and EL's
IPTABLES_MODULES_UNLOAD=yes (every firewall restart resets the table).
Sizing: the kernel memory a full table pins as a share of RAM, the max
against the kernel's own default for this RAM, entries per bucket at a full
table. Timeouts: each TCP/UDP/ICMP/generic timeout against a limit.

Every finding has an id (--ignore ID silences it, shell patterns allowed),
the evidence and the fix: the command for now and the line that persists
it. The worst finding is on the first line, all of them with -v.
--config-root reads /etc, /run, /usr and /lib under another directory (a
host's root mounted in a container).
"""

from __future__ import annotations

import os

import nagiosplugin

from .. import defaults
from ..errors import ModuleMissing, ProbeError
from ..kernel import bootconf, netns, sizing, sysctl
from ..nagios import options, plugin
from ..nagios.plugin import fmt_number

NAME = "CONNTRACK TUNING"

# The kernel's defaults of each timeout (two where kernels differ).
KERNEL_TIMEOUTS = {
    "tcp_timeout_established": (432000,),
    "tcp_timeout_close_wait": (60,),
    "tcp_timeout_time_wait": (120,),
    "tcp_timeout_fin_wait": (120,),
    "tcp_timeout_syn_sent": (120,),
    "tcp_timeout_syn_recv": (60,),
    "tcp_timeout_last_ack": (30,),
    "tcp_timeout_close": (10,),
    "tcp_timeout_max_retrans": (300,),
    "tcp_timeout_unacknowledged": (300,),
    "udp_timeout": (30,),
    "udp_timeout_stream": (120, 180),
    "generic_timeout": (600,),
    "icmp_timeout": (30,),
    "icmpv6_timeout": (30,),
}
# name: (kernel defaults, default limit as a Nagios range; why: defaults.py)
TIMEOUTS = {name: (KERNEL_TIMEOUTS[name], limit)
            for name, limit in defaults.TIMEOUT_LIMITS.items()}
KUBE_PROXY_TIMEOUTS = {"tcp_timeout_established": 86400, "tcp_timeout_close_wait": 3600}
SEVERITY_ORDER = {"critical": 2, "warning": 1}
NEW_FILES = ("90-conntrack.conf", "99-zz-conntrack.conf", "zz-conntrack.conf")


class Finding:
    """One setting that will bite: what, why, and how to fix it now and for good."""

    def __init__(self, id, severity, title, evidence, now=None, persist=None):
        self.id = id
        self.severity = severity
        self.title = title
        self.evidence = evidence
        self.now = now
        self.persist = persist

    def as_dict(self) -> dict:
        return {"id": self.id, "severity": self.severity, "title": self.title,
                "evidence": self.evidence, "fix": {"now": self.now, "persist": self.persist}}

    def lines(self) -> list[str]:
        out = [f"{self.severity}: [{self.id}] {self.title}"]
        out += [f"  evidence: {line}" for line in self.evidence]
        if self.now:
            out.append(f"  now: {self.now}")
        if self.persist:
            out.append(f"  persist: {self.persist}")
        return out


def seconds(value: int) -> str:
    for unit, size in (("days", 86400), ("hours", 3600), ("minutes", 60)):
        if value >= size:
            count = round(value / size, 1)
            return f"{fmt_number(count)} {unit[:-1] if count == 1 else unit}"
    return f"{value} s"


def kube_proxy_max(cpus: int) -> int:
    return max(32768 * cpus, 131072)


class Thresholds:
    def __init__(self, memory_warning=None, memory_critical=None, hash_warning=None,
                 default_warning=None, timeouts=None):
        spec = defaults.TUNING
        self.memory_warning = memory_warning or nagiosplugin.Range(spec["memory_warning"])
        self.memory_critical = memory_critical or nagiosplugin.Range(spec["memory_critical"])
        self.hash_warning = hash_warning or nagiosplugin.Range(spec["hash_warning"])
        self.default_warning = default_warning or nagiosplugin.Range(spec["default_warning"])
        self.timeouts = {name: nagiosplugin.Range(spec) for name, (_, spec) in TIMEOUTS.items()}
        self.timeouts.update(timeouts or {})


class Analysis:
    """Reads the kernel and the boot configuration; ``run()`` gives the findings."""

    def __init__(self, roots: sysctl.Roots, config_root: str = "/", namespaces=None,
                 thresholds: Thresholds | None = None, all_netns: bool = False):
        self.roots = roots
        self.conf_root = bootconf.ConfigRoot(config_root)
        self.namespaces = namespaces or [netns.Namespace.current()]
        self.all_netns = all_netns
        self.limits = thresholds or Thresholds()
        self.findings: list[Finding] = []
        self.unreadable: list[tuple[netns.Namespace, str]] = []
        self.details: list[str] = []
        self.facts: dict = {}

    # reading ---------------------------------------------------------------
    def read(self) -> None:
        roots = self.roots
        self.max, max_src = sysctl.read_max(roots)
        self.buckets, buckets_src = sysctl.read_buckets(roots)
        self.details += [f"max from {max_src}", f"buckets from {buckets_src}"]
        self.ip_era = max_src.endswith(("ip_conntrack_max",))
        self.buckets_writable = sysctl.buckets_writable(roots)
        self.builtin = sysctl.module_loaded(roots) and not any(
            os.path.exists(roots.sys_path(f"module/{m}/{f}"))
            for m in bootconf.CONNTRACK_MODULES for f in ("refcnt", "initstate"))
        self.eras, era_why = sizing.detect_eras(roots)
        self.ram, ram_src = sizing.read_ram(roots)
        self.ptr, ptr_src = sizing.pointer_size(roots)
        self.slab = sizing.read_slab(roots)
        names = " or ".join(sizing.ERAS[e].name for e in self.eras)
        self.details.append(f"kernel generation: {names} ({era_why})")
        self.details.append(f"RAM from {ram_src}; pointer size {self.ptr} B ({ptr_src})")
        if not os.path.isdir(self.conf_root.real("/etc")):
            raise ProbeError(f"no etc directory under --config-root {self.conf_root.root}: "
                             "point it at the host's root directory")
        self.cmdline = bootconf.read_cmdline(roots.proc)
        self.sysctl = bootconf.SysctlConfig(self.conf_root)
        self.details.append(f"boot files read in {self.sysctl.order_text()}"
                            + (f" under {self.conf_root.root}" if self.conf_root.root != "/"
                               else ""))
        self.details += [f"{ln.where}: '{ln.text}' is a glob: not evaluated"
                         for ln in self.sysctl.globs if "conntrack" in ln.key]
        self.timeouts = self._read_timeouts()

    def _read_timeouts(self) -> list[tuple[netns.Namespace, dict]]:
        def timeouts(ns) -> dict:
            prefix = self.timeout_prefix()
            values = {}
            for name in TIMEOUTS:
                got = sysctl.read_first([f"{prefix}{name}"])
                if got is not None:
                    values[name] = got[0]
            return values

        found, self.unreadable = netns.read_each(self.namespaces, timeouts, self.all_netns)
        self.details += [f"netns {ns.name} not read: {why}" for ns, why in self.unreadable]
        return found

    def timeout_prefix(self) -> str:
        """Where this kernel keeps the timeouts (ip_conntrack names before 2.6.15)."""
        if self.ip_era:
            return self.roots.proc_path("sys/net/ipv4/netfilter/ip_conntrack_")
        return self.roots.proc_path("sys/net/netfilter/nf_conntrack_")

    def kube_proxy(self) -> bool:
        """Whether kube-proxy runs: it sets max and two timeouts whenever it starts."""
        if not hasattr(self, "_kube_proxy"):
            self._kube_proxy = False
            try:
                pids = [p for p in os.listdir(self.roots.proc) if p.isdigit()]
            except OSError:
                pids = []
            for pid in pids:
                try:
                    with open(self.roots.proc_path(f"{pid}/comm"), encoding="ascii",
                              errors="replace") as handle:
                        if handle.read().strip() == "kube-proxy":
                            self._kube_proxy = True
                            break
                except OSError:
                    continue
        return self._kube_proxy

    def exists(self, path: str) -> bool:
        return os.path.exists(self.roots.proc_path("sys/" + path))

    def key(self, name: str) -> str:
        if self.ip_era:
            return f"net.ipv4.netfilter.ip_conntrack_{name}"
        return f"net.netfilter.nf_conntrack_{name}"

    def defaults(self) -> list[tuple[str, int, int]]:
        """(era, buckets, max) the kernel would choose for this RAM, per possible era."""
        return [(e, *sizing.ERAS[e].default(self.ram, self.ptr)) for e in self.eras]

    def round_buckets(self, value: int) -> int:
        if self.eras == ["ip_conntrack"]:
            return value
        per_page = sizing.PAGE_BYTES // self.ptr
        return -(-value // per_page) * per_page

    # fixes -----------------------------------------------------------------
    def sysctl_line_fix(self, name: str, value: int) -> str:
        """Where to put ``key = value`` so that it wins at the next boot."""
        setters = self.sysctl.effective(name, self.exists)[1]
        line = f"{self.key(name)} = {value}"
        winner = setters[-1] if setters else None
        if winner is not None and winner.path.startswith("/etc/"):
            return f"change line {winner.number} of {winner.path} to '{line}'"
        # a new file in /etc must not shadow a vendor file of the same name
        taken = {os.path.basename(listed) for listed, _ in
                 self.conf_root.conf_files(bootconf.SYSCTL_DIRS)
                 if not listed.startswith("/etc/")}
        after = max((os.path.basename(s.listed) for s in setters), default="")
        for candidate in NEW_FILES:
            if candidate > after and candidate not in taken:
                return f"add '{line}' to /etc/sysctl.d/{candidate}"
        return f"add '{line}' to /etc/sysctl.d/{NEW_FILES[-1]}"

    def runtime_buckets(self, value: int) -> str:
        if self.buckets_writable:
            return f"sysctl -w {self.key('buckets')}={value}"
        module = "ip_conntrack" if self.ip_era else "nf_conntrack"
        return f"echo {value} > /sys/module/{module}/parameters/hashsize"

    def persist_buckets(self, value: int, module_line=None) -> str:
        if self.builtin:
            if self.buckets_writable:
                return self.sysctl_line_fix("buckets", value)
            return (f"add 'nf_conntrack.hashsize={value}' to the kernel command line "
                    "(GRUB_CMDLINE_LINUX in /etc/default/grub, then update-grub or grub2-mkconfig)")
        option = f"options nf_conntrack hashsize={value}"
        if module_line is not None and module_line.path.startswith("/etc/"):
            return f"change line {module_line.number} of {module_line.path} to '{option}'"
        return (f"add '{option}' to /etc/modprobe.d/nf_conntrack.conf (and rebuild the "
                "initramfs if nf_conntrack loads from it)")

    def add(self, *args, **kwargs) -> None:
        self.findings.append(Finding(*args, **kwargs))

    # checks ----------------------------------------------------------------
    def run(self) -> list[Finding]:
        self.read()
        self.check_persistence()
        self.check_boot_files()
        self.check_sizing()
        self.check_timeouts()
        self.findings.sort(key=lambda f: -SEVERITY_ORDER[f.severity])
        return self.findings

    def module_hashsize(self):
        if not hasattr(self, "_hashsize_line"):
            self._hashsize_line = self._module_hashsize()
        return self._hashsize_line

    def _module_hashsize(self):
        # a built-in module takes only the command line, never modprobe.d
        lines = bootconf.modprobe_hashsize(None if self.builtin else self.conf_root,
                                           self.cmdline)
        valid = [ln for ln in lines if bootconf.leading_int(ln.value)]
        return valid[-1] if valid else None

    def check_persistence(self) -> None:
        hs_line = self.module_hashsize()
        hashsize = bootconf.leading_int(hs_line.value) if hs_line else None
        cpus = os.cpu_count() or 1
        # buckets
        line, _ = self.sysctl.effective("buckets", self.exists)
        value = bootconf.leading_int(line.value) if line and self.buckets_writable else None
        if value:
            boot, how = {self.round_buckets(value)}, f"{line.where} sets {value}"
        elif hashsize:
            boot = {self.round_buckets(hashsize)}
            how = f"{hs_line.where} gives hashsize={hashsize}"
        else:
            boot = {b for _, b, _ in self.defaults()}
            how = "no file sets it: the kernel's default for this RAM"
        if self.buckets in boot:
            self.details.append(f"buckets {self.buckets}: the next boot gives the same ({how})")
        elif (not line and not hashsize and self.buckets == kube_proxy_max(cpus) // 4
              and self.kube_proxy()):
            self.details.append(f"buckets {self.buckets}: kube-proxy's max/4, set again "
                                "whenever kube-proxy starts")
        else:
            self.persist_finding("buckets", self.buckets, boot, how, line or hs_line,
                                 now=self.runtime_buckets(min(boot)),
                                 persist=self.persist_buckets(self.buckets, hs_line))
        # max
        line, _ = self.sysctl.effective("max", self.exists)
        value = bootconf.leading_int(line.value) if line else None
        if value is not None:
            boot, how = {value}, f"{line.where} sets {value}"
        elif hashsize:
            boot = {8 * self.round_buckets(hashsize)}
            how = f"no file sets it; with {hs_line.where} hashsize={hashsize} the kernel's " \
                  f"default is 8 x hashsize"
        else:
            boot = {m for _, _, m in self.defaults()}
            how = "no file sets it: the kernel's default for this RAM"
        if self.max in boot:
            self.details.append(f"max {self.max}: the next boot gives the same ({how})")
        elif value is None and self.max == kube_proxy_max(cpus) and self.kube_proxy():
            self.details.append(f"max {self.max}: kube-proxy's max(32768 x {cpus} CPUs, "
                                "131072), set again whenever kube-proxy starts")
        else:
            self.persist_finding("max", self.max, boot, how, line,
                                 now=f"sysctl -w {self.key('max')}={min(boot)}",
                                 persist=self.sysctl_line_fix("max", self.max))
        # timeouts of the host: other namespaces start from the kernel defaults
        for ns, values in self.timeouts:
            if not ns.is_host:
                continue
            for name, live in values.items():
                line, _ = self.sysctl.effective(name, self.exists)
                value = bootconf.leading_int(line.value) if line else None
                if value is not None:
                    boot, how = {value}, f"{line.where} sets {value}"
                else:
                    boot, how = set(TIMEOUTS[name][0]), "no file sets it: the kernel default"
                if live in boot:
                    continue
                if (value is None and KUBE_PROXY_TIMEOUTS.get(name) == live
                        and self.kube_proxy()):
                    self.details.append(f"{name} {live}: kube-proxy's value, set again "
                                        "whenever kube-proxy starts")
                    continue
                self.persist_finding(name, live, boot, how, line,
                                     now=f"sysctl -w {self.key(name)}={min(boot)}",
                                     persist=self.sysctl_line_fix(name, live))
            break

    def persist_finding(self, name, live, boot, how, line, now, persist) -> None:
        shown = " or ".join(str(b) for b in sorted(boot))
        sysctl = f"nf_conntrack_{name}"
        if line is not None:
            title = (f"{sysctl} is {live} but {line.where} sets {line.value}: "
                     "changed since boot, or the file was not applied")
        else:
            title = f"{sysctl} {live} is set at runtime only: the next boot gives {shown}"
        evidence = [f"running value {live}", f"next boot: {shown} ({how})"]
        unread = [ln for ln in self.sysctl.conntrack_lines(unread=True)
                  if bootconf.conntrack_name(ln.key) == name]
        evidence += [f"{ln.where} sets {ln.value}, but systemd-sysctl does not read "
                     f"{bootconf.SYSCTL_CONF}" for ln in unread]
        self.add(f"persist-{short(name)}", "warning", title, evidence,
                 now=f"{now} (back to what the next boot gives)",
                 persist=f"to keep {live}: {persist}")

    def check_boot_files(self) -> None:
        lines = self.sysctl.conntrack_lines()
        canonical_visible = self.exists("net/netfilter/nf_conntrack_max") or self.ip_era
        dead = [ln for ln in lines if canonical_visible and not self.exists(ln.key)]
        if dead:
            evidence = []
            for ln in dead:
                name = bootconf.conntrack_name(ln.key)
                better = (f"; this kernel calls it {self.key(name)}"
                          if self.exists(self.key(name).replace(".", "/")) else "")
                evidence.append(f"{ln.where}: '{ln.text}': no /proc/sys/{ln.key}{better}")
            self.add("dead-key", "warning",
                     f"{len(dead)} conntrack sysctl line(s) name a key this kernel does not "
                     f"have: {dead[0].where} sets {bootconf.dotted(dead[0].key)}", evidence,
                     persist="rename each key as shown (ip_conntrack names were removed in 4.9)"
                     " or delete the line")
        unread = self.sysctl.conntrack_lines(unread=True)
        if unread:
            self.add("sysctl-conf-unread", "warning",
                     f"{bootconf.SYSCTL_CONF} sets {len(unread)} conntrack key(s) but "
                     "systemd-sysctl never reads it (no link to it in sysctl.d)",
                     [f"{ln.where}: '{ln.text}'" for ln in unread],
                     now=f"sysctl -p {bootconf.SYSCTL_CONF}",
                     persist="ln -s ../sysctl.conf /etc/sysctl.d/99-sysctl.conf")
        applied = [ln for ln in lines if self.exists(ln.key)]
        early = [] if self.builtin else bootconf.modules_loaded_early(self.conf_root,
                                                                      self.cmdline)
        if self.builtin:
            self.details.append("nf_conntrack is built into the kernel: sysctl.d applies at boot")
        elif early:
            module, where = early[0]
            self.details.append(f"{module} is loaded at boot by {where}: sysctl.d applies")
        elif applied:
            udev = bootconf.udev_reapply(self.conf_root)
            if udev:
                self.details.append(f"{udev} applies sysctl again when nf_conntrack loads")
            else:
                files = sorted({ln.path for ln in applied})
                self.add("load-order", "warning",
                         f"{applied[0].where} sets {bootconf.dotted(applied[0].key)} but "
                         "nf_conntrack is not loaded at boot: the setting is lost",
                         [f"{ln.where}: '{ln.text}'" for ln in applied[:5]] +
                         ["nf_conntrack is a loadable module and no modules-load.d file, "
                          "/etc/modules or modules-load= on the command line loads it; "
                          "systemd-sysctl runs before the firewall loads it, the write fails "
                          "with 'No such file or directory' and the value is lost"],
                         now=" && ".join(f"sysctl -p {f}" for f in files),
                         persist="echo nf_conntrack > /etc/modules-load.d/nf_conntrack.conf")
        if self.builtin or not (applied or self.tuned_at_runtime()):
            return  # a reload brings back the defaults, and nothing else was set
        for path in bootconf.IPTABLES_CONFIG:
            values = bootconf.shell_vars(self.conf_root, path)
            if values is None:
                continue
            prefix = "IP6TABLES" if "ip6tables" in path else "IPTABLES"
            unload, number = values.get(f"{prefix}_MODULES_UNLOAD", ("yes", None))
            if unload.lower() != "yes":
                continue
            items = values.get(f"{prefix}_SYSCTL_LOAD_LIST", ("", None))[0].split()
            if any(item in self.key("max") for item in items):
                self.details.append(f"{path}: {prefix}_SYSCTL_LOAD_LIST re-applies the "
                                    "conntrack sysctls after each firewall start")
                continue
            where = f"{path}:{number} {prefix}_MODULES_UNLOAD={unload}" if number else \
                f"{path} leaves {prefix}_MODULES_UNLOAD unset (the init script's default: yes)"
            var = f"{prefix}_MODULES_UNLOAD"
            self.add("iptables-unload", "warning",
                     f"{var}=yes: every {prefix.lower()} service restart unloads nf_conntrack "
                     "and resets max, hash size and timeouts to the kernel defaults",
                     [where, "sysctl.d is not applied again when the module comes back"],
                     now=f"sed -i 's/^{var}=.*/{var}=\"no\"/' {path}" if number else None,
                     persist=f"{var}=\"no\" in {path} (or {prefix}_SYSCTL_LOAD_LIST="
                             "\".nf_conntrack\" to re-apply sysctl.d after each start)")

    def tuned_at_runtime(self) -> bool:
        """Whether max or a timeout of the host differs from the kernel default."""
        if self.max not in {m for _, _, m in self.defaults()}:
            return True
        values = next((v for ns, v in self.timeouts if ns.is_host), {})
        return any(v not in TIMEOUTS[name][0] for name, v in values.items())

    def check_sizing(self) -> None:
        limits = self.limits
        entry = self.slab.entry_bytes
        full = sizing.full_table_bytes(self.max, self.buckets, entry, self.ptr)
        share = 100.0 * full / self.ram
        self.full_bytes, self.share = full, share
        entry_how = (f"{entry} B per entry from {self.slab.source}" if self.slab.objsize else
                     f"{entry} B per entry, the typical size ({self.slab.reason})")
        memory = [f"a full table pins {self.max} x {entry} B + {self.buckets} buckets x "
                  f"{self.ptr} B = {sizing.fmt_bytes(full)} of kernel memory, {share:.1f}% of "
                  f"{sizing.fmt_bytes(self.ram)} RAM ({entry_how}; extensions such as acct "
                  "and NAT add 64-192 B per entry)",
                  "the max applies to each namespace: every namespace that fills up pins as "
                  "much again"]
        if self.slab.objsize and self.slab.bytes_now:
            memory.append(f"the slab holds {sizing.fmt_bytes(self.slab.bytes_now)} now "
                          f"({self.slab.active} entries of all namespaces)")
        self.details += memory[:1] + memory[2:]
        self.facts.update(entry_bytes=entry, entry_bytes_source=self.slab.source or None,
                          full_table_bytes=full, memory_share_percent=round(share, 3))
        defaults = self.defaults()
        if self.max == 0:
            self.default_ratio = self.full_load = 0.0
            self.add("memory", "warning", "nf_conntrack_max is 0: the table has no limit, a "
                     "flood of new flows can take the machine's memory", memory[:1],
                     now=f"sysctl -w {self.key('max')}={max(m for _, _, m in defaults)}",
                     persist=self.sysctl_line_fix("max", max(m for _, _, m in defaults)))
            return
        for severity, rng in (("critical", limits.memory_critical),
                              ("warning", limits.memory_warning)):
            if rng.match(share):
                continue
            # the largest max (in 1024s) within the memory warning and the default range
            fit = limits.memory_warning.end
            suggest = None
            if fit != float("inf"):
                suggest = int((fit / 100 * self.ram - self.buckets * self.ptr) // entry)
                if limits.default_warning.end != float("inf"):
                    top = limits.default_warning.end * min(m for _, _, m in defaults)
                    suggest = min(suggest, int(top))
                suggest = max(suggest // 1024 * 1024, 1024)
            self.add("memory", severity,
                     f"a full table would pin {sizing.fmt_bytes(full)}, {share:.1f}% of "
                     f"RAM ({severity} {plugin.describe_violation(rng, '%')})", memory,
                     now=f"sysctl -w {self.key('max')}={suggest}" if suggest else None,
                     persist=self.sysctl_line_fix("max", suggest) if suggest else None)
            break
        # against the kernel's own default
        self.facts["kernel_default"] = [{"era": e, "buckets": b, "max": m}
                                        for e, b, m in defaults]
        formulas = "; ".join(sizing.ERAS[e].formula(self.ptr) for e in self.eras)
        shown = " or ".join(str(m) for _, _, m in defaults)
        ratios = [self.max / m for _, _, m in defaults]
        self.default_ratio = min(ratios, key=lambda r: abs(r - 1))
        rng = limits.default_warning
        if not any(rng.match(r) for r in ratios):
            low = all(r < rng.start for r in ratios)
            cpus = os.cpu_count() or 1
            evidence = [f"kernel default for {sizing.fmt_bytes(self.ram)} RAM, {self.ptr * 8}-bit:"
                        f" max {shown} ({formulas})"]
            if self.max == kube_proxy_max(cpus) and self.kube_proxy():
                evidence.append(f"{self.max} is what kube-proxy sets (max(32768 x {cpus} CPUs, "
                                "131072)): change --conntrack-min/--conntrack-max-per-core")
            if low:
                suggest = max(m for _, _, m in defaults)
                why = "below the default: the table fills sooner than the kernel would allow"
            else:
                suggest = int(rng.end * min(m for _, _, m in defaults))
                why = "far above the default: sized for another machine?"
            self.add("max-vs-default", "warning",
                     f"nf_conntrack_max {self.max} is {self.default_ratio:.2f} x the kernel's "
                     f"default for this RAM ({shown}), {why}", evidence,
                     now=f"sysctl -w {self.key('max')}={suggest}",
                     persist=self.sysctl_line_fix("max", suggest))
        # hash size against the max
        load = self.max / self.buckets
        self.full_load = load
        if not limits.hash_warning.match(load):
            suggest = self.round_buckets(max(self.max, 1024))
            self.add("hash-size", "warning",
                     f"{self.buckets} buckets for max {self.max}: {load:.2f} entries per bucket "
                     f"when full ({plugin.describe_violation(limits.hash_warning)})",
                     ["every lookup walks one chain; 5.15+ kernels size 1 entry per bucket, "
                      "older ones 4, kube-proxy 4; from 5.15 chains longer than about 64 "
                      "refuse inserts (chaintoolong)"],
                     now=self.runtime_buckets(suggest),
                     persist=self.persist_buckets(suggest, self.module_hashsize()))

    def check_timeouts(self) -> None:
        limits = self.limits.timeouts
        for name in TIMEOUTS:
            bad = [(ns, values[name]) for ns, values in self.timeouts
                   if name in values and not limits[name].match(values[name])]
            if not bad:
                continue
            rng = limits[name]
            ns, value = max(bad, key=lambda b: b[1])
            if rng.invert:  # @start:end: no one value to suggest
                why, target = plugin.describe_violation(rng, " s"), None
            elif value > rng.end:
                why, target = f"above {fmt_number(rng.end)} s", int(rng.end)
            else:
                why, target = f"below {fmt_number(rng.start)} s", int(rng.start)
            where = "" if ns.path is None else f" in netns {ns.name}"
            default = TIMEOUTS[name][0][0]
            evidence = [f"{n.name if n.path else netns.CURRENT}: {v} s"
                        + (" (kernel default)" if v in TIMEOUTS[name][0] else "")
                        for n, v in bad]
            if name == "tcp_timeout_established" and not rng.invert and value > rng.end:
                evidence.append("an established connection that goes quiet without FIN/RST "
                                f"(peer gone, NAT timeout) holds its entry for {seconds(value)}; "
                                "Kubernetes sets 86400")
            now = persist = None
            if target is not None and not ns.is_host:
                # `ip netns exec` knows only the names in /run/netns
                enter = f"ip netns exec {ns.name} " if ns.path.endswith("/" + ns.name) else \
                    f"nsenter --net={ns.path} "
                now = f"{enter}sysctl -w {self.key(name)}={target}"
                persist = ("set it where the namespace is created (container runtime, CNI): "
                           f"a new namespace starts from the kernel default {default}")
            elif target is not None:
                now = f"sysctl -w {self.key(name)}={target}"
                persist = self.sysctl_line_fix(name, target)
            self.add(f"timeout-{short(name)}", "warning",
                     f"{name} is {value} s ({seconds(value)}){where}, {why}", evidence,
                     now=now, persist=persist)


def short(name: str) -> str:
    """Finding id part: tcp_timeout_established -> tcp-established."""
    return name.replace("_timeout", "").replace("_", "-")


def ignored(finding: Finding, patterns) -> bool:
    if not patterns:
        return False
    import fnmatch  # only when --ignore is given

    return any(fnmatch.fnmatchcase(finding.id, p) for p in patterns)


# Nagios plumbing --------------------------------------------------------------

class Tuning(nagiosplugin.Resource):
    def __init__(self, args, limits: Thresholds):
        self.args = args
        self.limits = limits
        self.analysis = None
        self.missing = None
        self.shown: list[Finding] = []
        self.details: list[str] = []

    def probe(self):
        args = self.args
        roots = sysctl.Roots(args.proc_root, args.sys_root)
        namespaces, all_netns = options.namespaces(args)
        analysis = Analysis(roots, args.config_root, namespaces, self.limits, all_netns)
        try:
            findings = analysis.run()
        except ModuleMissing as exc:
            self.missing = str(exc)
            return [nagiosplugin.Metric("nf_conntrack", str(exc), context="missing")]
        self.analysis = analysis
        self.shown = [f for f in findings if not ignored(f, args.ignore)]
        self.details = analysis.details + [f"ignored: [{f.id}] {f.title}" for f in findings
                                           if ignored(f, args.ignore)]
        metrics = [nagiosplugin.Metric(f.id, f, context="finding") for f in self.shown]
        return [
            *metrics,
            nagiosplugin.Metric("memory_share", analysis.share, "%", min=0,
                                context="memory_share"),
            nagiosplugin.Metric("full_table", analysis.full_bytes, "B", min=0,
                                context="perfdata"),
            nagiosplugin.Metric("max", analysis.max, min=0, context="perfdata"),
            nagiosplugin.Metric("default_ratio", analysis.default_ratio, min=0,
                                context="default_ratio"),
            nagiosplugin.Metric("full_load_factor", analysis.full_load, min=0,
                                context="full_load_factor"),
            nagiosplugin.Metric("findings", len(self.shown), min=0, context="perfdata"),
        ]

    def status_text(self, results) -> str:
        if self.missing:
            return self.missing
        if not self.shown:
            a = self.analysis
            return (f"nothing to fix: max {a.max} ({a.default_ratio:.2f} x kernel default), "
                    f"{a.full_load:.2f} entries per bucket when full, full table "
                    f"{sizing.fmt_bytes(a.full_bytes)} = {a.share:.1f}% of RAM, running values "
                    "match the boot configuration, timeouts within limits" + self.unread_note())
        worst = self.shown[0]
        text = f"{worst.title} [{worst.id}]"
        more = [f.id for f in self.shown[1:]]
        if more:
            listed = ", ".join(more[:4]) + (", ..." if len(more) > 4 else "")
            text += f"; {len(more)} more: {listed} (see -v)"
        return text + self.unread_note()

    def unread_note(self) -> str:
        missed = len(self.analysis.unreadable)
        return f"; timeouts of {missed} namespaces not readable (see -v)" if missed else ""


class FindingContext(nagiosplugin.Context):
    def evaluate(self, metric, resource):
        finding = metric.value
        return self.result_cls(plugin.STATES[finding.severity], finding.title, metric)


class RangesContext(plugin.PerfContext):
    """Perfdata with the ranges the analysis applied; the state comes from findings."""

    def __init__(self, name, warning=None, critical=None):
        super().__init__(name)
        self.ranges = (warning, critical)

    def performance(self, metric, resource):
        return plugin.performance(metric.name, metric.value, metric.uom, *self.ranges,
                                  metric.min, metric.max)


class Summary(plugin.Summary):
    def verbose(self, results):
        resource = plugin._first_resource(results)
        if resource is None:
            return []
        lines = []
        for finding in resource.shown:
            lines += finding.lines()
        return lines + resource.details


def thresholds(args) -> Thresholds:
    return Thresholds(args.memory_warning, args.memory_critical, args.hash_warning,
                      args.default_warning, dict(args.timeout_limit or []))


timeout_limit = plugin.named_range(
    TIMEOUTS.__contains__, f"one of {', '.join(TIMEOUTS)}",
    normalize=lambda name: name.replace("nf_conntrack_", ""))


def parser():
    p = plugin.base_parser("check_conntrack_tuning", __doc__, NAME)
    p.add_argument("--config-root", default="/", metavar="DIR", type=plugin.directory,
                   help="read /etc, /run, /usr and /lib under DIR (default /)")
    p.add_argument("--ignore", action="append", default=[], metavar="ID",
                   help="silence the finding ID (repeatable; shell patterns such as "
                        "'timeout-*' allowed)")
    p.add_argument("--memory-warning", type=plugin.nagios_range, metavar="RANGE",
                   help="percent of RAM a full table may pin before it warns "
                        f"(default {defaults.TUNING['memory_warning']})")
    p.add_argument("--memory-critical", type=plugin.nagios_range, metavar="RANGE",
                   help="percent of RAM a full table may pin before it is critical "
                        f"(default {defaults.TUNING['memory_critical']})")
    p.add_argument("--default-warning", type=plugin.nagios_range, metavar="RANGE",
                   help="max as a multiple of the kernel's default for this RAM that is "
                        f"fine (default {defaults.TUNING['default_warning']})")
    p.add_argument("--hash-warning", type=plugin.nagios_range, metavar="RANGE",
                   help="entries per bucket at a full table that are fine "
                        f"(default {defaults.TUNING['hash_warning']})")
    p.add_argument("--timeout-limit", type=timeout_limit, action="append", metavar="NAME=RANGE",
                   help="limit for one timeout in seconds, e.g. "
                        "tcp_timeout_established=300:172800 (repeatable; defaults in --help "
                        "text of the README)")
    return p


@nagiosplugin.guarded(verbose=0)
def main(argv=None):
    args = parser().parse_args(argv)
    limits = thresholds(args)
    check = nagiosplugin.Check(
        Tuning(args, limits),
        FindingContext("finding"),
        RangesContext("memory_share", limits.memory_warning, limits.memory_critical),
        RangesContext("default_ratio", limits.default_warning),
        RangesContext("full_load_factor", limits.hash_warning),
        plugin.PerfContext("perfdata"),
        plugin.StateContext("missing", plugin.STATES[args.missing]),
        Summary(),
        name=NAME,
    )
    plugin.run(check, args)


def report_section(roots: sysctl.Roots, config_root: str = "/", namespaces=None,
                   ignore=(), all_netns: bool = False) -> dict:
    """The findings as plain data for conntrack-report (ProbeError when not available)."""
    analysis = Analysis(roots, config_root, namespaces, all_netns=all_netns)
    findings = [f for f in analysis.run() if not ignored(f, ignore)]
    worst = findings[0].severity if findings else "ok"
    facts = dict(analysis.facts, max=analysis.max, buckets=analysis.buckets, ram_bytes=analysis.ram,
                 pointer_bytes=analysis.ptr, eras=analysis.eras,
                 full_load_factor=round(analysis.full_load, 3),
                 boot_tool=analysis.sysctl.tool,
                 timeouts={ns.name: values for ns, values in analysis.timeouts})
    return {"status": worst, "findings": [f.as_dict() for f in findings], "facts": facts,
            "details": analysis.details}
