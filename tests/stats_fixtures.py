"""/proc/net/stat/nf_conntrack of each kernel generation, and ctnetlink's answer.

``stat_file(generation, rows)`` writes the file as the kernel does: a header,
then one row of %08x values per possible CPU, two spaces after ``entries``
and after ``icmp_error``. Rows are dicts by column name (missing = 0).
"""

from __future__ import annotations

import struct

from conntrack_checks.kernel import ctnetlink

HEADERS = {
    # ip_conntrack (2.6.18) and nf_conntrack up to ~2.6.2x: 16 columns.
    "2.6-16col": "entries  searched found new invalid ignore delete delete_list insert "
                 "insert_failed drop early_drop icmp_error  expect_new expect_create "
                 "expect_delete",
    # ~2.6.3x to 5.9: search_restart appended.
    "3.10-17col": "entries  searched found new invalid ignore delete delete_list insert "
                  "insert_failed drop early_drop icmp_error  expect_new expect_create "
                  "expect_delete search_restart",
    # 5.10 to 5.14: searched became clashres.
    "5.10-clashres": "entries  clashres found new invalid ignore delete delete_list insert "
                     "insert_failed drop early_drop icmp_error  expect_new expect_create "
                     "expect_delete search_restart",
    # 5.15 to 6.x: delete_list became chainlength.
    "5.15-chainlength": "entries  clashres found new invalid ignore delete chainlength "
                        "insert insert_failed drop early_drop icmp_error  expect_new "
                        "expect_create expect_delete search_restart",
}

# What the plugin calls each generation's counters (conntrack -S names).
NAMES = {
    "2.6-16col": ["searched", "found", "new", "invalid", "ignore", "delete", "delete_list",
                  "insert", "insert_failed", "drop", "early_drop", "error", "expect_new",
                  "expect_create", "expect_delete"],
}
NAMES["3.10-17col"] = [*NAMES["2.6-16col"], "search_restart"]
NAMES["5.10-clashres"] = ["clash_resolve", *NAMES["3.10-17col"][1:]]
NAMES["5.15-chainlength"] = [
    "chaintoolong" if n == "delete_list" else n for n in NAMES["5.10-clashres"]]

BOOT_ID = "0b6a3c1e-4d1f-4a6b-9d8e-2f7c5a9e1b00"


def stat_file(generation: str, rows: list[dict]) -> str:
    header = HEADERS[generation]
    columns = header.split()
    lines = [header]
    for row in rows:
        words = [f"{row.get(c, 0):08x}" for c in columns]
        text = ""
        for column, word in zip(columns, words):
            text += word + ("  " if column in ("entries", "icmp_error") else " ")
        lines.append(text.rstrip())
    return "\n".join(lines) + "\n"


def tree(generation: str = "5.15-chainlength", rows=None, boot_id: str | None = BOOT_ID,
         name: str = "nf_conntrack", module: str = "nf_conntrack") -> dict:
    """A proc/sys tree with a stat file (rows default: two idle CPUs)."""
    rows = rows if rows is not None else [{"entries": 3}, {"entries": 3}]
    proc = {f"net/stat/{name}": stat_file(generation, rows)}
    if boot_id:
        proc["sys/kernel/random/boot_id"] = boot_id + "\n"
    return {"proc": proc, "sys": {f"module/{module}/refcnt": 1}}


def netlink_message(cpu: int, values: dict[str, int], seq: int = 1,
                    extra: dict[int, int] | None = None) -> bytes:
    """One ctnetlink STATS_CPU answer as the kernel sends it."""
    number = {name: kind for kind, name in ctnetlink.ATTRIBUTES.items()}
    attrs = b""
    items = [(number[name], value) for name, value in values.items()]
    items += list((extra or {}).items())
    for kind, value in items:
        attrs += struct.pack("=HH", 8, kind) + struct.pack(">I", value)
    body = struct.pack("=BBH", 0, 0, 0)[:2] + struct.pack(">H", cpu) + attrs
    kind = (ctnetlink.NFNL_SUBSYS_CTNETLINK << 8) | ctnetlink.IPCTNL_MSG_CT_GET_STATS_CPU
    return struct.pack("=IHHII", 16 + len(body), kind, 2, seq, 0) + body


def netlink_done(seq: int = 1) -> bytes:
    return struct.pack("=IHHII", 20, ctnetlink.NLMSG_DONE, 2, seq, 0) + struct.pack("=i", 0)


def netlink_error(code: int, seq: int = 1) -> bytes:
    return struct.pack("=IHHII", 36, ctnetlink.NLMSG_ERROR, 0, seq, 0) + struct.pack(
        "=i", -code) + b"\0" * 16
