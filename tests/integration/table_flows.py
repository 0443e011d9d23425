"""Run inside a test namespace: a skewed load for check_conntrack_table.

usage: table_flows.py N HOT_PERCENT [TCP [UDP6]]   (prints what it made)

Of N new UDP flows, HOT_PERCENT go to 127.0.0.2 port 5353 (one destination,
one port; hot flow i from 127.0.<100 + i // 20000>.1 port 2000 + i % 20000);
the rest are spread like flows.py: flow j to 127.0.<1 + j // 60000>.1 port
1024 + j % 60000. TCP connections to a
listener on 127.0.0.3:8080 are opened and closed (TIME_WAIT, ASSURED); UDP6
flows go to [::1]:53. Only loopback addresses of the namespace are used.
"""

import socket
import sys


def main() -> None:
    count, hot_percent = int(sys.argv[1]), int(sys.argv[2])
    tcp = int(sys.argv[3]) if len(sys.argv) > 3 else 0
    udp6 = int(sys.argv[4]) if len(sys.argv) > 4 else 0
    with open("/proc/sys/net/netfilter/nf_conntrack_udp_timeout", "w") as handle:
        handle.write("600\n")
    hot = count * hot_percent // 100
    sent = refused = 0
    for i in range(hot):
        # Each hot flow from its own source port (bound, so never reused).
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.bind((f"127.0.{100 + i // 20000}.1", 2000 + i % 20000))
        try:
            sock.sendto(b"x", ("127.0.0.2", 5353))
            sent += 1
        except OSError:  # the kernel dropped it: table full
            refused += 1
        sock.close()
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    for j in range(count - hot):
        try:
            sock.sendto(b"x", (f"127.0.{1 + j // 60000}.1", 1024 + j % 60000))
            sent += 1
        except OSError:
            refused += 1
    sock.close()
    listener = socket.socket()
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.3", 8080))
    listener.listen(128)
    for _ in range(tcp):
        client = socket.create_connection(("127.0.0.3", 8080))
        server, _ = listener.accept()
        client.sendall(b"x")
        server.recv(1)
        client.close()
        server.close()
    listener.close()
    for _ in range(udp6):
        with socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as six:
            six.sendto(b"x", ("::1", 53))  # a new source port each
    print(f"sent {sent} refused {refused} hot {hot} tcp {tcp} udp6 {udp6}")


if __name__ == "__main__":
    main()
