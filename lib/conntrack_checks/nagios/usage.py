"""Reading the entry count of one or many namespaces against the global max.

Shared by check_conntrack (usage) and check_conntrack_hash (load factor).
"""

from __future__ import annotations

import nagiosplugin

from ..errors import ModuleMissing
from ..kernel import netns, sysctl


class NamespaceCount:
    __slots__ = ("count", "ns", "source")

    def __init__(self, ns: netns.Namespace, count: int, source: str):
        self.ns = ns
        self.count = count
        self.source = source


class TableResource(nagiosplugin.Resource):
    """Base of the resources that read counts per namespace and the max.

    ``probe()`` fills ``self.max``, ``self.counts`` and ``self.details``;
    subclasses turn them into metrics in ``metrics()``.
    """

    def __init__(self, roots: sysctl.Roots, namespaces, all_netns: bool = False,
                 want_buckets: bool = False):
        """``namespaces``: a list of netns.Namespace, or a function that gives
        (namespaces, all_netns) when called; the checks pass one
        (options.namespaces) so that the lookup runs under the plugin's
        timeout and its ProbeError is the plugin's UNKNOWN line.
        """
        self.roots = roots
        self.namespaces = namespaces
        self.all_netns = all_netns
        self.want_buckets = want_buckets
        self.max = None
        self.buckets = None
        self.sources: dict[str, str] = {}
        self.counts: list[NamespaceCount] = []
        self.unreadable: list[tuple[netns.Namespace, str]] = []
        self.missing = None
        self.details: list[str] = []
        self.row_of: dict[str, NamespaceCount] = {}

    def read(self) -> None:
        namespaces = self.namespaces
        if callable(namespaces):
            namespaces, self.all_netns = namespaces()
        self.max, self.sources["max"] = sysctl.read_max(self.roots)
        if self.want_buckets:
            self.buckets, self.sources["buckets"] = sysctl.read_buckets(self.roots)
        done, self.unreadable = netns.read_each(
            namespaces, lambda ns: sysctl.read_count(self.roots), self.all_netns)
        self.counts = [NamespaceCount(ns, count, source) for ns, (count, source) in done]
        self._explain_sources()

    def _explain_sources(self) -> None:
        for what in ("max", "buckets"):
            if what in self.sources:
                self.details.append(f"{what} from {self.sources[what]}")
        if not self.all_netns:
            where = self.counts[0].ns
            inside = "" if where.path is None else f" inside {where.describe()}"
            self.details.append(f"count from {self.counts[0].source}{inside}")
        else:
            self.details.append(
                f"count of each namespace from {self.counts[0].source}, read inside it"
            )
        for ns, why in self.unreadable:
            self.details.append(f"netns {ns.name} not read: {why}")

    def probe(self):
        try:
            self.read()
        except ModuleMissing as exc:
            self.missing = str(exc)
            return [nagiosplugin.Metric("nf_conntrack", str(exc), context="missing")]
        return list(self.metrics())

    def metrics(self):
        raise NotImplementedError

    def label(self, name: str, row: NamespaceCount) -> str:
        """Metric name of a per-namespace value: ``count`` or ``count_<ns>``."""
        label = f"{name}_{row.ns.label}" if self.all_netns else name
        self.row_of[label] = row
        return label

    def status_text(self, results) -> str:
        if self.missing:
            return self.missing
        return self.text(results)

    def text(self, results) -> str:
        raise NotImplementedError


def worst_rows(resource: TableResource, results, key, limit: int = 3):
    """The ``limit`` rows worst by state, then highest by ``key``.

    Returns (rows, {label: (state, hint)}) for the rows with a result.
    """
    verdict: dict[str, tuple] = {}
    for result in results:
        row = resource.row_of.get(result.metric.name) if result.metric else None
        if row is None:
            continue
        label = row.ns.label
        if label not in verdict or result.state > verdict[label][0]:
            verdict[label] = (result.state, result.hint)
    rows = sorted(
        resource.counts,
        key=lambda r: (int(verdict.get(r.ns.label, (0,))[0]), key(r)),
        reverse=True,
    )
    return rows[:limit], verdict
