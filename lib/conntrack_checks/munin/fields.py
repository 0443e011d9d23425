"""Munin field and graph names from namespace names.

Munin accepts ``[A-Za-z_][A-Za-z0-9_]*`` as a field name (and not ``root``);
the master rewrites anything else, so two names could meet. Namespace names
get a prefix, every other character becomes ``_``, and a name that meets
another one already taken gets ``_2``, ``_3``, ...
"""

from __future__ import annotations


def clean(text: str) -> str:
    """``text`` with each character Munin does not accept in a field name as ``_``."""
    chars = [c if c.isascii() and (c.isalnum() or c == "_") else "_" for c in text]
    return "".join(chars)


def namespace_fields(names: list[str], prefix: str = "ns_") -> dict[str, str]:
    """{namespace name: field name}, in the order given (the host first)."""
    taken: set[str] = set()
    fields = {}
    for name in names:
        base = prefix + clean(name)
        field, n = base, 1
        while field in taken:
            n += 1
            field = f"{base}_{n}"
        taken.add(field)
        fields[name] = field
    return fields


def label(text: str) -> str:
    """``text`` as a Munin label or title: anything but ``#`` and ``\\``."""
    return text.replace("#", "_").replace("\\", "_")
