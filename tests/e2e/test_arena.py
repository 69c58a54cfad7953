"""ArenaSession admission on the real API server: quota, queue, preemption, duration, release."""

from __future__ import annotations

from typing import Any

import pytest

from tests.harness import Cluster, OperatorProcess, condition, wait_for

pytestmark = pytest.mark.k8s
# The e2e operator runs with a 14 CPU arena quota; medium sessions with no risk plan 6.4 CPU,
# high ones 10 CPU (seeds: 8 x priority/100 x (1 + risk x 0.5)).


def session(name: str, ns: str, priority: str = "medium", duration: int = 600, **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "heady.io/v1alpha1",
        "kind": "ArenaSession",
        "metadata": {"name": name, "namespace": ns},
        "spec": {"repos": [{"name": "heady-web"}], "priority": priority, "durationSeconds": duration, **spec},
    }


def state(cluster: Cluster, ns: str, name: str, type_: str) -> str | None:
    c = condition(cluster.get("arenasessions", ns, name), type_)
    return c["status"] if c else None


def test_admission_queue_preemption_duration_and_release(
    cluster: Cluster, operator: OperatorProcess, ns: str
) -> None:
    cluster.apply(session("s1", ns))
    wait_for(lambda: state(cluster, ns, "s1", "Admitted") == "True", "s1 admitted")
    cluster.apply(session("s2", ns))
    wait_for(lambda: state(cluster, ns, "s2", "Admitted") == "True", "s2 admitted")
    cluster.apply(session("s3", ns))
    wait_for(lambda: state(cluster, ns, "s3", "Running") == "False", "s3 queued")
    s3 = cluster.get("arenasessions", ns, "s3")
    assert condition(s3, "Admitted")["status"] == "False"
    assert "quota" in condition(s3, "Admitted")["message"].lower()
    assert s3["status"]["queuePosition"] >= 1  # cluster-wide queue
    s1 = cluster.get("arenasessions", ns, "s1")
    assert s1["status"]["resourcePlan"]["compute"]["cpu"] == "6400m"
    assert s1["status"]["allocation"]["cpu"] == "6400m"
    assert condition(s1, "Running")["status"] == "True"
    assert s1["status"]["battle"]["rounds"], "review rounds recorded at admission"
    assert "risk" in s1["status"]

    # A higher-priority session preempts the most recently admitted lower one.
    cluster.apply(session("urgent", ns, priority="high"))
    wait_for(lambda: state(cluster, ns, "urgent", "Admitted") == "True", "urgent admitted by preemption")
    preempted = [n for n in ("s1", "s2") if state(cluster, ns, n, "Preempted") == "True"]
    assert preempted, "a medium session was preempted"
    assert "s2" in preempted, "the most recently admitted goes first"
    msg = condition(cluster.get("arenasessions", ns, "s2"), "Preempted")["message"]
    assert "urgent" in msg
    assert any(e.reason == "Preempted" for e in cluster.events(ns, "s2"))

    # Deleting a session releases its quota: the queue moves.
    cluster.custom.delete_namespaced_custom_object("heady.io", "v1alpha1", ns, "arenasessions", "urgent")
    wait_for(
        lambda: sum(state(cluster, ns, n, "Admitted") == "True" for n in ("s1", "s2", "s3")) == 2,
        "two medium sessions admitted again after the release",
    )


def test_duration_ends_in_finished_and_frees_quota(
    cluster: Cluster, operator: OperatorProcess, ns: str
) -> None:
    cluster.apply(session("short", ns, duration=3))
    wait_for(lambda: state(cluster, ns, "short", "Running") == "True", "short running")
    obj = wait_for(
        lambda: (
            state(cluster, ns, "short", "Finished") == "True" and cluster.get("arenasessions", ns, "short")
        ),
        "short finished",
        timeout=20,
    )
    assert condition(obj, "Running")["status"] == "False"
    assert obj["status"]["finishedAt"]
    assert any(e.reason == "Finished" for e in cluster.events(ns, "short"))


def test_invalid_session_is_reported(cluster: Cluster, operator: OperatorProcess, ns: str) -> None:
    # The CRD refuses most bad input; a duplicate repo name gets past the schema to the model.
    bad = session("dup", ns)
    bad["spec"]["services"] = ["web", "web"]
    res = cluster.kubectl("apply", "-f", "-", input=__import__("json").dumps(bad), check=False)
    assert res.returncode != 0 and "Duplicate value" in res.stderr


def test_rebalancing_scales_an_idle_session_down_and_a_busy_one_up(
    cluster: Cluster, operator: OperatorProcess, ns: str
) -> None:
    """No Metrics API on kwok: the documented fallback, the heady.io/utilization annotation, drives it."""
    cluster.apply(session("idle", ns, priority="low"))
    wait_for(lambda: state(cluster, ns, "idle", "Running") == "True", "idle running")
    cluster.kubectl("annotate", "arenasession", "idle", "-n", ns, "heady.io/utilization=0.1")
    scaled = wait_for(
        lambda: (
            (a := cluster.get("arenasessions", ns, "idle"))["status"].get("allocation", {}).get("scale", 1)
            < 1
            and a
        ),
        "the idle session scaled down",
        timeout=20,
    )
    down = scaled["status"]["allocation"]["scale"]
    assert any(e.reason == "ScaledDown" for e in cluster.events(ns, "idle"))
    cluster.kubectl("annotate", "--overwrite", "arenasession", "idle", "-n", ns, "heady.io/utilization=0.95")
    wait_for(
        lambda: cluster.get("arenasessions", ns, "idle")["status"]["allocation"]["scale"] > down,
        "the busy session scaled back up",
        timeout=20,
    )
    assert any(e.reason == "ScaledUp" for e in cluster.events(ns, "idle"))
