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


def test_records_written_by_userspace_are_not_passed_on(monkeypatch):
    line = b"nf_conntrack: nf_conntrack: table full, dropping packet\n"
    scripted_kmsg(monkeypatch, [
        b"12,20,100,-;" + line,  # echo '<4>...' > /dev/kmsg: facility user, level 4
        b"14,21,110,-;" + line,  # a plain write: facility user, the default level
        b"164,22,120,-;" + line,  # <164>: facility local4
        b"4,23,130,-;" + line,  # the kernel's own (facility 0, level warning)
    ])
    got = []
    seen = kmsg.read("/dev/kmsg", 19, lambda seq, usec, text: got.append(seq))
    assert got == [23]
    assert (seen.cursor, seen.records, seen.lost) == (23, 4, 0)
