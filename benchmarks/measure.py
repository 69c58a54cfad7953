"""What every benchmark measures the same way: percentiles of samples, a process's CPU and memory,
the API server's request counters and the operator's histograms."""

from __future__ import annotations

import os
import re
from collections import Counter
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families


def pct(values: list[float], q: float) -> float:
    """The q-th percentile (nearest rank) of values; NaN when there are none."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))]


class ProcStats:
    """CPU seconds and memory of a process, read from /proc (Linux)."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.tick = os.sysconf("SC_CLK_TCK")

    def _status(self, field: str) -> float:
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
        return float("nan")

    def cpu_seconds(self) -> float:
        fields = Path(f"/proc/{self.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / self.tick

    def rss_mb(self) -> float:
        return self._status("VmRSS")

    def hwm_mb(self) -> float:
        """The kernel's high-water mark of RSS: the true peak, whatever sampling missed."""
        return self._status("VmHWM")


# ---------------------------------------------------------------- API server and operator metrics

_REQUEST_TOTAL = re.compile(r"^apiserver_request_total\{(?P<labels>[^}]*)\} (?P<value>\S+)$")
_LABEL = re.compile(r'(\w+)="([^"]*)"')
WRITE_VERBS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
RequestKey = tuple[str, str, str, str, str]  # (verb, group, resource, subresource, code)


def apiserver_requests(text: str) -> Counter[RequestKey]:
    """kube-apiserver's apiserver_request_total from its /metrics text, keyed with the code."""
    out: Counter[RequestKey] = Counter()
    for line in text.splitlines():
        m = _REQUEST_TOTAL.match(line)
        if not m:
            continue
        labels = dict(_LABEL.findall(m["labels"]))
        key = (
            labels.get("verb", ""),
            labels.get("group", ""),
            labels.get("resource", ""),
            labels.get("subresource", ""),
            labels.get("code", ""),
        )
        out[key] += int(float(m["value"]))
    return out


# Written all the time by the control plane and kwok whatever the controller under test does
# (leader-election leases, node heartbeats): left out of "writes per signal".
BACKGROUND_WRITES = frozenset({"leases", "nodes"})


def writes(delta: Counter[RequestKey]) -> dict[str, int]:
    """Write requests (POST/PUT/PATCH/DELETE) in a delta, by "VERB resource[/subresource]",
    without the background ones."""
    out: Counter[str] = Counter()
    for (verb, _group, resource, sub, _code), n in delta.items():
        if n > 0 and verb in WRITE_VERBS and resource not in BACKGROUND_WRITES:
            out[f"{verb} {resource}{'/' + sub if sub else ''}"] += n
    return dict(sorted(out.items()))


def resizes_accepted(delta: Counter[RequestKey]) -> int:
    """pods/resize PATCHes the API server answered with 200."""
    return sum(
        n
        for (verb, _g, resource, sub, code), n in delta.items()
        if verb == "PATCH" and resource == "pods" and sub == "resize" and code == "200"
    )


def histogram_buckets(
    text: str, name: str, labels: dict[str, str] | None = None
) -> dict[float, float] | None:
    """Cumulative bucket counts of a Prometheus histogram (summed over other labels); None when absent."""
    found = False
    out: dict[float, float] = {}
    for family in text_string_to_metric_families(text):
        if family.name != name:
            continue
        found = True
        for sample in family.samples:
            if not sample.name.endswith("_bucket"):
                continue
            if labels and any(sample.labels.get(k) != v for k, v in labels.items()):
                continue
            le = float(sample.labels["le"])
            out[le] = out.get(le, 0.0) + sample.value
    return out if found else None


def histogram_quantile(
    before: str, after: str, name: str, q: float, labels: dict[str, str] | None = None
) -> float | None:
    """Upper bucket bound (seconds) holding the q-quantile of the observations made between two
    scrapes; None when the histogram is absent or saw nothing in between."""
    b1 = histogram_buckets(after, name, labels)
    if b1 is None:
        return None
    b0 = histogram_buckets(before, name, labels) or {}
    delta = sorted((le, b1[le] - b0.get(le, 0.0)) for le in b1)
    total = delta[-1][1] if delta else 0.0
    if total <= 0:
        return None
    return next(le for le, cum in delta if cum >= q * total)
