"""What `kubectl heady top/explain/arenas/focus` show, from API bodies and a fixed clock."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from heady_operator.cli import views
from heady_operator.cli.views import ExplainInput, SavedMetric

NOW = datetime(2026, 11, 29, 20, 0, 0, tzinfo=UTC)
NS = "shop"


def ts(seconds: float) -> str:
    return (NOW + timedelta(seconds=seconds)).strftime("%Y-%m-%dT%H:%M:%SZ")


def cond(type_: str, status: str, reason: str = "", message: str = "") -> dict[str, str]:
    return {"type": type_, "status": status, "reason": reason, "message": message}


def service(name: str, priority: str = "medium", ns: str = NS, **status: Any) -> dict[str, Any]:
    return {
        "metadata": {"name": name, "namespace": ns, "creationTimestamp": ts(-600)},
        "spec": {
            "workload": {"kind": "Deployment", "name": name},
            "priority": priority,
            "cooldownSeconds": 30,
        },
        "status": status,
    }


def deployment(name: str, limits: dict[str, str] | None = None, ns: str = NS) -> dict[str, Any]:
    # The owner asks for 2 CPU / 2Gi: that is the default peak (planning/world.py).
    res = {"requests": {"cpu": "2", "memory": "2Gi"}, "limits": limits or {"cpu": "2", "memory": "2Gi"}}
    return {
        "metadata": {"name": name, "namespace": ns},
        "spec": {
            "selector": {"matchLabels": {"app": name}},
            "template": {"spec": {"containers": [{"name": "app", "resources": res}]}},
        },
    }


def pod(
    name: str,
    app: str,
    cpu: str,
    mem: str,
    node: str = "node-1",
    qos: str = "Burstable",
    limits: dict[str, str] | None = None,
    phase: str = "Running",
    ns: str = NS,
) -> dict[str, Any]:
    return {
        "metadata": {"name": name, "namespace": ns, "labels": {"app": app}},
        "spec": {
            "nodeName": node,
            "containers": [
                {
                    "name": "app",
                    "resources": {
                        "requests": {"cpu": cpu, "memory": mem},
                        "limits": limits or {"cpu": "2", "memory": "2Gi"},
                    },
                }
            ],
        },
        "status": {"phase": phase, "qosClass": qos},
    }


def ready(level: str, at_peak: int, total: int, message: str, **extra: Any) -> dict[str, Any]:
    return {
        "level": level,
        "podsAtPeak": at_peak,
        "podsTotal": total,
        "podsAtPeakSummary": f"{at_peak}/{total}",
        "conditions": [
            cond(
                "Ready",
                "True",
                extra.pop("reason", "AtBaseline"),
                f"{at_peak}/{total} pods at peak; {message}",
            ),
            cond("Progressing", "False", "Settled", f"{level}: {message}"),
            cond("Degraded", "False", "AsPlanned", "no resize failures"),
        ],
        **extra,
    }


# ---------------------------------------------------------------- capacity


def test_saved_capacity_is_current_requests_against_peak() -> None:
    svc = service("web")
    pods = [pod("web-1", "web", "1800m", "1843Mi"), pod("web-2", "web", "1800m", "1843Mi")]
    cap = views.capacity(svc, deployment("web"), pods)
    assert cap.now == views.Resources(3600, 2 * 1843 * 2**20)
    # At peak the Burstable pods stop 1m short of their CPU limit, so they stay Burstable.
    assert cap.peak == views.Resources(3998, 2 * 2**31)
    assert cap.cpu_saved == pytest.approx(1 - 3600 / 3998)
    assert cap.memory_saved == pytest.approx(1 - 1843 / 2048)


def test_explicit_peak_wins_and_burstable_limits_cap_it() -> None:
    svc = service("web")
    svc["spec"]["containers"] = [{"name": "app", "peak": {"cpu": "4", "memory": "1Gi"}}]
    cap = views.capacity(svc, deployment("web"), [pod("web-1", "web", "1", "512Mi")])
    # cpu: peak 4 capped by the pod's limit 2; memory: explicit 1Gi
    assert cap.peak == views.Resources(2000, 2**30)
    guaranteed = pod("web-1", "web", "1", "512Mi", qos="Guaranteed")
    assert views.capacity(svc, deployment("web"), [guaranteed]).peak == views.Resources(4000, 2**30)


def test_default_peak_is_the_templates_requests_else_its_limits() -> None:
    dep = deployment("web")
    dep["spec"]["template"]["spec"]["containers"][0]["resources"] = {
        "requests": {"cpu": "500m"},
        "limits": {"cpu": "2", "memory": "2Gi"},
    }
    assert views.container_peaks(service("web"), dep) == {"app": (500, 2**31)}
    svc = service("web")
    svc["spec"]["containers"] = [{"name": "app", "peak": {"memory": "1Gi"}}]
    assert views.container_peaks(svc, dep) == {"app": (500, 2**30)}


def test_finished_pods_and_pods_of_other_workloads_do_not_count() -> None:
    pods = [
        pod("web-1", "web", "1", "1Gi"),
        pod("web-old", "web", "1", "1Gi", phase="Succeeded"),
        pod("api-1", "api", "1", "1Gi"),
        pod("web-elsewhere", "web", "1", "1Gi", ns="other"),
    ]
    mine = views.pods_of(deployment("web"), pods)
    assert [p["metadata"]["name"] for p in mine] == ["web-1", "web-old"]
    assert views.capacity(service("web"), deployment("web"), mine).now == views.Resources(1000, 2**30)


def test_no_peak_means_no_ratio() -> None:
    assert views.Capacity().cpu_saved is None
    assert views.capacity(service("web"), None, []).memory_saved is None


@pytest.mark.parametrize(
    ("selector", "labels", "want"),
    [
        ({"matchLabels": {"app": "web"}}, {"app": "web", "x": "1"}, True),
        ({"matchLabels": {"app": "web"}}, {"app": "api"}, False),
        (
            {"matchExpressions": [{"key": "tier", "operator": "In", "values": ["a", "b"]}]},
            {"tier": "b"},
            True,
        ),
        ({"matchExpressions": [{"key": "tier", "operator": "NotIn", "values": ["a"]}]}, {"tier": "a"}, False),
        ({"matchExpressions": [{"key": "tier", "operator": "Exists"}]}, {}, False),
        ({"matchExpressions": [{"key": "tier", "operator": "DoesNotExist"}]}, {}, True),
        ({}, {"app": "web"}, False),
        (None, {"app": "web"}, False),
    ],
)
def test_label_selectors(selector: dict[str, Any] | None, labels: dict[str, str], want: bool) -> None:
    assert views.selector_matches(selector, labels) is want


# ---------------------------------------------------------------- the capacity metric


def test_saved_metric_per_service_and_total() -> None:
    text = (
        "# HELP heady_capacity_saved_ratio Share of peak requests not held, last hour.\n"
        "# TYPE heady_capacity_saved_ratio gauge\n"
        'heady_capacity_saved_ratio{namespace="shop",service="web",resource="cpu"} 0.42\n'
        'heady_capacity_saved_ratio{namespace="shop",service="web",resource="memory"} 0.3\n'
        "heady_capacity_saved_ratio 0.25\n"
        'heady_pods_at_peak{namespace="shop",service="web"} 2\n'
    )
    m = views.parse_saved_metric(text, "http://op/metrics")
    assert m.available
    assert m.of(("shop", "web")) == 0.42
    assert m.of(("shop", "api")) is None
    assert m.total == 0.25


def test_saved_metric_missing_says_why() -> None:
    m = views.parse_saved_metric('heady_pods_at_peak{namespace="a",service="b"} 1\n', "http://op/metrics")
    assert not m.available
    assert m.reason is not None
    assert "no heady_capacity_saved_ratio" in m.reason
    assert "http://op/metrics" in m.reason
    gauges = (
        'heady_capacity_requests{namespace="a",service="b",resource="cpu"} 0.9\n'
        'heady_capacity_peak_requests{namespace="a",service="b",resource="cpu"} 1\n'
    )
    m = views.parse_saved_metric(gauges, "http://op/metrics")
    assert m.reason is not None
    assert "avg_over_time(heady_capacity_requests[1h])" in m.reason


# ---------------------------------------------------------------- top


NO_METRIC = SavedMetric(reason="no operator Service")


def _top(metric: SavedMetric = NO_METRIC) -> dict[str, Any]:
    services = [
        service("web", "high", **ready("Peak", 2, 2, "attention from signal look", escalatedSince=ts(-60))),
        service(
            "checkout",
            "very_high",
            **ready(
                "Baseline",
                0,
                1,
                "waiting",
                reason="HighPriorityLimit",
                waitingReason="2 high-priority escalations in flight (a, b)",
            ),
        ),
        service("batch", "low"),
    ]
    workloads = {(NS, "Deployment", n): deployment(n) for n in ("web", "checkout", "batch")}
    pods = [
        pod("web-1", "web", "1999m", "2Gi"),
        pod("web-2", "web", "1999m", "2Gi"),
        pod("checkout-1", "checkout", "1800m", "1843Mi"),
    ]
    return views.top_data(views.top_items(services, workloads, pods, metric, NOW), metric)


def test_top_items() -> None:
    items = {i["name"]: i for i in _top()["items"]}
    assert list(items) == ["batch", "checkout", "web"]
    web, checkout, batch = items["web"], items["checkout"], items["batch"]
    assert (web["level"], web["podsAtPeak"], web["podsTotal"], web["priorityValue"]) == ("Peak", 2, 2, 125)
    assert web["capacitySavedNow"]["cpu"] == 0.0
    assert checkout["waitingReason"] == "2 high-priority escalations in flight (a, b)"
    assert checkout["capacitySavedNow"]["cpu"] == pytest.approx(1 - 1800 / 1999, abs=1e-4)
    assert checkout["reason"] == "HighPriorityLimit"
    # No status yet: the operator has not seen it.
    assert (batch["level"], batch["ready"], batch["capacitySavedNow"]["cpu"]) == ("Unknown", "Unknown", None)
    assert all(i["capacitySavedLastHour"] is None for i in items.values())


def test_top_table_plain() -> None:
    text = views.render_top(_top(), wide=False, all_namespaces=False, colour=False)
    assert text.splitlines() == [
        "NAME       LEVEL      PRIORITY    AT-PEAK   CPU-SAVED   SAVED-1H   WAITING",
        "batch      Unknown    low         0/0       n/a         n/a        -",
        "checkout   Baseline   very_high   0/1       10%         n/a        2 high-priority escalations in flight (a, b)",
        "web        Peak       high        2/2       0%          n/a        -",
    ]
    assert "\x1b[" not in text


def test_top_table_wide_all_namespaces_with_colour() -> None:
    text = views.render_top(_top(), wide=True, all_namespaces=True, colour=True)
    header = text.splitlines()[0]
    assert header.split() == [
        "NAMESPACE", "NAME", "LEVEL", "PRIORITY", "AT-PEAK", "CPU-SAVED", "SAVED-1H", "VALUE", "READY",
        "REASON", "MEM-SAVED", "REQUESTS", "PEAK", "ESCALATED", "AGE", "WAITING",
    ]  # fmt: skip
    assert "\x1b[33;1mPeak\x1b[0m" in text
    assert "\x1b[33m2 high-priority escalations in flight (a, b)\x1b[0m" in text
    assert text.count("3998m/4Gi") == 2  # requests and peak: at peak, 1m below the limits
    assert "10m" in text  # age


def test_top_with_the_operator_metric() -> None:
    metric = views.parse_saved_metric(
        'heady_capacity_saved_ratio{namespace="shop",service="checkout"} 0.37\n', "http://op/metrics"
    )
    data = _top(metric)
    text = views.render_top(data, wide=False, all_namespaces=False, colour=False)
    assert "37%" in text.splitlines()[2]
    assert views.top_note(data) is None
    assert views.top_note(_top()) == (
        "SAVED-1H is n/a: no operator Service. CPU-SAVED is now, from pods' requests vs peak."
    )


def test_degraded_shows_in_the_waiting_column() -> None:
    svc = service("web", **ready("Baseline", 0, 1, "x"))
    svc["status"]["conditions"][2] = cond(
        "Degraded", "True", "Infeasible", "resize to peak infeasible on its node"
    )
    data = views.top_data(
        views.top_items([svc], {}, [], SavedMetric(reason="-"), NOW), SavedMetric(reason="-")
    )
    assert "Degraded: resize to peak infeasible on its node" in views.render_top(data, False, False, False)


def test_empty_top_renders_nothing() -> None:
    data = views.top_data([], SavedMetric(reason="-"))
    assert views.render_top(data, False, False, False) == ""


# ---------------------------------------------------------------- explain


def signal(
    name: str, *services: str, intensity: float = 0.9, ttl: int = 300, created: float = -60, **status: Any
) -> dict[str, Any]:
    return {
        "metadata": {"name": name, "namespace": NS, "creationTimestamp": ts(created)},
        "spec": {"services": list(services), "intensity": intensity, "source": "kubectl", "ttlSeconds": ttl},
        "status": status,
    }


def _explain(svc: dict[str, Any], **kw: Any) -> dict[str, Any]:
    node = {"metadata": {"name": "node-1"}, "status": {"allocatable": {"cpu": "4", "memory": "8Gi"}}}
    pods = kw.pop("pods", [pod("c-1", "checkout", "1800m", "1843Mi")])
    others = [pod("x", "other", "1500m", "1Gi", ns="o")]
    inp = ExplainInput(
        service=svc,
        workload=deployment("checkout"),
        pods=pods,
        signals=kw.pop("signals", []),
        all_services=kw.pop("all_services", []),
        nodes=kw.pop("nodes", {"node-1": node}),
        node_pods={"node-1": pods + others},
        metric=kw.pop("metric", SavedMetric(reason="no operator Service in heady-system")),
        now=NOW,
        **kw,
    )
    return views.explain_data(inp)


def _waiting_checkout() -> dict[str, Any]:
    return service(
        "checkout",
        "very_high",
        **ready(
            "Baseline",
            0,
            1,
            "waiting",
            reason="HighPriorityLimit",
            waitingReason="2 high-priority escalations in flight (a, b)",
            attentionUntil=ts(240),
        ),
    )


def test_explain_a_waiting_service() -> None:
    holders = [
        service("a", "high", ns="x", escalatedSince=ts(-120)),
        service("b", "very_high", ns="y", escalatedSince=ts(-30)),
        service("c", "medium", ns="y", escalatedSince=ts(-30)),  # not high: holds no slot
        service("d", "high", ns="y"),  # high but not escalated
    ]
    sigs = [
        signal("look", "checkout"),
        signal("old", "checkout", ttl=10, created=-100),
        signal("weak", "checkout", intensity=0.05),
        signal("elsewhere", "web"),
    ]
    data = _explain(_waiting_checkout(), signals=sigs, all_services=holders)
    assert data["verdict"] == "wants peak but waits: 2 high-priority escalations in flight (a, b)"
    assert [(s["name"], s["state"]) for s in data["signals"]] == [
        ("look", "live"),
        ("weak", "below threshold"),
        ("old", "expired"),
    ]
    slots = data["highPrioritySlots"]
    assert slots["applies"] is True
    assert [(h["namespace"], h["name"], h["for"]) for h in slots["holders"]] == [
        ("x", "a", "2m"),
        ("y", "b", "30s"),
    ]
    (node,) = data["nodes"]
    assert node == {
        "node": "node-1",
        "pods": 1,
        "allocatable": "4/8Gi",
        "requested": "3300m/2867Mi",
        "free": "700m/5325Mi",
        "neededForPeak": "199m/205Mi",
        "fits": True,
    }
    text = views.render_explain(data, colour=False, now=NOW)
    lines = text.splitlines()
    assert (
        lines[0]
        == "HeadyService shop/checkout   level Baseline   priority very_high (150)   pods at peak 0/1"
    )
    assert lines[1] == "Why: wants peak but waits: 2 high-priority escalations in flight (a, b)"
    assert "High-priority slots: 2/2 held: x/a (high, 2m), y/b (very_high, 30s)" in text
    assert "  look  live  intensity 0.90  source kubectl  expires in 4m" in text
    assert "last expired: old (90s ago)" in text
    assert "Conflicts: none" in text
    assert (
        "Capacity saved: now cpu 10%, memory 10% of peak requests; last hour n/a (no operator Service in heady-system)"
        in text
    )
    assert len(lines) <= 24, "explain must fit one screen"
    assert "\x1b[" not in text
    coloured = views.render_explain(data, colour=True, now=NOW)
    assert "\x1b[33mwants peak but waits" in coloured
    assert "\x1b[31m2/2 held\x1b[0m" in coloured


def test_explain_node_without_room_and_conflicts() -> None:
    svc = _waiting_checkout()
    svc["status"]["conditions"].append(
        cond(
            "Conflict",
            "True",
            "VerticalPodAutoscaler",
            "VPA web-vpa resizes these pods itself (updateMode Auto)",
        )
    )
    full = {"metadata": {"name": "node-1"}, "status": {"allocatable": {"cpu": "3400m", "memory": "8Gi"}}}
    data = _explain(svc, nodes={"node-1": full})
    assert data["nodes"][0]["fits"] is False
    assert data["conflicts"][0]["reason"] == "VerticalPodAutoscaler"
    text = views.render_explain(data, colour=False, now=NOW)
    assert "no room" in text
    assert "Conflict: True VerticalPodAutoscaler: VPA web-vpa resizes these pods itself" in text


def test_explain_when_things_are_unreadable() -> None:
    data = _explain(
        _waiting_checkout(),
        all_services=None,
        nodes={},
        unreadable={
            "services": "cannot list HeadyServices in all namespaces: forbidden",
            "node/node-1": "forbidden",
        },
    )
    assert data["highPrioritySlots"]["holders"] is None
    text = views.render_explain(data, colour=False, now=NOW)
    assert "High-priority slots: unknown: cannot list HeadyServices in all namespaces: forbidden" in text
    assert "forbidden" in text.split("Node room:")[1]


@pytest.mark.parametrize(
    ("status", "kind", "starts"),
    [
        ({}, "unmanaged", "no status yet"),
        (
            {
                "level": "Unknown",
                "conditions": [cond("Ready", "False", "WorkloadNotFound", "Deployment x not found")],
            },
            "unmanaged",
            "not managed: Deployment x not found",
        ),
        (
            {**ready("Baseline", 0, 1, "resting"), "restingUntil": ts(20)},
            "resting",
            "resting after maxPeakSeconds",
        ),
        (
            {**ready("Peak", 1, 1, "attention from signal look"), "escalatedSince": ts(-5)},
            "peak",
            "at peak: 1/1 pods",
        ),
        (
            {**ready("Baseline", 0, 1, "escalating"), "escalatedSince": ts(-1)},
            "peak",
            "escalated, 0/1 pods at peak",
        ),
        (ready("Baseline", 0, 1, "no attention"), "baseline", "at baseline: 0/1 pods at peak; no attention"),
    ],
)
def test_verdicts(status: dict[str, Any], kind: str, starts: str) -> None:
    svc = service("checkout", **status)
    data = _explain(svc)
    assert data["verdictKind"] == kind
    assert data["verdict"].startswith(starts)


def test_explain_in_cooldown() -> None:
    svc = service(
        "checkout", **ready("Peak", 1, 1, "cooldown", attentionUntil=ts(-10), escalatedSince=ts(-100))
    )
    data = _explain(svc)
    assert data["cooldown"]["inCooldown"] is True
    assert data["cooldown"]["cooldownUntil"] == (NOW + timedelta(seconds=20)).isoformat()
    assert "in cooldown until" in views.render_explain(data, colour=False, now=NOW)


def test_signal_window_prefers_status_then_spec() -> None:
    sig = signal("s", "web", ttl=30, created=0)
    assert views.signal_window(sig, 60) == (NOW, NOW + timedelta(seconds=30))
    sig["spec"].pop("ttlSeconds")
    assert views.signal_window(sig, 60)[1] == NOW + timedelta(seconds=60)
    sig["status"]["expiresAt"] = ts(5)
    assert views.signal_window(sig, 60)[1] == NOW + timedelta(seconds=5)


# ---------------------------------------------------------------- arenas


def arena(name: str, state: str, position: int | None = None, ns: str = NS, **st: Any) -> dict[str, Any]:
    conds = {
        "Queued": [cond("Admitted", "False", "WaitingForQuota", "waiting for quota: cpu 4 more than 2 free")],
        "Running": [cond("Admitted", "True", "QuotaReserved", "admitted: cpu 8 of 14")],
        "Preempted": [
            cond("Admitted", "False", "WaitingForQuota", "preempted by shop/urgent; waiting"),
            cond("Preempted", "True", "Preempted", "preempted by shop/urgent"),
        ],
        "Finished": [
            cond("Finished", "True", "DurationElapsed", "ran its duration"),
            cond("Admitted", "False", "Finished", "quota released"),
        ],
        "Invalid": [cond("Degraded", "True", "InvalidSpec", "repos: at least 1 item")],
    }[state]
    status = {"conditions": conds, "resourcePlan": {"compute": {"cpu": "4", "memory": "8Gi"}}, **st}
    if position is not None:
        status["queuePosition"] = position
    return {"metadata": {"name": name, "namespace": ns}, "spec": {"priority": "medium"}, "status": status}


def test_arena_queue_order_and_table() -> None:
    sessions = [
        arena("done", "Finished"),
        arena("run", "Running", admittedAt=ts(-300), allocation={"cpu": "4", "memory": "8Gi", "scale": 1.0}),
        arena("second", "Queued", 2, queuedAt=ts(-30)),
        arena("bad", "Invalid"),
        arena("first", "Preempted", 1, queuedAt=ts(-200)),
    ]
    items = views.arena_items(sessions, NOW)
    assert [(i["name"], i["state"], i["position"]) for i in items] == [
        ("first", "Preempted", 1),
        ("second", "Queued", 2),
        ("run", "Running", None),
        ("bad", "Invalid", None),
        ("done", "Finished", None),
    ]
    assert items[0]["reason"] == "Preempted"
    text = views.render_arenas(items, wide=False, all_namespaces=False, colour=False)
    lines = text.splitlines()
    assert lines[0].split() == [
        "POS",
        "NAME",
        "STATE",
        "PRIORITY",
        "CPU",
        "MEMORY",
        "WAITING",
        "REASON",
        "MESSAGE",
    ]
    assert lines[2].split()[:8] == ["2", "second", "Queued", "medium", "4", "8Gi", "30s", "WaitingForQuota"]
    assert lines[2].endswith("waiting for quota: cpu 4 more than 2 free")
    assert lines[4].endswith("repos: at least 1 item")
    wide = views.render_arenas(items, wide=True, all_namespaces=True, colour=True)
    assert "\x1b[33mQueued\x1b[0m" in wide and "4/8Gi" in wide


# ---------------------------------------------------------------- focus


def test_focus_signal_body() -> None:
    body = views.focus_signal("shop", ["web", "api"], 0.8, 300, "ana", "kubectl")
    assert body["metadata"]["generateName"] == "focus-web-"
    assert body["spec"] == {
        "services": ["web", "api"],
        "intensity": 0.8,
        "source": "kubectl",
        "ttlSeconds": 300,
        "user": "ana",
    }
    long = views.focus_signal("shop", ["a" * 100], 1.0, 60, None, "kubectl")
    assert long["metadata"]["generateName"] == "focus-" + "a" * 34 + "-"
    assert "user" not in long["spec"]
