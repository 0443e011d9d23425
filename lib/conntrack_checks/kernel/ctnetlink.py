"""ctnetlink's per-CPU conntrack statistics, read with a plain netlink socket.

What `conntrack -S` shows (IPCTNL_MSG_CT_GET_STATS_CPU), for kernels built
without CONFIG_NF_CONNTRACK_PROCFS. The statistics are those of the network
namespace the socket is created in. nfnetlink answers only callers with
CAP_NET_ADMIN in that namespace. Imported only when this path is taken.
"""

from __future__ import annotations

import errno
import os
import socket
import struct

from ..errors import ProbeError

NETLINK_NETFILTER = 12
NFNL_SUBSYS_CTNETLINK = 1
IPCTNL_MSG_CT_GET_STATS_CPU = 4
NLM_F_REQUEST = 0x1
NLM_F_DUMP = 0x300
NLMSG_ERROR = 2
NLMSG_DONE = 3

# enum ctattr_stats_cpu (include/uapi/linux/netfilter/nfnetlink_conntrack.h);
# the names are those `conntrack -S` prints.
ATTRIBUTES = {
    1: "searched", 2: "found", 3: "new", 4: "invalid", 5: "ignore", 6: "delete",
    7: "delete_list", 8: "insert", 9: "insert_failed", 10: "drop", 11: "early_drop",
    12: "error", 13: "search_restart", 14: "clash_resolve", 15: "chaintoolong",
}

_HEADER = struct.Struct("=IHHII")  # struct nlmsghdr
_GENMSG = struct.Struct("=BBH")  # struct nfgenmsg (res_id is big-endian: read apart)
_ATTR = struct.Struct("=HH")  # struct nlattr
_NLA_TYPE_MASK = 0x3FFF

SUDOERS = "run as root or through the sudoers rule in contrib/sudoers"


def request(seq: int) -> bytes:
    kind = (NFNL_SUBSYS_CTNETLINK << 8) | IPCTNL_MSG_CT_GET_STATS_CPU
    body = _GENMSG.pack(socket.AF_UNSPEC, 0, 0)
    return _HEADER.pack(_HEADER.size + len(body), kind, NLM_F_REQUEST | NLM_F_DUMP, seq, 0) + body


def parse_attributes(payload: bytes) -> dict[str, int]:
    """The u32 (big-endian) attributes of one CPU's message, by name."""
    values: dict[str, int] = {}
    offset = 0
    while offset + _ATTR.size <= len(payload):
        length, kind = _ATTR.unpack_from(payload, offset)
        if length < _ATTR.size:
            break
        kind &= _NLA_TYPE_MASK
        if length == _ATTR.size + 4:
            name = ATTRIBUTES.get(kind, f"attr{kind}")
            values[name] = struct.unpack_from(">I", payload, offset + _ATTR.size)[0]
        offset += (length + 3) & ~3
    return values


def parse_messages(data: bytes, seq: int) -> tuple[list[tuple[int, dict[str, int]]], bool]:
    """(cpu, counters) rows of one datagram, and whether the dump is done.

    Raises OSError for an NLMSG_ERROR answer (errno from the kernel).
    """
    rows = []
    offset = 0
    while offset + _HEADER.size <= len(data):
        length, kind, _flags, msg_seq, _pid = _HEADER.unpack_from(data, offset)
        if length < _HEADER.size or offset + length > len(data):
            raise ProbeError("ctnetlink sent a truncated message")
        body = data[offset + _HEADER.size:offset + length]
        offset += (length + 3) & ~3
        if msg_seq != seq:
            continue
        if kind == NLMSG_DONE:
            return rows, True
        if kind == NLMSG_ERROR:
            code = struct.unpack_from("=i", body)[0]
            if code == 0:
                continue  # an acknowledgement
            raise OSError(-code, os.strerror(-code))
        if len(body) < _GENMSG.size:
            continue
        cpu = struct.unpack_from(">H", body, 2)[0]
        rows.append((cpu, parse_attributes(body[_GENMSG.size:])))
    return rows, False


def explain(exc: OSError, where: str) -> ProbeError:
    """Why the netlink source failed, and what to do."""
    code = exc.errno
    if code in (errno.EPERM, errno.EACCES):
        return ProbeError(f"ctnetlink refused the statistics {where}: CAP_NET_ADMIN is "
                          f"missing; {SUDOERS}")
    if code in (errno.EPROTONOSUPPORT, errno.EAFNOSUPPORT):
        return ProbeError("no netfilter netlink in this kernel (CONFIG_NETFILTER_NETLINK, "
                          "module nfnetlink): no conntrack statistics can be read")
    if code in (errno.EINVAL, errno.EOPNOTSUPP, errno.ENOENT):
        return ProbeError("ctnetlink is not available: load it with modprobe "
                          "nf_conntrack_netlink (kernel option CONFIG_NF_CT_NETLINK)")
    if code in (errno.EAGAIN, errno.ETIMEDOUT):
        return ProbeError(f"ctnetlink did not answer {where} in time")
    return ProbeError(f"cannot read ctnetlink statistics {where}: {exc.strerror}")


def read_stats_cpu(where: str = "in this namespace",
                   timeout: float = 5.0) -> list[tuple[int, dict[str, int]]]:
    """Per-CPU counters of the current network namespace, as `conntrack -S`."""
    try:
        sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW | socket.SOCK_CLOEXEC,
                             NETLINK_NETFILTER)
    except OSError as exc:
        raise explain(exc, where) from None
    seq = 1
    try:
        sock.settimeout(timeout)
        sock.bind((0, 0))
        sock.send(request(seq))
        rows: list[tuple[int, dict[str, int]]] = []
        done = False
        while not done:
            data = sock.recv(65536)
            if not data:
                break
            more, done = parse_messages(data, seq)
            rows.extend(more)
    except socket.timeout:
        raise ProbeError(f"ctnetlink did not answer {where} within {timeout:g}s") from None
    except OSError as exc:
        raise explain(exc, where) from None
    finally:
        sock.close()
    if not rows:
        raise ProbeError(f"ctnetlink sent no per-CPU statistics {where}")
    return rows
