"""Errors a plugin reports as UNKNOWN with one line that says what to do."""

from __future__ import annotations

import nagiosplugin


class ProbeError(nagiosplugin.CheckError):
    """Something could not be read; the message names the file and the fix."""


class ModuleMissing(ProbeError):
    """The conntrack module is not loaded: no table exists to check."""
