"""Numbers and Nagios ranges in words, for status texts and fixes (standard library only).

Below every layer: the checks' Nagios plumbing and the tuning rules word a
threshold the same way.
"""

from __future__ import annotations


def fmt_number(value) -> str:
    """Perfdata number: plain decimal, at most 3 places, never 1e+20 or True."""
    if isinstance(value, bool):
        return str(int(value))
    if isinstance(value, int):
        return str(value)
    text = f"{value:.3f}".rstrip("0").rstrip(".")
    return "0" if text in ("-0", "") else text


def describe_violation(rng, unit: str = "") -> str:
    """Words for why a value alerts: 'above 80%', 'below 10', 'inside 5:6'.

    ``rng``: a Nagios range (start, end, invert), such as nagiosplugin.Range.
    """
    inf = float("inf")
    start = "~" if rng.start == -inf else fmt_number(rng.start)
    end = "" if rng.end == inf else fmt_number(rng.end)
    if rng.invert:
        return f"inside {start}:{end}{unit}"
    if rng.end == inf:
        return f"below {start}{unit}"
    if rng.start in (0, -inf):
        return f"above {end}{unit}"
    return f"outside {start}:{end}{unit}"
