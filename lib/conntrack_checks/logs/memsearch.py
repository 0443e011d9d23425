"""Long searches in a large read with the C library's ``memmem``.

``bytes.find`` walks a needle of up to 5 bytes over the text about 5 bytes at
a time and a longer one with the two-way algorithm; glibc's ``memmem`` jumps
by pairs of bytes up to the needle's length, so a needle of 10-20 bytes costs
it two fifths to half the time (0.10-0.18 against 0.23-0.35 s a GiB, searched
right after the read: docs/benchmarks.rst). Calling it costs about 0.4 us against 0.1 us for
``find``: it is for searches that cross kilobytes, not for lines a few bytes
apart. ``ctypes`` is imported only when a run reads much (it costs about
3 ms, as much as reading a megabyte); without it or without ``memmem``,
``finder`` says so and ``bytes.find`` does the work.
"""

from __future__ import annotations

_loaded = None  # (memmem, c_char, addressof) once looked up; False: not available


def _load():
    global _loaded
    try:
        import ctypes
        memmem = ctypes.CDLL(None).memmem
        memmem.restype = ctypes.c_void_p
        memmem.argtypes = (ctypes.c_void_p, ctypes.c_size_t, ctypes.c_char_p, ctypes.c_size_t)
        _loaded = (memmem, ctypes.c_char, ctypes.addressof)
    except (ImportError, OSError, AttributeError):  # no ctypes, no libc, no memmem
        _loaded = False
    return _loaded


def finder(buffer):
    """``find(needle, lo, hi)``: where ``needle`` first starts in ``buffer[lo:hi]``, -1
    if nowhere, as ``buffer.find`` with both bounds; None where memmem cannot search
    ``buffer`` (not a bytearray, or no memmem): use ``buffer.find``.

    ``buffer`` must not change size while the function is kept (it holds the
    buffer's memory); drop it before the buffer grows.
    """
    loaded = _loaded if _loaded is not None else _load()
    if not loaded or not isinstance(buffer, bytearray) or not buffer:
        return None
    memmem, char, addressof = loaded
    memory = (char * len(buffer)).from_buffer(buffer)
    base, length = addressof(memory), len(buffer)

    def find(needle: bytes, lo: int, hi: int, _memory=memory) -> int:
        lo = 0 if lo < 0 else lo
        hi = length if hi > length else hi
        if hi - lo < len(needle):
            return -1
        at = memmem(base + lo, hi - lo, needle, len(needle))
        return -1 if at is None else at - base

    return find
