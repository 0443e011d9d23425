"""kernel/bootconf.py: sysctl.d and modprobe.d read as systemd-sysctl, procps and kmod read
them; configuration trees in, the winning line out."""

from __future__ import annotations

import pytest
from conntrack_checks.kernel import bootconf
from tuning_trees import root, write_root

MAX = "net.netfilter.nf_conntrack_max"
SYSCTL_CASES = [
    # id, files, systemd?, expected (value, where) of the winning max line
    ("later-name-wins-across-dirs",
     {"usr/lib/sysctl.d/60-b.conf": f"{MAX} = 2\n", "etc/sysctl.d/50-a.conf": f"{MAX} = 1\n"},
     True, ("2", "/usr/lib/sysctl.d/60-b.conf:1")),
    ("etc-shadows-same-name-in-usr-lib",
     {"usr/lib/sysctl.d/50-a.conf": f"{MAX} = 1\n", "etc/sysctl.d/50-a.conf": f"{MAX} = 9\n"},
     True, ("9", "/etc/sysctl.d/50-a.conf:1")),
    ("run-shadows-usr-local-lib-and-lib",
     {"run/sysctl.d/50-a.conf": f"{MAX} = 3\n", "usr/local/lib/sysctl.d/50-a.conf":
      f"{MAX} = 4\n", "lib/sysctl.d/50-a.conf": f"{MAX} = 5\n"},
     True, ("3", "/run/sysctl.d/50-a.conf:1")),
    ("usr-local-lib-shadows-usr-lib",
     {"usr/local/lib/sysctl.d/50-a.conf": f"{MAX} = 4\n",
      "usr/lib/sysctl.d/50-a.conf": f"{MAX} = 6\n"}, True,
     ("4", "/usr/local/lib/sysctl.d/50-a.conf:1")),
    ("lib-sorts-among-the-others",
     {"lib/sysctl.d/70-c.conf": f"{MAX} = 7\n", "etc/sysctl.d/60-b.conf": f"{MAX} = 6\n"},
     True, ("7", "/lib/sysctl.d/70-c.conf:1")),
    ("dev-null-link-masks",
     {"usr/lib/sysctl.d/50-a.conf": f"{MAX} = 1\n", "etc/sysctl.d/50-a.conf":
      ("link", "/dev/null")}, True, None),
    ("sysctl-conf-through-99-link-then-later-name",
     {"etc/sysctl.conf": f"{MAX} = 1\n", "etc/sysctl.d/99-sysctl.conf":
      ("link", "../sysctl.conf"), "usr/lib/sysctl.d/99-zz.conf": f"{MAX} = 2\n"},
     True, ("2", "/usr/lib/sysctl.d/99-zz.conf:1")),
    ("sysctl-conf-link-wins-over-earlier-names",
     {"etc/sysctl.conf": f"# tuned\n{MAX} = 1\n", "etc/sysctl.d/99-sysctl.conf":
      ("link", "../sysctl.conf"), "etc/sysctl.d/50-a.conf": f"{MAX} = 2\n"},
     True, ("1", "/etc/sysctl.conf:2 (via /etc/sysctl.d/99-sysctl.conf)")),
    ("absolute-link-resolved-under-the-root",
     {"etc/sysctl.conf": f"{MAX} = 1\n", "etc/sysctl.d/99-sysctl.conf":
      ("link", "/etc/sysctl.conf")}, True,
     ("1", "/etc/sysctl.conf:1 (via /etc/sysctl.d/99-sysctl.conf)")),
    ("systemd-without-link-ignores-sysctl-conf",
     {"etc/sysctl.conf": f"{MAX} = 1\n", "etc/sysctl.d/50-a.conf": f"{MAX} = 2\n"},
     True, ("2", "/etc/sysctl.d/50-a.conf:1")),
    ("procps-reads-sysctl-conf-last",
     {"etc/sysctl.conf": f"{MAX} = 1\n", "usr/lib/sysctl.d/99-zz.conf": f"{MAX} = 2\n"},
     False, ("1", "/etc/sysctl.conf:1")),
    ("comments-spacing-slashes-dash",
     {"etc/sysctl.d/50-a.conf": f"# {MAX} = 1\n; {MAX} = 2\n\n   \t{MAX}=3   \n",
      "etc/sysctl.d/60-b.conf": "  net/netfilter/nf_conntrack_max\t=  4\n",
      "etc/sysctl.d/70-c.conf": f"-{MAX} = 5 \nnot an assignment\n"},
     True, ("5", "/etc/sysctl.d/70-c.conf:1")),
    ("not-conf-suffix-and-hidden-files-ignored",
     {"etc/sysctl.d/50-a.conf": f"{MAX} = 1\n", "etc/sysctl.d/90-b.conf.rpmsave":
      f"{MAX} = 2\n", "etc/sysctl.d/.99-c.conf": f"{MAX} = 3\n"},
     True, ("1", "/etc/sysctl.d/50-a.conf:1")),
    ("old-alias-counts-when-the-kernel-has-it",
     {"etc/sysctl.d/50-a.conf": "net.nf_conntrack_max = 8\n"}, True,
     ("8", "/etc/sysctl.d/50-a.conf:1")),
]


@pytest.mark.parametrize("files, systemd, expected", [c[1:] for c in SYSCTL_CASES],
                         ids=[c[0] for c in SYSCTL_CASES])
def test_sysctl_precedence(fs, files, systemd, expected):
    base = write_root("/cfg", root(files, systemd=systemd, clean=False))
    conf = bootconf.SysctlConfig(bootconf.ConfigRoot(base))
    line, _ = conf.effective("max", lambda path: True)
    assert (line.value, line.where) == expected if expected else line is None


@pytest.mark.parametrize("binary, expected", [
    (b"\x7fELF...sysctl.d\x00", ("2", "/usr/lib/sysctl.d/99-zz.conf:1")),  # upstream 207+
    (b"\x7fELF.../etc/sysctl.conf\x00", ("1", "/etc/sysctl.conf:1")),  # RHEL 7, before 207
])
def test_systemd_sysctl_that_reads_sysctl_conf_itself(fs, binary, expected):
    files = {"etc/sysctl.conf": f"{MAX} = 1\n", "usr/lib/sysctl.d/99-zz.conf": f"{MAX} = 2\n",
             "etc/sysctl.d/99-sysctl.conf": ("link", "../sysctl.conf")}
    base = write_root("/cfg", root(files, clean=False))
    with open(base + "/usr/lib/systemd/systemd-sysctl", "wb") as handle:
        handle.write(binary)
    line, _ = bootconf.SysctlConfig(bootconf.ConfigRoot(base)).effective("max", lambda p: True)
    assert (line.value, line.path + ":" + str(line.number)) == expected


def test_sysctl_key_normalization():
    assert bootconf.normalize_key(" net.netfilter.nf_conntrack_max ") == \
        "net/netfilter/nf_conntrack_max"
    assert bootconf.normalize_key("/net//netfilter/nf_conntrack_max") == \
        "net/netfilter/nf_conntrack_max"
    assert bootconf.normalize_key("net.ipv4.conf.eth0/100.rp_filter") == \
        "net/ipv4/conf/eth0.100/rp_filter"


@pytest.mark.parametrize("value, number", [
    ("262144", 262144), ("262144 # raised", 262144), ("262144\t", 262144),
    ("262144#x", None), ("lots", None), ("", None), ("-5", None), ("２", None),
])
def test_value_as_the_kernel_parses_it(value, number):
    assert bootconf.leading_int(value) == number


MODPROBE_CASES = [
    ("etc", {"etc/modprobe.d/nf.conf": "options nf_conntrack hashsize=32768\n"}, "",
     ("32768", "/etc/modprobe.d/nf.conf:1")),
    ("continuation-and-dash-name", {"etc/modprobe.d/nf.conf":
                                    "# comment\noptions nf-conntrack \\\n  acct=1 hashsize=4096\n"},
     "", ("4096", "/etc/modprobe.d/nf.conf:2")),
    ("alias-ip-conntrack", {"lib/modprobe.d/old.conf": "options ip_conntrack hashsize=8192\n"},
     "", ("8192", "/lib/modprobe.d/old.conf:1")),
    ("etc-shadows-lib", {"lib/modprobe.d/nf.conf": "options nf_conntrack hashsize=1\n",
                         "etc/modprobe.d/nf.conf": "options nf_conntrack hashsize=2\n"},
     "", ("2", "/etc/modprobe.d/nf.conf:1")),
    ("later-line-wins", {"run/modprobe.d/a.conf": "options nf_conntrack hashsize=1\n",
                         "usr/lib/modprobe.d/b.conf": "options nf_conntrack hashsize=3\n"},
     "", ("3", "/usr/lib/modprobe.d/b.conf:1")),
    ("cmdline-last", {"etc/modprobe.d/nf.conf": "options nf_conntrack hashsize=2\n"},
     "ro nf_conntrack.hashsize=65536", ("65536", "/proc/cmdline:1")),
    ("other-module-ignored", {"etc/modprobe.d/nf.conf": "options nf_nat hashsize=2\n"}, "",
     None),
]


@pytest.mark.parametrize("files, cmdline, expected", [c[1:] for c in MODPROBE_CASES],
                         ids=[c[0] for c in MODPROBE_CASES])
def test_modprobe_hashsize(fs, files, cmdline, expected):
    base = write_root("/cfg", files)
    lines = bootconf.modprobe_hashsize(bootconf.ConfigRoot(base), cmdline.split())
    got = (lines[-1].value, lines[-1].where) if lines else None
    assert got == expected
