"""spec.peakFrom (a VerticalPodAutoscaler's recommendation as peak) and VPA conflicts.

The pure rules (bounds, significance, settle window) table-driven; then the escalation loop with
a fake API and a fake clock: peaks follow the recommendation, a VPA that acts itself is a
Conflict and its pods are left alone, a missing CRD is a condition, not an error.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from heady_operator.kube import objects as k
from heady_operator.kube.objects import from_dict
from heady_operator.planning.levels import Amount, ContainerResources
from heady_operator.planning.vpa import (
    TEMPLATE,
    ContainerRecommendation,
    FollowedPeak,
    Vpa,
    acts_itself,
    follow,
    recommended_peak,
    significant,
)
from heady_operator.state.cluster import ClusterState
from tests import objects
from tests.unit.test_escalation_loop import NS, Clock, drain, world

T0 = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)
MI = 2**20
APP = ContainerResources("app", Amount(500, 512 * MI), Amount(2000, 2048 * MI))
SIDE = ContainerResources("side", Amount(100, 64 * MI))


@pytest.mark.parametrize(
    ("mode", "acts"),
    [("Off", False), ("Initial", False), ("Recreate", True), ("Auto", True), ("InPlaceOrRecreate", True)],
)
def test_only_off_and_initial_leave_the_pods_to_heady(mode: str, acts: bool) -> None:
    assert acts_itself(Vpa(NS, "v", "Deployment", "web", mode)) is acts


def test_recommended_peak_is_the_target_bounded_by_upper_bound_and_caps() -> None:
    recs = {
        "app": ContainerRecommendation(Amount(1500, 300 * MI), Amount(1200, 1024 * MI)),
        "side": ContainerRecommendation(Amount(50, None), Amount()),
    }
    caps = {"app": Amount(None, 256 * MI)}
    peak = recommended_peak((APP, SIDE), caps, recs)
    assert peak["app"] == Amount(1200, 256 * MI), "cpu at the upperBound, memory at the HeadyService's cap"
    assert peak["side"] == Amount(50, 64 * MI), "memory not recommended: the template's request"


def test_without_recommendation_the_template_is_the_peak_under_the_cap() -> None:
    assert recommended_peak((APP,), {"app": Amount(400, None)}, {}) == {"app": Amount(400, 512 * MI)}


@pytest.mark.parametrize(
    ("new", "expected"),
    [
        (Amount(1000, 100 * MI), False),
        (Amount(1090, 100 * MI), False),
        (Amount(1100, 100 * MI), True),
        (Amount(1000, 89 * MI), True),
        (Amount(1000, None), True),
    ],
)
def test_significant_means_at_least_the_min_change(new: Amount, expected: bool) -> None:
    assert significant({"app": Amount(1000, 100 * MI)}, {"app": new}, 0.1) is expected


def test_follow_takes_a_new_source_at_once_and_changes_once_per_settle_window() -> None:
    src = "VerticalPodAutoscaler/v"
    first, due = follow(None, src, {"app": Amount(1000, None)}, T0, 60, 0.1)
    assert first == FollowedPeak(src, {"app": Amount(1000, None)}, T0) and due is None
    same, due = follow(first, src, {"app": Amount(1050, None)}, T0 + timedelta(seconds=120), 60, 0.1)
    assert same is first and due is None, "a small change moves no pod"
    held, due = follow(first, src, {"app": Amount(2000, None)}, T0 + timedelta(seconds=10), 60, 0.1)
    assert held is first and due == T0 + timedelta(seconds=60), "waits for the settle window"
    taken, due = follow(first, src, {"app": Amount(2000, None)}, T0 + timedelta(seconds=60), 60, 0.1)
    assert taken.peak == {"app": Amount(2000, None)} and due is None
    back, due = follow(taken, TEMPLATE, {"app": Amount(500, None)}, T0 + timedelta(seconds=61), 60, 0.1)
    assert back.source == TEMPLATE and due is None, "the VPA gone: the template at once"


# ---------------------------------------------------------------- the loop


def vpa(
    name: str,
    target: str,
    mode: str | None = "Off",
    recs: list[dict[str, Any]] | None = None,
) -> k.VerticalPodAutoscaler:
    spec: dict[str, Any] = {"targetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": target}}
    if mode is not None:
        spec["updatePolicy"] = {"updateMode": mode}
    status: dict[str, Any] = {}
    if recs is not None:
        status["recommendation"] = {"containerRecommendations": recs}
    return from_dict(
        k.VerticalPodAutoscaler, {"metadata": {"namespace": NS, "name": name}, "spec": spec, "status": status}
    )


def rec(cpu: str, memory: str, upper_cpu: str = "4", upper_memory: str = "8Gi") -> list[dict[str, Any]]:
    return [
        {
            "containerName": "app",
            "target": {"cpu": cpu, "memory": memory},
            "upperBound": {"cpu": upper_cpu, "memory": upper_memory},
        }
    ]


def peak_from(state: ClusterState, service: str, vpa_name: str, caps: dict[str, str] | None = None) -> None:
    spec: dict[str, Any] = {
        "workload": {"name": service},
        "cooldownSeconds": 0,
        "maxPeakSeconds": 600,
        "peakFrom": {"verticalPodAutoscaler": vpa_name},
    }
    if caps:
        spec["containers"] = [{"name": "app", "peak": caps}]
    state.on_service("MODIFIED", objects.headyservice(NS, service, spec, generation=2))


def last_status(api: Any, name: str) -> dict[str, Any]:
    return [st for p, n, st in api.statuses if p == "headyservices" and n == name][-1]


def cond(status: dict[str, Any], type_: str) -> dict[str, Any]:
    return next(c for c in status["conditions"] if c["type"] == type_)


async def test_peaks_follow_the_recommendation_within_the_settle_window_and_threshold() -> None:
    clock = Clock()
    state, esc, api = world(clock, {"web": 2}, vpa_settle_seconds=60, vpa_min_change=0.1)
    state.set_vpa_available(None)
    state.on_vpa("ADDED", vpa("web-vpa", "web", "Off", rec("600m", "700Mi")))
    peak_from(state, "web", "web-vpa", caps={"cpu": "800m"})
    assert state.planner.services[(NS, "web")].peak["app"] == Amount(600, 700 * MI)
    esc.plan_once()
    await drain(esc, lambda: len(api.resizes) == 2, "both pods to the new baseline")
    assert api.resizes[0][1]["spec"]["containers"][0]["resources"]["requests"] == {
        "cpu": "540m",
        "memory": "630Mi",
    }
    await esc.reporter.flush()
    status = last_status(api, "web")
    assert status["peak"]["source"] == "VerticalPodAutoscaler/web-vpa"
    assert status["peak"]["containers"] == [{"name": "app", "cpu": "600m", "memory": "700Mi"}]
    assert cond(status, "PeakSource")["status"] == "True"

    # A 5% change moves nothing; a big one waits out the settle window, then moves the pods once.
    clock.advance(1)
    state.on_vpa("MODIFIED", vpa("web-vpa", "web", "Off", rec("630m", "700Mi")))
    esc.plan_once()
    assert state.planner.services[(NS, "web")].peak["app"] == Amount(600, 700 * MI)
    assert not esc.queue.busy() and len(api.resizes) == 2, "a 5% change moves no pod"
    state.on_vpa("MODIFIED", vpa("web-vpa", "web", "Off", rec("2", "700Mi")))
    esc.plan_once()
    assert state.planner.services[(NS, "web")].peak["app"] == Amount(600, 700 * MI)
    assert state.next_peak_review() == clock.now - timedelta(seconds=1) + timedelta(seconds=60)
    clock.advance(59)
    esc.plan_once()
    assert state.planner.services[(NS, "web")].peak["app"] == Amount(800, 700 * MI), "capped at 800m"
    await drain(esc, lambda: len(api.resizes) == 4, "both pods to the followed baseline, once")
    assert api.resizes[-1][1]["spec"]["containers"][0]["resources"]["requests"]["cpu"] == "720m"


async def test_a_vpa_that_resizes_itself_is_a_conflict_and_its_pods_are_left_alone() -> None:
    clock = Clock()
    state, esc, api = world(clock, {"web": 2})
    state.set_vpa_available(None)
    esc.plan_once()
    await drain(esc, lambda: not esc.queue.busy(), "settled")
    before = len(api.resizes)
    state.on_vpa("ADDED", vpa("auto", "web", None, rec("3", "3Gi")))
    state.on_signal("ADDED", objects.signal(NS, "look", {"services": ["web"], "ttlSeconds": 30}, clock.now))
    esc.plan_once()
    await drain(esc, lambda: not esc.queue.busy(), "nothing queued")
    assert len(api.resizes) == before, "heady does not touch pods a VPA resizes"
    await esc.reporter.flush()
    status = last_status(api, "web")
    conflict = cond(status, "Conflict")
    assert conflict["status"] == "True" and conflict["reason"] == "VerticalPodAutoscaler"
    assert "updateMode Recreate" in conflict["message"] and "updateMode to Off" in conflict["message"]
    assert "peakFrom.verticalPodAutoscaler: auto" in conflict["message"]
    assert cond(status, "Ready")["reason"] == "VPAConflict"
    assert any(e[1] == "VPAConflict" for e in api.events), "and a Warning Event"
    # Switched to Off: heady takes the pods back.
    state.on_vpa("MODIFIED", vpa("auto", "web", "Off", rec("3", "3Gi")))
    esc.plan_once()
    await drain(esc, lambda: len(api.resizes) == before + 2, "both escalated")
    await esc.reporter.flush()
    assert cond(last_status(api, "web"), "Conflict")["status"] == "False"


async def test_without_the_vpa_crd_peak_from_falls_back_to_the_template_and_says_why() -> None:
    clock = Clock()
    state, esc, api = world(clock, {"web": 1})
    state.set_vpa_available("this cluster does not serve it")
    peak_from(state, "web", "web-vpa")
    esc.plan_once()
    await esc.reporter.flush()
    status = last_status(api, "web")
    source = cond(status, "PeakSource")
    assert source["status"] == "False" and source["reason"] == "VPACRDMissing"
    assert "verticalpodautoscalers.autoscaling.k8s.io" in source["message"]
    assert status["peak"]["source"] == "PodTemplate"
    assert cond(status, "Ready")["status"] == "True", "the service still works with the template's peaks"
    # The CRD appears and the VPA has a recommendation: followed at once (a new source).
    state.set_vpa_available(None)
    state.on_vpa("ADDED", vpa("web-vpa", "web", "Initial", rec("500m", "512Mi")))
    assert state.planner.services[(NS, "web")].peak["app"] == Amount(500, 512 * MI)
    await esc.reporter.flush()
    assert cond(last_status(api, "web"), "PeakSource")["reason"] == "Recommendation"


@pytest.mark.parametrize(
    ("vpa_obj", "reason"),
    [
        (None, "VPANotFound"),
        (vpa("web-vpa", "other", "Off", rec("1", "1Gi")), "VPATargetMismatch"),
        (vpa("web-vpa", "web", "Off", None), "NoRecommendation"),
    ],
)
async def test_peak_source_says_why_the_template_is_used(
    vpa_obj: k.VerticalPodAutoscaler | None, reason: str
) -> None:
    clock = Clock()
    state, esc, api = world(clock, {"web": 1})
    state.set_vpa_available(None)
    if vpa_obj is not None:
        state.on_vpa("ADDED", vpa_obj)
    peak_from(state, "web", "web-vpa")
    esc.plan_once()
    await esc.reporter.flush()
    assert cond(last_status(api, "web"), "PeakSource")["reason"] == reason


def test_follow_keeps_an_unchanged_peak_and_takes_a_template_change_at_once() -> None:
    first, _ = follow(None, TEMPLATE, {"app": Amount(100, None)}, T0, 60, 0.1)
    same, due = follow(first, TEMPLATE, {"app": Amount(100, None)}, T0 + timedelta(seconds=5), 60, 0.1)
    assert same is first and due is None, "no new updatedAt, so no status rewrite"
    rolled, due = follow(first, TEMPLATE, {"app": Amount(200, None)}, T0 + timedelta(seconds=5), 60, 0.1)
    assert rolled.peak == {"app": Amount(200, None)} and due is None


async def test_a_restart_resumes_the_followed_peak_from_status() -> None:
    clock = Clock()
    state, esc, api = world(clock, {"web": 1}, vpa_settle_seconds=60)
    state.set_vpa_available(None)
    state.on_vpa("ADDED", vpa("web-vpa", "web", "Off", rec("600m", "700Mi")))
    peak_from(state, "web", "web-vpa")
    esc.plan_once()
    await esc.reporter.flush()
    written = last_status(api, "web")
    # A new operator: the recommendation drifted 5% meanwhile; the status it wrote is read back.
    clock.advance(10)
    state2, _, _ = world(clock, {}, vpa_settle_seconds=60)
    state2.set_vpa_available(None)
    state2.on_vpa("ADDED", vpa("web-vpa", "web", "Off", rec("630m", "700Mi")))
    body = objects.headyservice(
        NS,
        "web",
        {"workload": {"name": "web"}, "peakFrom": {"verticalPodAutoscaler": "web-vpa"}},
    )
    body["status"] = {"peak": written["peak"]}
    container = {"name": "app", "resources": objects.resources({"cpu": "100m"}, {"cpu": "2"})}
    state2.on_workload("ADDED", "Deployment", objects.deployment(NS, "web", [container]))
    state2.on_service("ADDED", body)
    assert state2.planner.services[(NS, "web")].peak["app"] == Amount(600, 700 * MI), "kept: not significant"
    assert state2.followed[(NS, "web")].since == T0


def test_the_conflict_advice_fits_a_service_that_already_follows_the_vpa() -> None:
    from heady_operator.planning.vpa import conflict_message

    v = Vpa(NS, "v", "Deployment", "web", "InPlace")
    assert "add spec.peakFrom.verticalPodAutoscaler: v" in conflict_message(v, "Deployment", "web", "web")
    follows = conflict_message(v, "Deployment", "web", "web", follows=True)
    assert "already takes its peaks from it" in follows and "add spec.peakFrom" not in follows
