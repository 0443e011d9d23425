"""kmsg: /dev/kmsg records read by sequence number (scripted records: what this kernel cannot
show on demand)."""

from __future__ import annotations

from conntrack_checks.logs import kmsg
from log_fixtures import scripted_kmsg


def test_kmsg_sequence_gaps_epipe_and_continuations(monkeypatch):
    scripted_kmsg(monkeypatch, [
        b"4,10,100,-;old\n",
        b"4,11,200,-,caller=T12;nf_conntrack: nf_conntrack: table full in netns 5, "
        b"dropping packet\n SUBSYSTEM=net\n",
        BrokenPipeError(),
        b"4,15,300,c;net_ratelimit: 3 callbacks suppressed\n",
    ])
    got = []
    seen = kmsg.read("/dev/kmsg", 10, lambda seq, usec, text: got.append((seq, usec, text)))
    assert got == [(11, 200, b"nf_conntrack: nf_conntrack: table full in netns 5, "
                                b"dropping packet"),
                   (15, 300, b"net_ratelimit: 3 callbacks suppressed")]
    assert (seen.cursor, seen.lost, seen.records) == (15, 3, 2)
    assert seen.bytes == len(b"4,11,200,-,caller=T12;nf_conntrack: nf_conntrack: table full in "
                             b"netns 5, dropping packet\n SUBSYSTEM=net\n"
                             b"4,15,300,c;net_ratelimit: 3 callbacks suppressed\n")


def test_kmsg_new_boot_counts_overwritten_records(monkeypatch):
    scripted_kmsg(monkeypatch, [b"6,40,1,-;first kept\n"])
    seen = kmsg.read("/dev/kmsg", -1, lambda *a: None)
    assert (seen.cursor, seen.lost) == (40, 40)
