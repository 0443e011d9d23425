"""Every check's default thresholds, as Nagios range strings, in one place.

The checks' parsers and help texts and conntrack-report read them from here,
so the report judges a value exactly as the plugin run without options does.
Keys are the options' argparse names; None: no default (the option alone
sets one). Plain strings, so that importing this costs nothing: whoever
needs a Range builds it (nagiosplugin.Range(spec)).
"""

# check_conntrack: usage in percent of nf_conntrack_max. Count thresholds
# (--warning-count/--critical-count) have no default; given alone they
# replace these.
CONNTRACK = {"warning": "80", "critical": "90"}

# check_conntrack_hash: entries per hash bucket, now and at a full table.
HASH = {"warning": "8", "critical": "32", "warning_full": "8", "critical_full": None}

# check_conntrack_log: messages within --window. Ten lines are a full burst
# of the kernel's rate limit, hence critical above 9.
LOG = {"warning": "0", "critical": "9", "warning_expect": "0"}

# check_conntrack_table: share of nf_conntrack_max held by the biggest group
# (no default with --share-of entries).
TABLE = {"warning": "40", "critical": "60"}

# check_conntrack_stats: {perfdata label: (warning, critical, kernels)}, each
# range {--rate-per: range}; kernels: None = all, True = those with the
# clashres column (5.10+ and backports), False = those without. -w/-c replace
# them per label (on every kernel).
ZERO = {"second": "0", "minute": "0", "check": "0"}
STATS = {
    # Entries evicted early: the table is at its limit.
    "early_drop_delta": (ZERO, None, None),
    # The DNS/SNAT race on Kubernetes nodes: each failed insert of a clash
    # drops a packet (a DNS query waits 5 s); about one per minute is felt.
    # Without clashres insert_failed also counts the clashes the kernel
    # resolved (no packet lost), an everyday event: no default there.
    "insert_failed_rate": ({"second": "0.017", "minute": "1", "check": "1"}, None, True),
    # Kernels that cannot tell a full table from a clash: any drop pages.
    "drop_delta": (None, ZERO, False),
    # A full table loses every new flow: page. A clash loses one packet,
    # which is retried: warn.
    "table_full_delta": (None, ZERO, True),
    "clash_drop_delta": (ZERO, None, True),
}

# check_conntrack_tuning: percent of RAM a full table pins, max as a multiple
# of the kernel's default for this RAM, entries per bucket at a full table.
TUNING = {"memory_warning": "10", "memory_critical": "25", "hash_warning": "8",
          "default_warning": "1:16"}

# check_conntrack_tuning --timeout-limit, in seconds. The value Kubernetes
# (kube-proxy) sets for established (24 h) and close_wait (1 h); 180 s for UDP
# streams (the pre-5.0 default); the kernel default for every other state,
# where a longer timeout only holds entries of flows that are over.
# Established below 300 s breaks idle connections through NAT.
TIMEOUT_LIMITS = {
    "tcp_timeout_established": "300:86400",
    "tcp_timeout_close_wait": "3600",
    "tcp_timeout_time_wait": "120",
    "tcp_timeout_fin_wait": "120",
    "tcp_timeout_syn_sent": "120",
    "tcp_timeout_syn_recv": "60",
    "tcp_timeout_last_ack": "30",
    "tcp_timeout_close": "10",
    "tcp_timeout_max_retrans": "300",
    "tcp_timeout_unacknowledged": "300",
    "udp_timeout": "120",
    "udp_timeout_stream": "180",
    "generic_timeout": "600",
    "icmp_timeout": "30",
    "icmpv6_timeout": "30",
}
