"""Run inside a test namespace: open N new UDP flows to loopback addresses.

usage: flows.py N [START]   (prints "sent S refused R")

Flow i goes to 127.0.<1 + i // 60000>.1, port 1024 + i % 60000: a new
conntrack entry each. Only loopback addresses of the namespace are used.
"""

import socket
import sys


def main() -> None:
    count = int(sys.argv[1])
    start = int(sys.argv[2]) if len(sys.argv) > 2 else 0
    # Per-namespace: keep the entries while the test looks at them.
    with open("/proc/sys/net/netfilter/nf_conntrack_udp_timeout", "w") as handle:
        handle.write("600\n")
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sent = refused = 0
    for i in range(start, start + count):
        try:
            sock.sendto(b"x", (f"127.0.{1 + i // 60000}.1", 1024 + i % 60000))
            sent += 1
        except OSError:  # the kernel dropped it: table full
            refused += 1
    print(f"sent {sent} refused {refused}")


if __name__ == "__main__":
    main()
