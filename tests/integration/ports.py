"""TCP ports on loopback for the daemons the integration tests start by hand."""

from __future__ import annotations

import socket
import time


def free_port() -> int:
    """A port on 127.0.0.1 that nothing listens on now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_listening(port: int, seconds: float = 10.0) -> None:
    """Return once something accepts connections on 127.0.0.1:``port``, or after
    ``seconds`` (the test's next step then says what is wrong)."""
    for _ in range(int(seconds * 10)):
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
