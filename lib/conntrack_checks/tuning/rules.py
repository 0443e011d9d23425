"""The tuning rules: facts in, findings out, in four families.

persistence (running values against what the next boot applies), boot_files
(sysctl files that do nothing or too early, EL's module unloading), sizing
(memory, max against the kernel default, hash load) and timeouts (each against
its limit). Each family returns its findings and appends to ``notes`` what it
checked and found fine (the plugin's -v).
"""

from __future__ import annotations

from ..kernel import bootconf, netns, sizing
from ..words import describe_violation, fmt_number
from . import fixes
from .findings import SEVERITY_ORDER, TIMEOUTS, Finding, short_name

# kube-proxy sets these whenever it starts (its --conntrack-* defaults): a
# running value equal to them is not lost at the next boot when kube-proxy runs.
KUBE_PROXY_TIMEOUTS = {"tcp_timeout_established": 86400, "tcp_timeout_close_wait": 3600}


def kube_proxy_max(cpus: int) -> int:
    return max(32768 * cpus, 131072)


def seconds(value: int) -> str:
    """A duration in the largest unit that fits: 432000 -> '5 days'."""
    for unit, size in (("days", 86400), ("hours", 3600), ("minutes", 60)):
        if value >= size:
            count = round(value / size, 1)
            return f"{fmt_number(count)} {unit[:-1] if count == 1 else unit}"
    return f"{value} s"


class Analysis:
    """All four families over one set of facts: the findings worst first, and every note."""

    def __init__(self, facts, limits):
        self.facts = facts
        self.sizing = Sizing(facts)
        notes: list[str] = []
        findings = (persistence(facts, notes) + boot_files(facts, notes)
                    + sizing_rules(facts, self.sizing, limits, notes)
                    + timeouts(facts, limits.timeouts))
        findings.sort(key=lambda f: -SEVERITY_ORDER[f.severity])
        self.findings = findings
        self.details = facts.details + notes


# persistence -----------------------------------------------------------------------------

class NextBoot:
    """What the next boot sets a variable to, and how: a sysctl file's value, else a fallback.

    ``usable(value)`` false: the kernel refuses the file's value, the fallback
    stands; ``convert(value)``: what the kernel makes of it.
    """

    __slots__ = ("how", "line", "value", "values")

    def __init__(self, facts, name: str, fallback: set, fallback_how: str, usable=None,
                 convert=None):
        line = facts.boot_sysctl.effective(name, facts.exists)[0]
        value = bootconf.leading_int(line.value) if line else None
        if value is not None and usable is not None and not usable(value):
            value = None
        self.line = line  # the winning sysctl line, even when its value does nothing
        self.value = value  # the number that line sets, None when none is set
        if value is not None:
            self.values = {convert(value) if convert else value}
            self.how = f"{line.where} sets {value}"
        else:
            self.values, self.how = fallback, fallback_how


def persistence(facts, notes: list) -> list[Finding]:
    found = []
    hs_line, hashsize = facts.hashsize_line, facts.hashsize
    kernel_default = "no file sets it: the kernel's default for this RAM"
    # buckets: 0 is refused, and before 4.8 the sysctl is read-only (hashsize= then)
    if hashsize:
        fallback = {facts.round_buckets(hashsize)}, f"{hs_line.where} gives hashsize={hashsize}"
    else:
        fallback = {d.buckets for d in facts.kernel_defaults}, kernel_default
    boot = NextBoot(facts, "buckets", *fallback, convert=facts.round_buckets,
                    usable=lambda v: v > 0 and facts.buckets_writable)
    if facts.buckets in boot.values:
        notes.append(f"buckets {facts.buckets}: the next boot gives the same ({boot.how})")
    elif (not boot.line and not hashsize and facts.buckets == kube_proxy_max(facts.cpus) // 4
          and facts.kube_proxy_runs()):
        notes.append(f"buckets {facts.buckets}: kube-proxy's max/4, set again "
                     "whenever kube-proxy starts")
    else:
        found.append(persist_finding(facts, "buckets", facts.buckets, boot, boot.line or hs_line,
                                     now=fixes.buckets_now(facts, min(boot.values)),
                                     persist=fixes.buckets_line(facts, facts.buckets, hs_line)))
    # max
    if hashsize:
        fallback = ({8 * facts.round_buckets(hashsize)}, f"no file sets it; with {hs_line.where} "
                    f"hashsize={hashsize} the kernel's default is 8 x hashsize")
    else:
        fallback = {d.max for d in facts.kernel_defaults}, kernel_default
    boot = NextBoot(facts, "max", *fallback)
    if facts.max in boot.values:
        notes.append(f"max {facts.max}: the next boot gives the same ({boot.how})")
    elif (boot.value is None and facts.max == kube_proxy_max(facts.cpus)
          and facts.kube_proxy_runs()):
        notes.append(f"max {facts.max}: kube-proxy's max(32768 x {facts.cpus} CPUs, "
                     "131072), set again whenever kube-proxy starts")
    else:
        found.append(persist_finding(facts, "max", facts.max, boot, boot.line,
                                     now=fixes.sysctl_now(facts, "max", min(boot.values)),
                                     persist=fixes.sysctl_line(facts, "max", facts.max)))
    # timeouts of the host: other namespaces start from the kernel defaults
    for name, live in facts.host_timeouts().items():
        boot = NextBoot(facts, name, set(TIMEOUTS[name].kernel_defaults),
                        "no file sets it: the kernel default")
        if live in boot.values:
            continue
        if (boot.value is None and KUBE_PROXY_TIMEOUTS.get(name) == live
                and facts.kube_proxy_runs()):
            notes.append(f"{name} {live}: kube-proxy's value, set again "
                         "whenever kube-proxy starts")
            continue
        found.append(persist_finding(facts, name, live, boot, boot.line,
                                     now=fixes.sysctl_now(facts, name, min(boot.values)),
                                     persist=fixes.sysctl_line(facts, name, live)))
    return found


def persist_finding(facts, name, live, boot: NextBoot, line, now, persist) -> Finding:
    shown = " or ".join(str(b) for b in sorted(boot.values))
    variable = f"nf_conntrack_{name}"
    if line is not None:
        title = (f"{variable} is {live} but {line.where} sets {line.value}: "
                 "changed since boot, or the file was not applied")
    else:
        title = f"{variable} {live} is set at runtime only: the next boot gives {shown}"
    evidence = [f"running value {live}", f"next boot: {shown} ({boot.how})"]
    unread = [ln for ln in facts.boot_sysctl.conntrack_lines(unread=True)
              if bootconf.conntrack_name(ln.key) == name]
    evidence += [f"{ln.where} sets {ln.value}, but systemd-sysctl does not read "
                 f"{bootconf.SYSCTL_CONF}" for ln in unread]
    return Finding(f"persist-{short_name(name)}", "warning", title, evidence,
                   now=f"{now} (back to what the next boot gives)",
                   persist=f"to keep {live}: {persist}")


# boot files ------------------------------------------------------------------------------

def boot_files(facts, notes: list) -> list[Finding]:
    found = dead_keys(facts) + unread_sysctl_conf(facts)
    lines = facts.boot_sysctl.conntrack_lines()
    applied = [ln for ln in lines if facts.exists(ln.key)]
    found += load_order(facts, applied, notes)
    if facts.builtin or not (applied or tuned_at_runtime(facts)):
        return found  # a reload brings back the defaults, and nothing else was set
    return found + iptables_unload(facts, notes)


def dead_keys(facts) -> list[Finding]:
    canonical_visible = facts.exists("net/netfilter/nf_conntrack_max") or facts.ip_era
    dead = [ln for ln in facts.boot_sysctl.conntrack_lines()
            if canonical_visible and not facts.exists(ln.key)]
    if not dead:
        return []
    evidence = []
    for ln in dead:
        name = bootconf.conntrack_name(ln.key)
        better = (f"; this kernel calls it {facts.key(name)}"
                  if facts.exists(facts.key(name).replace(".", "/")) else "")
        evidence.append(f"{ln.where}: '{ln.text}': no /proc/sys/{ln.key}{better}")
    return [Finding("dead-key", "warning",
                    f"{len(dead)} conntrack sysctl line(s) name a key this kernel does not "
                    f"have: {dead[0].where} sets {bootconf.dotted(dead[0].key)}", evidence,
                    persist=fixes.RENAME_KEYS)]


def unread_sysctl_conf(facts) -> list[Finding]:
    unread = facts.boot_sysctl.conntrack_lines(unread=True)
    if not unread:
        return []
    return [Finding("sysctl-conf-unread", "warning",
                    f"{bootconf.SYSCTL_CONF} sets {len(unread)} conntrack key(s) but "
                    "systemd-sysctl never reads it (no link to it in sysctl.d)",
                    [f"{ln.where}: '{ln.text}'" for ln in unread],
                    now=fixes.SYSCTL_CONF_NOW, persist=fixes.SYSCTL_CONF_LINK)]


def load_order(facts, applied: list, notes: list) -> list[Finding]:
    """A loadable nf_conntrack that nothing loads before systemd-sysctl runs."""
    if facts.builtin:
        notes.append("nf_conntrack is built into the kernel: sysctl.d applies at boot")
        return []
    early = bootconf.modules_loaded_early(facts.conf_root, facts.cmdline)
    if early:
        module, where = early[0]
        notes.append(f"{module} is loaded at boot by {where}: sysctl.d applies")
        return []
    if not applied:
        return []
    udev = bootconf.udev_reapply(facts.conf_root)
    if udev:
        notes.append(f"{udev} applies sysctl again when nf_conntrack loads")
        return []
    files = sorted({ln.path for ln in applied})
    return [Finding("load-order", "warning",
                    f"{applied[0].where} sets {bootconf.dotted(applied[0].key)} but "
                    "nf_conntrack is not loaded at boot: the setting is lost",
                    [f"{ln.where}: '{ln.text}'" for ln in applied[:5]] +
                    ["nf_conntrack is a loadable module and no modules-load.d file, "
                     "/etc/modules or modules-load= on the command line loads it; "
                     "systemd-sysctl runs before the firewall loads it, the write fails "
                     "with 'No such file or directory' and the value is lost"],
                    now=fixes.reapply_files(files), persist=fixes.LOAD_AT_BOOT)]


def iptables_unload(facts, notes: list) -> list[Finding]:
    """EL's iptables service unloading nf_conntrack, and the tuning with it."""
    found = []
    for path in bootconf.IPTABLES_CONFIG:
        values = bootconf.shell_vars(facts.conf_root, path)
        if values is None:
            continue
        prefix = "IP6TABLES" if "ip6tables" in path else "IPTABLES"
        unload, number = values.get(f"{prefix}_MODULES_UNLOAD", ("yes", None))
        if unload.lower() != "yes":
            continue
        items = values.get(f"{prefix}_SYSCTL_LOAD_LIST", ("", None))[0].split()
        if any(item in facts.key("max") for item in items):
            notes.append(f"{path}: {prefix}_SYSCTL_LOAD_LIST re-applies the "
                         "conntrack sysctls after each firewall start")
            continue
        where = f"{path}:{number} {prefix}_MODULES_UNLOAD={unload}" if number else \
            f"{path} leaves {prefix}_MODULES_UNLOAD unset (the init script's default: yes)"
        var = f"{prefix}_MODULES_UNLOAD"
        found.append(Finding(
            "iptables-unload", "warning",
            f"{var}=yes: every {prefix.lower()} service restart unloads nf_conntrack "
            "and resets max, hash size and timeouts to the kernel defaults",
            [where, "sysctl.d is not applied again when the module comes back"],
            now=fixes.keep_module_now(var, path) if number else None,
            persist=fixes.keep_module_line(var, path, prefix)))
    return found


def tuned_at_runtime(facts) -> bool:
    """Whether max or a timeout of the host differs from the kernel default."""
    if facts.max not in {d.max for d in facts.kernel_defaults}:
        return True
    return any(v not in TIMEOUTS[name].kernel_defaults
               for name, v in facts.host_timeouts().items())


# sizing ----------------------------------------------------------------------------------

class Sizing:
    """What a full table costs and how the max compares: the values behind the perfdata."""

    def __init__(self, facts):
        self.entry_bytes = facts.slab.entry_bytes
        self.full_bytes = sizing.full_table_bytes(facts.max, facts.buckets, self.entry_bytes,
                                                  facts.ptr)
        self.share = 100.0 * self.full_bytes / facts.ram  # percent of RAM
        defaults = [d.max for d in facts.kernel_defaults]
        # the max against each possible default; the one nearest 1 is shown
        self.ratios = [facts.max / m for m in defaults] if facts.max else []
        self.default_ratio = min(self.ratios, key=lambda r: abs(r - 1)) if facts.max else 0.0
        self.full_load = facts.max / facts.buckets if facts.max else 0.0  # entries per bucket

    def as_facts(self, facts) -> dict:
        return {"entry_bytes": self.entry_bytes, "entry_bytes_source": facts.slab.source or None,
                "full_table_bytes": self.full_bytes,
                "memory_share_percent": round(self.share, 3),
                "kernel_default": [d.as_dict() for d in facts.kernel_defaults]}


def sizing_rules(facts, size: Sizing, limits, notes: list) -> list[Finding]:
    slab = facts.slab
    entry_how = (f"{size.entry_bytes} B per entry from {slab.source}" if slab.objsize else
                 f"{size.entry_bytes} B per entry, the typical size ({slab.reason})")
    memory = [f"a full table pins {facts.max} x {size.entry_bytes} B + {facts.buckets} "
              f"buckets x {facts.ptr} B = {sizing.fmt_bytes(size.full_bytes)} of kernel memory, "
              f"{size.share:.1f}% of {sizing.fmt_bytes(facts.ram)} RAM ({entry_how}; "
              "extensions such as acct and NAT add 64-192 B per entry)",
              "the max applies to each namespace: every namespace that fills up pins as "
              "much again"]
    if slab.objsize and slab.bytes_now:
        memory.append(f"the slab holds {sizing.fmt_bytes(slab.bytes_now)} now "
                      f"({slab.active} entries of all namespaces)")
    notes += memory[:1] + memory[2:]
    if facts.max == 0:
        largest = max(d.max for d in facts.kernel_defaults)
        return [Finding("memory", "warning", "nf_conntrack_max is 0: the table has no limit, a "
                        "flood of new flows can take the machine's memory", memory[:1],
                        now=fixes.sysctl_now(facts, "max", largest),
                        persist=fixes.sysctl_line(facts, "max", largest))]
    return (memory_share(facts, size, limits, memory) + max_vs_default(facts, size, limits)
            + hash_load(facts, size, limits))


def memory_share(facts, size: Sizing, limits, evidence: list) -> list[Finding]:
    for severity, rng in (("critical", limits.memory_critical),
                          ("warning", limits.memory_warning)):
        if rng.match(size.share):
            continue
        # the largest max (in 1024s) within the memory warning and the default range
        fit = limits.memory_warning.end
        suggest = None
        if fit != float("inf"):
            suggest = int((fit / 100 * facts.ram - facts.buckets * facts.ptr) //
                          size.entry_bytes)
            if limits.default_warning.end != float("inf"):
                top = limits.default_warning.end * min(d.max for d in facts.kernel_defaults)
                suggest = min(suggest, int(top))
            suggest = max(suggest // 1024 * 1024, 1024)
        return [Finding("memory", severity,
                        f"a full table would pin {sizing.fmt_bytes(size.full_bytes)}, "
                        f"{size.share:.1f}% of RAM ({severity} {describe_violation(rng, '%')})",
                        evidence,
                        now=fixes.sysctl_now(facts, "max", suggest) if suggest else None,
                        persist=fixes.sysctl_line(facts, "max", suggest) if suggest else None)]
    return []


def max_vs_default(facts, size: Sizing, limits) -> list[Finding]:
    rng = limits.default_warning
    if any(rng.match(r) for r in size.ratios):
        return []
    defaults = [d.max for d in facts.kernel_defaults]
    shown = " or ".join(str(m) for m in defaults)
    formulas = "; ".join(sizing.ERAS[e].formula(facts.ptr) for e in facts.eras)
    evidence = [f"kernel default for {sizing.fmt_bytes(facts.ram)} RAM, {facts.ptr * 8}-bit:"
                f" max {shown} ({formulas})"]
    if facts.max == kube_proxy_max(facts.cpus) and facts.kube_proxy_runs():
        evidence.append(f"{facts.max} is what kube-proxy sets (max(32768 x {facts.cpus} CPUs, "
                        "131072)): change --conntrack-min/--conntrack-max-per-core")
    if all(r < rng.start for r in size.ratios):
        suggest = max(defaults)
        why = "below the default: the table fills sooner than the kernel would allow"
    else:
        suggest = int(rng.end * min(defaults))
        why = "far above the default: sized for another machine?"
    return [Finding("max-vs-default", "warning",
                    f"nf_conntrack_max {facts.max} is {size.default_ratio:.2f} x the kernel's "
                    f"default for this RAM ({shown}), {why}", evidence,
                    now=fixes.sysctl_now(facts, "max", suggest),
                    persist=fixes.sysctl_line(facts, "max", suggest))]


def hash_load(facts, size: Sizing, limits) -> list[Finding]:
    if limits.hash_warning.match(size.full_load):
        return []
    suggest = facts.round_buckets(max(facts.max, 1024))
    return [Finding("hash-size", "warning",
                    f"{facts.buckets} buckets for max {facts.max}: {size.full_load:.2f} entries "
                    f"per bucket when full ({describe_violation(limits.hash_warning)})",
                    ["every lookup walks one chain; 5.15+ kernels size 1 entry per bucket, "
                     "older ones 4, kube-proxy 4; from 5.15 chains longer than about 64 "
                     "refuse inserts (chaintoolong)"],
                    now=fixes.buckets_now(facts, suggest),
                    persist=fixes.buckets_line(facts, suggest, facts.hashsize_line))]


# timeouts --------------------------------------------------------------------------------

def timeouts(facts, limits: dict) -> list[Finding]:
    """Each timeout against its limit, in every namespace read; the worst value is named."""
    found = []
    for name in TIMEOUTS:
        rng = limits[name]
        bad = [(ns, values[name]) for ns, values in facts.timeouts
               if name in values and not rng.match(values[name])]
        if bad:
            found.append(timeout_finding(facts, name, rng, bad))
    return found


def timeout_finding(facts, name: str, rng, bad: list) -> Finding:
    ns, value = max(bad, key=lambda b: b[1])
    if rng.invert:  # @start:end: no one value to suggest
        why, target = describe_violation(rng, " s"), None
    elif value > rng.end:
        why, target = f"above {fmt_number(rng.end)} s", int(rng.end)
    else:
        why, target = f"below {fmt_number(rng.start)} s", int(rng.start)
    where = "" if ns.path is None else f" in netns {ns.name}"
    timeout = TIMEOUTS[name]
    evidence = [f"{n.name if n.path else netns.CURRENT}: {v} s"
                + (" (kernel default)" if v in timeout.kernel_defaults else "")
                for n, v in bad]
    if name == "tcp_timeout_established" and not rng.invert and value > rng.end:
        evidence.append("an established connection that goes quiet without FIN/RST "
                        f"(peer gone, NAT timeout) holds its entry for {seconds(value)}; "
                        "Kubernetes sets 86400")
    now = persist = None
    if target is not None and not ns.is_host:
        now = fixes.inside(ns, fixes.sysctl_now(facts, name, target))
        persist = fixes.namespace_line(timeout.default)
    elif target is not None:
        now = fixes.sysctl_now(facts, name, target)
        persist = fixes.sysctl_line(facts, name, target)
    return Finding(f"timeout-{short_name(name)}", "warning",
                   f"{name} is {value} s ({seconds(value)}){where}, {why}", evidence,
                   now=now, persist=persist)
