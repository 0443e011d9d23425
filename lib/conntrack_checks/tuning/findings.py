"""What the tuning rules speak of: findings and their ids, the limits, the timeouts."""

from __future__ import annotations

from .. import defaults


class Finding:
    """One setting that will bite: what, why, and how to fix it now and for good."""

    __slots__ = ("evidence", "id", "now", "persist", "severity", "title")

    def __init__(self, id, severity, title, evidence, now=None, persist=None):
        self.id = id  # one of finding_ids(): --ignore and the docs' table name it
        self.severity = severity  # "warning" or "critical"
        self.title = title
        self.evidence = evidence  # list of lines
        self.now = now  # the command that fixes it until the next boot
        self.persist = persist  # the line (file, option) that keeps the fix

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


SEVERITY_ORDER = {"critical": 2, "warning": 1}

# Every finding id the rules give, with what it means. ``<timeout>`` and
# ``<name>`` stand for each of TIMEOUTS, shortened (short_name). The finding
# table of docs/check_conntrack_tuning.rst lists exactly these ids;
# tests/test_tuning_rules.py holds them to it.
FINDING_IDS = {
    "persist-max": "the running max is not what the next boot applies",
    "persist-buckets": "the running hash size is not what the next boot applies",
    "persist-<timeout>": "a running timeout of the host is not what the next boot applies",
    "load-order": "a conntrack sysctl is applied before anything loads nf_conntrack: lost",
    "iptables-unload": "an EL iptables service restart unloads nf_conntrack: the tuning is lost",
    "sysctl-conf-unread": "/etc/sysctl.conf sets conntrack keys systemd-sysctl never reads",
    "dead-key": "a sysctl line names a conntrack key this kernel does not have",
    "memory": "a full table would pin too much of the RAM, or the max is 0 (no limit)",
    "max-vs-default": "the max is far from the kernel's own default for this RAM",
    "hash-size": "too many entries per bucket at a full table",
    "timeout-<name>": "a timeout is outside its limit, in any namespace checked",
}


def short_name(timeout: str) -> str:
    """A timeout's part of a finding id: tcp_timeout_established -> tcp-established."""
    return timeout.replace("_timeout", "").replace("_", "-")


def finding_ids() -> list[str]:
    """Every id a finding can have: FINDING_IDS with each timeout put in."""
    ids = []
    for listed in FINDING_IDS:
        family, angle, _ = listed.partition("<")
        ids += [family + short_name(name) for name in TIMEOUTS] if angle else [listed]
    return ids


class Timeout:
    """One conntrack timeout: what the kernel sets and the limit checked by default."""

    __slots__ = ("kernel_defaults", "limit")

    def __init__(self, kernel_defaults: tuple[int, ...], limit: str):
        self.kernel_defaults = kernel_defaults  # seconds; the newest kernels' first
        self.limit = limit  # a Nagios range in seconds (defaults.TIMEOUT_LIMITS says why)

    @property
    def default(self) -> int:
        """What a new namespace starts from on a current kernel."""
        return self.kernel_defaults[0]


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
    "udp_timeout_stream": (120, 180),  # 180 before 5.0
    "generic_timeout": (600,),
    "icmp_timeout": (30,),
    "icmpv6_timeout": (30,),
}
TIMEOUTS = {name: Timeout(KERNEL_TIMEOUTS[name], limit)
            for name, limit in defaults.TIMEOUT_LIMITS.items()}


class Thresholds:
    """The limits the rules hold the values to, as Nagios ranges (defaults: defaults.py).

    A range is anything with ``start``, ``end``, ``invert`` and ``match(value)``
    (nagiosplugin.Range): the caller parses, with ``parse`` for every limit it
    does not give, and this package only compares.
    """

    __slots__ = ("default_warning", "hash_warning", "memory_critical", "memory_warning",
                 "timeouts")

    def __init__(self, parse, memory_warning=None, memory_critical=None, hash_warning=None,
                 default_warning=None, timeouts=None):
        spec = defaults.TUNING
        self.memory_warning = memory_warning or parse(spec["memory_warning"])
        self.memory_critical = memory_critical or parse(spec["memory_critical"])
        self.hash_warning = hash_warning or parse(spec["hash_warning"])
        self.default_warning = default_warning or parse(spec["default_warning"])
        self.timeouts = {name: parse(t.limit) for name, t in TIMEOUTS.items()}
        self.timeouts.update(timeouts or {})
