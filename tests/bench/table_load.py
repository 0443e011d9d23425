"""Run inside a bench namespace: part of a skewed table for bench_table.py.

usage: table_load.py TOTAL FIRST COUNT   (prints "sent S refused R")

Sends flows FIRST .. FIRST+COUNT-1 of a TOTAL-flow table (several senders
share one table, each its own range): 30% of the flows go to 127.0.9.9, 10%
to 127.0.9.8, the other 60% are spread over 12,000 destinations in
127.3.0.0/16. Each flow is a new UDP 5-tuple (source address and destination
port vary), so each is a conntrack entry of its own. Loopback only.
"""

import socket
import sys

HOT, SECOND, SPREAD = 0.30, 0.10, 12000
PORTS = 60000


def main() -> None:
    total, first, count = (int(a) for a in sys.argv[1:4])
    with open("/proc/sys/net/netfilter/nf_conntrack_udp_timeout", "w") as handle:
        handle.write("600\n")
    hot, second = int(total * HOT), int(total * SECOND)
    sockets: dict[str, socket.socket] = {}

    def sender(src: str) -> socket.socket:
        sock = sockets.get(src)
        if sock is None:
            sock = sockets[src] = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            sock.bind((src, 0))
        return sock

    sent = refused = 0
    for i in range(first, first + count):
        if i < hot:
            src, dst, port = f"127.1.{i // PORTS}.1", "127.0.9.9", 1024 + i % PORTS
        elif i < hot + second:
            j = i - hot
            src, dst, port = f"127.2.{j // PORTS}.1", "127.0.9.8", 1024 + j % PORTS
        else:
            j = i - hot - second
            d = j % SPREAD
            src = f"127.4.{j // SPREAD // PORTS}.1"
            dst, port = f"127.3.{d // 250}.{d % 250 + 1}", 1024 + (j // SPREAD) % PORTS
        try:
            sender(src).sendto(b"x", (dst, port))
            sent += 1
        except OSError:  # the kernel dropped it: table full
            refused += 1
    for sock in sockets.values():
        sock.close()
    print(f"sent {sent} refused {refused}")


if __name__ == "__main__":
    main()
