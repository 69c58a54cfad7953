"""The benchmarks' shared measurements: API server request counters and histogram quantiles."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.append(str(Path(__file__).resolve().parents[2]))  # appended: stdlib `operator` must win

from benchmarks.measure import apiserver_requests, histogram_quantile, resizes_accepted, writes

APISERVER = """\
# TYPE apiserver_request_total counter
apiserver_request_total{code="200",component="apiserver",dry_run="",group="",resource="pods",scope="resource",subresource="resize",verb="PATCH",version="v1"} 12
apiserver_request_total{code="409",component="apiserver",dry_run="",group="",resource="pods",scope="resource",subresource="resize",verb="PATCH",version="v1"} 1
apiserver_request_total{code="201",component="apiserver",dry_run="",group="heady.io",resource="attentionsignals",scope="resource",subresource="",verb="POST",version="v1alpha1"} 3
apiserver_request_total{code="200",component="apiserver",dry_run="",group="coordination.k8s.io",resource="leases",scope="resource",subresource="",verb="PUT",version="v1"} 40
apiserver_request_total{code="200",component="apiserver",dry_run="",group="",resource="pods",scope="namespace",subresource="",verb="LIST",version="v1"} 7
"""


def test_writes_leave_out_reads_and_background_writes() -> None:
    before = apiserver_requests("")
    after = apiserver_requests(APISERVER)
    delta = after - before
    assert writes(delta) == {"PATCH pods/resize": 13, "POST attentionsignals": 3}
    assert resizes_accepted(delta) == 12


def _hist(counts: list[int]) -> str:
    bounds = ["0.001", "0.005", "0.01", "+Inf"]
    lines = ["# TYPE heady_plan_seconds histogram"]
    lines += [f'heady_plan_seconds_bucket{{le="{b}"}} {c}' for b, c in zip(bounds, counts, strict=True)]
    lines += [f"heady_plan_seconds_count {counts[-1]}", "heady_plan_seconds_sum 0.1"]
    return "\n".join(lines) + "\n"


def test_histogram_quantile_is_the_bucket_bound_of_what_happened_between_scrapes() -> None:
    before = _hist([100, 100, 100, 100])  # earlier observations must not count
    after = _hist([100, 190, 200, 200])  # 90 at <= 5 ms, 10 at <= 10 ms
    assert histogram_quantile(before, after, "heady_plan_seconds", 0.5) == 0.005
    assert histogram_quantile(before, after, "heady_plan_seconds", 0.99) == 0.01
    assert histogram_quantile(after, after, "heady_plan_seconds", 0.99) is None
    assert histogram_quantile(before, after, "heady_event_loop_lag_seconds", 0.99) is None
