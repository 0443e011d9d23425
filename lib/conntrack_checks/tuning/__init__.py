"""Which conntrack settings will bite: the analysis behind check_conntrack_tuning.

facts -> rules -> fixes, with the words they share:

- findings: Finding, the catalogue of finding ids (FINDING_IDS), the
  Thresholds, the timeouts with their kernel defaults and limits;
- facts: everything read once (the running kernel, the kernel's default for
  this RAM, the boot files, the timeouts of each namespace);
- rules: the four families (persistence, boot files, sizing, timeouts), facts
  in and findings out, and Analysis, which runs them all;
- fixes: the command for now and the line that persists it.

Only the kernel layer, errors, defaults, words and the standard library are
imported (no argparse, no nagiosplugin): the check module turns options into
Thresholds and findings into Nagios results.
"""

from __future__ import annotations

from .facts import Facts
from .findings import Thresholds
from .rules import Analysis


def ignored(finding, patterns) -> bool:
    """Whether --ignore silences ``finding`` (shell patterns)."""
    if not patterns:
        return False
    import fnmatch  # only when --ignore is given

    return any(fnmatch.fnmatchcase(finding.id, p) for p in patterns)


def report_section(roots, limits: Thresholds, config_root: str = "/", namespaces=None,
                   ignore=(), all_netns: bool = False) -> dict:
    """The findings as plain data for conntrack-report (ProbeError when not available)."""
    facts = Facts(roots, config_root, namespaces, all_netns)
    analysis = Analysis(facts, limits)
    findings = [f for f in analysis.findings if not ignored(f, ignore)]
    worst = findings[0].severity if findings else "ok"
    data = dict(analysis.sizing.as_facts(facts), max=facts.max, buckets=facts.buckets,
                ram_bytes=facts.ram, pointer_bytes=facts.ptr, eras=facts.eras,
                full_load_factor=round(analysis.sizing.full_load, 3),
                boot_tool=facts.boot_sysctl.tool,
                timeouts={ns.name: values for ns, values in facts.timeouts})
    return {"status": worst, "findings": [f.as_dict() for f in findings], "facts": data,
            "details": analysis.details}
