"""The fix texts: the command for now and the line that keeps it, as the host's tools take them.

sysctl -w and sysctl.d for the sysctls, the module parameter and modprobe.d
or the kernel command line (GRUB) for the hash size, ip netns exec or
nsenter for another namespace.
"""

from __future__ import annotations

import os

from ..kernel import bootconf

# Names for a new sysctl.d file, each sorting after more of the vendor files.
NEW_FILES = ("90-conntrack.conf", "99-zz-conntrack.conf", "zz-conntrack.conf")


def sysctl_now(facts, name: str, value: int) -> str:
    return f"sysctl -w {facts.key(name)}={value}"


def sysctl_line(facts, name: str, value: int) -> str:
    """Where to put ``key = value`` so that it wins at the next boot."""
    setters = facts.boot_sysctl.effective(name, facts.exists)[1]
    line = f"{facts.key(name)} = {value}"
    winner = setters[-1] if setters else None
    if winner is not None and winner.path.startswith("/etc/"):
        return f"change line {winner.number} of {winner.path} to '{line}'"
    # a new file in /etc must not shadow a vendor file of the same name
    taken = {os.path.basename(listed) for listed, _ in
             facts.conf_root.conf_files(bootconf.SYSCTL_DIRS) if not listed.startswith("/etc/")}
    after = max((os.path.basename(s.listed) for s in setters), default="")
    for candidate in NEW_FILES:
        if candidate > after and candidate not in taken:
            return f"add '{line}' to /etc/sysctl.d/{candidate}"
    return f"add '{line}' to /etc/sysctl.d/{NEW_FILES[-1]}"


def buckets_now(facts, value: int) -> str:
    """The hash size now: the sysctl from 4.8, the module parameter before."""
    if facts.buckets_writable:
        return sysctl_now(facts, "buckets", value)
    module = "ip_conntrack" if facts.ip_era else "nf_conntrack"
    return f"echo {value} > /sys/module/{module}/parameters/hashsize"


def buckets_line(facts, value: int, module_line=None) -> str:
    """Where the hash size persists: sysctl.d, else modprobe.d, else the command line."""
    if facts.builtin:
        if facts.buckets_writable:
            return sysctl_line(facts, "buckets", value)
        return (f"add 'nf_conntrack.hashsize={value}' to the kernel command line "
                "(GRUB_CMDLINE_LINUX in /etc/default/grub, then update-grub or grub2-mkconfig)")
    option = f"options nf_conntrack hashsize={value}"
    if module_line is not None and module_line.path.startswith("/etc/"):
        return f"change line {module_line.number} of {module_line.path} to '{option}'"
    return (f"add '{option}' to /etc/modprobe.d/nf_conntrack.conf (and rebuild the "
            "initramfs if nf_conntrack loads from it)")


def inside(ns, command: str) -> str:
    """``command`` run in the namespace ``ns`` (`ip netns exec` knows only /run/netns names)."""
    if ns.path.endswith("/" + ns.name):
        return f"ip netns exec {ns.name} {command}"
    return f"nsenter --net={ns.path} {command}"


def namespace_line(default: int) -> str:
    return ("set it where the namespace is created (container runtime, CNI): "
            f"a new namespace starts from the kernel default {default}")


def reapply_files(files) -> str:
    return " && ".join(f"sysctl -p {f}" for f in files)


SYSCTL_CONF_NOW = f"sysctl -p {bootconf.SYSCTL_CONF}"
SYSCTL_CONF_LINK = "ln -s ../sysctl.conf /etc/sysctl.d/99-sysctl.conf"
LOAD_AT_BOOT = "echo nf_conntrack > /etc/modules-load.d/nf_conntrack.conf"
RENAME_KEYS = "rename each key as shown (ip_conntrack names were removed in 4.9) or delete the line"


def keep_module_now(var: str, path: str) -> str:
    return f"sed -i 's/^{var}=.*/{var}=\"no\"/' {path}"


def keep_module_line(var: str, path: str, prefix: str) -> str:
    return (f"{var}=\"no\" in {path} (or {prefix}_SYSCTL_LOAD_LIST=\".nf_conntrack\" to "
            "re-apply sysctl.d after each start)")
