"""Chaos experiments end to end: the operator process, the real API server, kwok's simulated nodes.

kwok runs no containers: a Job's pod "succeeds" without running anything. So most tests run an
operator with HEADY_CHAOS_EXECUTOR=inline (the same `heady-chaos` functions, in-process), and
one test runs the default Job executor, checks the Job it creates, and then runs that Job's
command itself (`python -m heady_operator.chaos.cli <the Job's args>`) against the API server.

Each operator here owns only sessions labelled heady.io/chaos-instance=<its instance>, so it
never competes with the shared `operator` fixture of other test modules, and uses a kill-switch
ConfigMap of its own.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client

from tests.harness import Cluster, OperatorProcess, condition, deployment, headyservice, wait_for

pytestmark = pytest.mark.k8s

GROUP, VERSION, PLURAL = "heady.io", "v1alpha1", "arenasessions"
OPERATOR_NS = "heady-system"
MERGE = "application/merge-patch+json"


@dataclass
class ChaosOperator:
    process: OperatorProcess
    instance: str
    killswitch: str


def _start(cluster: Cluster, log_dir: Path, executor: str, **env: str) -> ChaosOperator:
    instance = f"e2e-{executor}-{uuid.uuid4().hex[:6]}"
    killswitch = f"heady-chaos-{instance}"
    process = OperatorProcess(
        cluster,
        log_dir,
        extra_env={
            "HEADY_CHAOS_EXECUTOR": executor,
            "HEADY_CHAOS_INSTANCE": instance,
            "HEADY_CHAOS_KILLSWITCH_CONFIGMAP": killswitch,
            "HEADY_CHAOS_INTERVAL_SECONDS": "0.5",
            "HEADY_CHAOS_RECOVER_GRACE_SECONDS": "5",
            "HEADY_CHAOS_IMAGE": "registry.example/heady-operator:e2e",
            **env,
        },
    )
    process.start()
    return ChaosOperator(process, instance, killswitch)


@pytest.fixture(scope="module")
def inline_op(cluster: Cluster, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ChaosOperator]:
    op = _start(cluster, tmp_path_factory.mktemp("chaos-inline"), "inline")
    yield op
    op.process.stop()


@pytest.fixture(scope="module")
def job_op(cluster: Cluster, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ChaosOperator]:
    # The Job's ServiceAccount must exist for the Job controller to create its pod.
    try:
        cluster.core.create_namespaced_service_account(OPERATOR_NS, {"metadata": {"name": "heady-chaos"}})
    except client.ApiException as exc:
        if exc.status != 409:
            raise
    op = _start(cluster, tmp_path_factory.mktemp("chaos-job"), "job")
    yield op
    op.process.stop()


def _make_ns(cluster: Cluster, request: pytest.FixtureRequest, labels: dict[str, str]) -> Iterator[str]:
    name = f"c-{request.node.name[5:30].lower().replace('_', '-').strip('-')}-{uuid.uuid4().hex[:5]}"
    cluster.core.create_namespace({"metadata": {"name": name, "labels": {"heady.io/test": "e2e", **labels}}})
    yield name
    # Sessions first, while their operator still runs: their finalizer restores and lets go.
    for s in cluster.custom.list_namespaced_custom_object(GROUP, VERSION, name, PLURAL)["items"]:
        _delete_session(cluster, name, s["metadata"]["name"], force=True)
    cluster.core.delete_namespace(name, propagation_policy="Background")


@pytest.fixture
def chaos_ns(cluster: Cluster, request: pytest.FixtureRequest) -> Iterator[str]:
    """A namespace that opted in to chaos (heady.io/chaos=enabled)."""
    yield from _make_ns(cluster, request, {"heady.io/chaos": "enabled"})


@pytest.fixture
def plain_ns(cluster: Cluster, request: pytest.FixtureRequest) -> Iterator[str]:
    yield from _make_ns(cluster, request, {})


# --- helpers -----------------------------------------------------------------------------------


def _session(
    cluster: Cluster,
    ns: str,
    name: str,
    op: ChaosOperator,
    *experiments: dict[str, Any],
    dry_run: bool = False,
) -> dict[str, Any]:
    cluster.apply(
        {
            "apiVersion": f"{GROUP}/{VERSION}",
            "kind": "ArenaSession",
            "metadata": {"name": name, "namespace": ns, "labels": {"heady.io/chaos-instance": op.instance}},
            "spec": {
                "repos": [{"name": "heady"}],
                "durationSeconds": 3600,
                "chaos": {"dryRun": dry_run, "experiments": list(experiments)},
            },
        }
    )
    _set_running(cluster, ns, name)
    return cluster.get(PLURAL, ns, name)


def _set_running(cluster: Cluster, ns: str, name: str) -> None:
    """Stands in for the arena handler (admission): chaos only runs while Running is True."""

    def running() -> bool:
        obj = cluster.get(PLURAL, ns, name)
        if (condition(obj, "Running") or {}).get("status") == "True":
            return True
        conditions = [c for c in (obj.get("status") or {}).get("conditions") or [] if c["type"] != "Running"]
        now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        conditions.append(
            {
                "type": "Running",
                "status": "True",
                "reason": "Admitted",
                "message": "e2e",
                "lastTransitionTime": now,
            }
        )
        try:
            cluster.custom.patch_namespaced_custom_object_status(
                GROUP,
                VERSION,
                ns,
                PLURAL,
                name,
                {
                    "metadata": {"resourceVersion": obj["metadata"]["resourceVersion"]},
                    "status": {"conditions": conditions},
                },
                _content_type=MERGE,
            )
        except client.ApiException as exc:
            if exc.status != 409:
                raise
        return False

    wait_for(running, f"session {name} Running", timeout=15)


def _delete_session(cluster: Cluster, ns: str, name: str, force: bool = False) -> None:
    try:
        cluster.custom.delete_namespaced_custom_object(GROUP, VERSION, ns, PLURAL, name)
    except client.ApiException as exc:
        if exc.status != 404:
            raise
    try:
        wait_for(lambda: _gone(cluster, ns, name), f"session {name} deleted (finalizer done)", timeout=30)
    except AssertionError:
        if not force:
            raise
        # Cleanup of last resort after a failed test: never leave a namespace stuck Terminating.
        cluster.custom.patch_namespaced_custom_object(
            GROUP, VERSION, ns, PLURAL, name, {"metadata": {"finalizers": None}}, _content_type=MERGE
        )
        raise


def _gone(cluster: Cluster, ns: str, name: str) -> bool:
    try:
        cluster.get(PLURAL, ns, name)
    except client.ApiException as exc:
        if exc.status == 404:
            return True
        raise
    return False


def _record(cluster: Cluster, ns: str, name: str, experiment: str) -> dict[str, Any]:
    status = cluster.get(PLURAL, ns, name).get("status") or {}
    return dict(((status.get("chaos") or {}).get("experiments") or {}).get(experiment) or {})


def _wait_phase(
    cluster: Cluster, ns: str, name: str, experiment: str, phase: str, timeout: float = 30
) -> dict[str, Any]:
    return wait_for(
        lambda: (r := _record(cluster, ns, name, experiment)).get("phase") == phase and r,
        f"experiment {experiment} in phase {phase}",
        timeout=timeout,
    )


def _policies(cluster: Cluster, ns: str, session: str) -> list[Any]:
    net = client.NetworkingV1Api(cluster.api)
    return list(net.list_namespaced_network_policy(ns, label_selector=f"heady.io/session={session}").items)


def _web(cluster: Cluster, ns: str, replicas: int = 3) -> set[str]:
    cluster.apply(deployment("web", ns, replicas))
    cluster.apply(headyservice("web", ns))
    pods = wait_for(
        lambda: (
            (p := [x for x in cluster.pods(ns, "app=web") if x.status.phase == "Running"])
            and len(p) == replicas
            and p
        ),
        f"{replicas} web pods running",
    )
    return {p.metadata.name for p in pods}


def _reasons(cluster: Cluster, ns: str, name: str) -> set[str]:
    return {e.reason for e in cluster.events(ns, name)}


def _partition(name: str = "cut", duration: int = 300, **kw: Any) -> dict[str, Any]:
    return {
        "name": name,
        "kind": "network_partition",
        "service": "web",
        "mode": "all",
        "durationSeconds": duration,
        "recoveryObjectiveSeconds": 120,
        **kw,
    }


# --- the scenarios -----------------------------------------------------------------------------


def test_pod_kill_is_replaced_by_the_deployment_and_passes(
    cluster: Cluster, inline_op: ChaosOperator, chaos_ns: str
) -> None:
    before = _web(cluster, chaos_ns)
    _session(
        cluster,
        chaos_ns,
        "kill",
        inline_op,
        {"name": "kill", "kind": "pod_termination", "service": "web", "mode": "fixed", "value": 2,
         "recoveryObjectiveSeconds": 30},
    )  # fmt: skip
    rec = _wait_phase(cluster, chaos_ns, "kill", "kill", "Verdict")
    assert rec["verdict"] == "Pass", rec
    assert 0 <= rec["recoverySeconds"] <= 30
    assert rec["expectedPods"] == 3
    after = {p.metadata.name for p in cluster.pods(chaos_ns, "app=web") if p.status.phase == "Running"}
    assert len(after) == 3
    assert len(before - after) == 2, "exactly two of the three pods were terminated and replaced"
    obj = wait_for(
        lambda: (
            (o := cluster.get(PLURAL, chaos_ns, "kill"))
            and (condition(o, "ChaosActive") or {}).get("status") == "False"
            and o
        ),
        "ChaosActive=False",
    )
    assert condition(obj, "ChaosAllowed")["status"] == "True"
    assert condition(obj, "Running")["status"] == "True", "the session's own conditions are kept"
    assert {"ChaosInjected", "ChaosRecovered", "ChaosVerdict"} <= _reasons(cluster, chaos_ns, "kill")
    metrics = inline_op.process.metrics()
    assert 'heady_chaos_faults_injected_total{kind="pod_termination"} 1.0' in metrics
    assert 'heady_chaos_recovery_seconds_count{kind="pod_termination"} 1.0' in metrics
    assert 'heady_chaos_verdicts_total{kind="pod_termination",verdict="Pass"} 1.0' in metrics


def test_partition_exists_only_during_its_window(
    cluster: Cluster, inline_op: ChaosOperator, chaos_ns: str
) -> None:
    _web(cluster, chaos_ns)
    _session(cluster, chaos_ns, "part", inline_op, _partition(duration=4, startAfterSeconds=2))
    assert _record(cluster, chaos_ns, "part", "cut").get("phase") in (None, "Scheduled")
    assert _policies(cluster, chaos_ns, "part") == []
    (policy,) = wait_for(
        lambda: _policies(cluster, chaos_ns, "part"), "the partition NetworkPolicy", timeout=15
    )
    appeared = time.monotonic()
    assert policy.spec.policy_types == ["Ingress", "Egress"]
    assert policy.spec.pod_selector.match_labels == {"app": "web"}
    assert not policy.spec.ingress and not policy.spec.egress
    assert policy.metadata.labels["heady.io/experiment"] == "cut"
    obj = wait_for(
        lambda: (
            (o := cluster.get(PLURAL, chaos_ns, "part"))
            and (condition(o, "ChaosActive") or {}).get("status") == "True"
            and o
        ),
        "ChaosActive=True",
    )
    assert "cut" in condition(obj, "ChaosActive")["message"]
    wait_for(lambda: _policies(cluster, chaos_ns, "part") == [], "the NetworkPolicy removed", timeout=15)
    lasted = time.monotonic() - appeared
    assert 2.5 <= lasted <= 8, f"the partition lasted {lasted:.1f}s, its window is 4s"
    rec = _wait_phase(cluster, chaos_ns, "part", "cut", "Verdict")
    assert rec["verdict"] == "Pass"
    assert 4 <= rec["recoverySeconds"] <= 10
    assert "interrupted" not in rec or rec["interrupted"] is None
    wait_for(
        lambda: (
            (condition(cluster.get(PLURAL, chaos_ns, "part"), "ChaosActive") or {}).get("status") == "False"
        ),
        "ChaosActive=False once recovered",
    )


def test_kill_switch_mid_fault_restores_at_once(
    cluster: Cluster, inline_op: ChaosOperator, chaos_ns: str
) -> None:
    _web(cluster, chaos_ns)
    _session(cluster, chaos_ns, "ks", inline_op, _partition(), _partition("later", startAfterSeconds=3))
    wait_for(lambda: _policies(cluster, chaos_ns, "ks"), "the partition in place")
    cm = {"metadata": {"name": inline_op.killswitch, "namespace": OPERATOR_NS}, "data": {"enabled": "false"}}
    cluster.core.create_namespaced_config_map(OPERATOR_NS, cm)
    try:
        switched = time.monotonic()
        wait_for(lambda: _policies(cluster, chaos_ns, "ks") == [], "the partition restored", timeout=5)
        assert time.monotonic() - switched < 5
        rec = _wait_phase(cluster, chaos_ns, "ks", "cut", "Verdict", timeout=20)
        assert rec["interrupted"] == "KillSwitch"
        # Cut short, it tested nothing: never a Pass (issue 17).
        assert rec["verdict"] == "Skipped", rec
        wait_for(
            lambda: (
                (condition(cluster.get(PLURAL, chaos_ns, "ks"), "ChaosAllowed") or {}).get("reason")
                == "KillSwitch"
            ),
            "ChaosAllowed=False reason KillSwitch",
        )
        assert condition(cluster.get(PLURAL, chaos_ns, "ks"), "ChaosAllowed")["status"] == "False"
        # Held: the later experiment is not injected while the switch is off.
        time.sleep(4)
        assert _policies(cluster, chaos_ns, "ks") == []
        assert _record(cluster, chaos_ns, "ks", "later")["phase"] == "Scheduled"
        assert "ChaosRestored" in _reasons(cluster, chaos_ns, "ks")
    finally:
        cluster.core.delete_namespaced_config_map(inline_op.killswitch, OPERATOR_NS)
    # Switched back on within its window: the later experiment runs.
    wait_for(
        lambda: _record(cluster, chaos_ns, "ks", "later").get("phase") not in (None, "Scheduled"),
        "later runs",
    )


def test_pause_annotation_restores_and_holds(
    cluster: Cluster, inline_op: ChaosOperator, chaos_ns: str
) -> None:
    _web(cluster, chaos_ns)
    _session(cluster, chaos_ns, "pz", inline_op, _partition())
    wait_for(lambda: _policies(cluster, chaos_ns, "pz"), "the partition in place")
    cluster.custom.patch_namespaced_custom_object(
        GROUP, VERSION, chaos_ns, PLURAL, "pz", {"metadata": {"annotations": {"heady.io/chaos-paused": "true"}}},
        _content_type=MERGE,
    )  # fmt: skip
    wait_for(lambda: _policies(cluster, chaos_ns, "pz") == [], "the partition restored on pause", timeout=5)
    wait_for(
        lambda: _record(cluster, chaos_ns, "pz", "cut").get("interrupted") == "Paused", "interrupted: Paused"
    )
    wait_for(
        lambda: (
            (condition(cluster.get(PLURAL, chaos_ns, "pz"), "ChaosAllowed") or {}).get("reason") == "Paused"
        ),
        "ChaosAllowed=False reason Paused",
    )


def test_session_deleted_mid_fault_is_restored_by_the_finalizer(
    cluster: Cluster, inline_op: ChaosOperator, chaos_ns: str
) -> None:
    _web(cluster, chaos_ns)
    obj = _session(cluster, chaos_ns, "gone", inline_op, _partition())
    wait_for(lambda: _policies(cluster, chaos_ns, "gone"), "the partition in place")
    finalizers = cluster.get(PLURAL, chaos_ns, "gone")["metadata"].get("finalizers") or []
    assert f"heady.io/chaos-{inline_op.instance}" in finalizers
    assert obj["metadata"]["uid"]
    cluster.custom.delete_namespaced_custom_object(GROUP, VERSION, chaos_ns, PLURAL, "gone")
    wait_for(lambda: _gone(cluster, chaos_ns, "gone"), "the session gone", timeout=20)
    # Restored before the object went away, not after.
    assert _policies(cluster, chaos_ns, "gone") == []


def test_zone_outage_cordons_then_uncordons_only_its_own_node(
    cluster: Cluster, inline_op: ChaosOperator, chaos_ns: str
) -> None:
    """On a node of its own (a zone nobody else uses): other tests share kwok-node-0..3."""
    suffix = uuid.uuid4().hex[:6]
    node, zone = f"kwok-chaos-{suffix}", f"zone-chaos-{suffix}"
    cluster.core.create_node(
        {
            "metadata": {
                "name": node,
                "annotations": {"kwok.x-k8s.io/node": "fake", "node.alpha.kubernetes.io/ttl": "0"},
                "labels": {
                    "type": "kwok",
                    "kubernetes.io/hostname": node,
                    "kubernetes.io/os": "linux",
                    "topology.kubernetes.io/zone": zone,
                },
            },
            "status": {
                "allocatable": {"cpu": "8", "memory": "32Gi", "pods": "250"},
                "capacity": {"cpu": "8", "memory": "32Gi", "pods": "250"},
            },
        }
    )
    try:
        pinned = deployment("pinned", chaos_ns, 1)
        pinned["spec"]["template"]["spec"]["nodeSelector"] = {"topology.kubernetes.io/zone": zone}
        cluster.apply(pinned)
        (first,) = wait_for(
            lambda: [p for p in cluster.pods(chaos_ns, "app=pinned") if p.status.phase == "Running"],
            "the pinned pod running on the zone's node",
        )
        assert first.spec.node_name == node
        _session(
            cluster,
            chaos_ns,
            "zone",
            inline_op,
            {"name": "outage", "kind": "zone_outage", "zone": zone, "durationSeconds": 5,
             "recoveryObjectiveSeconds": 60},
        )  # fmt: skip
        cordoned = wait_for(
            lambda: (n := cluster.core.read_node(node)).spec.unschedulable and n, "the node cordoned"
        )
        assert cordoned.metadata.annotations["heady.io/cordoned-by"] == f"{chaos_ns}/zone/outage"
        wait_for(
            lambda: (
                first.metadata.name not in {p.metadata.name for p in cluster.pods(chaos_ns, "app=pinned")}
            ),
            "the pod evicted",
        )
        # The replacement cannot schedule anywhere while the zone is out.
        assert all(p.status.phase == "Pending" for p in cluster.pods(chaos_ns, "app=pinned"))
        others = [n for n in cluster.core.list_node().items if n.metadata.name != node]
        assert not any(n.spec.unschedulable for n in others), "no other node was touched"
        wait_for(
            lambda: not cluster.core.read_node(node).spec.unschedulable, "the node uncordoned", timeout=20
        )
        annotations = cluster.core.read_node(node).metadata.annotations or {}
        assert "heady.io/cordoned-by" not in annotations
        rec = _wait_phase(cluster, chaos_ns, "zone", "outage", "Verdict", timeout=30)
        assert rec["verdict"] == "Pass", rec
        assert rec["recoverySeconds"] >= 5
        wait_for(
            lambda: [p for p in cluster.pods(chaos_ns, "app=pinned") if p.status.phase == "Running"],
            "the replacement running once the zone is back",
        )
    finally:
        cluster.core.delete_node(node)


def test_namespace_without_the_label_is_refused(
    cluster: Cluster, inline_op: ChaosOperator, plain_ns: str
) -> None:
    before = _web(cluster, plain_ns)
    _session(
        cluster,
        plain_ns,
        "nope",
        inline_op,
        {"name": "kill", "kind": "pod_termination", "service": "web", "mode": "all", "durationSeconds": 3},
        _partition(duration=3),
    )
    obj = wait_for(
        lambda: (o := cluster.get(PLURAL, plain_ns, "nope")) and condition(o, "ChaosAllowed") and o,
        "ChaosAllowed reported",
    )
    allowed = condition(obj, "ChaosAllowed")
    assert (allowed["status"], allowed["reason"]) == ("False", "NamespaceNotEnabled")
    assert "heady.io/chaos=enabled" in allowed["message"]
    warning = wait_for(
        lambda: [e for e in cluster.events(plain_ns, "nope") if e.reason == "ChaosRefused"],
        "a ChaosRefused Event",
    )
    assert warning[0].type == "Warning"
    # Its window passes without anything touched.
    rec = _wait_phase(cluster, plain_ns, "nope", "kill", "Verdict", timeout=15)
    assert rec["verdict"] == "Skipped"
    assert _policies(cluster, plain_ns, "nope") == []
    assert {p.metadata.name for p in cluster.pods(plain_ns, "app=web")} == before


def test_dry_run_reports_and_touches_nothing(
    cluster: Cluster, inline_op: ChaosOperator, chaos_ns: str
) -> None:
    before = _web(cluster, chaos_ns)
    _session(
        cluster,
        chaos_ns,
        "dry",
        inline_op,
        {"name": "kill", "kind": "pod_termination", "service": "web", "mode": "fixed", "value": 2,
         "durationSeconds": 2},
        _partition(duration=2),
        dry_run=True,
    )  # fmt: skip
    kill = _wait_phase(cluster, chaos_ns, "dry", "kill", "Verdict")
    cut = _wait_phase(cluster, chaos_ns, "dry", "cut", "Verdict")
    assert kill["verdict"] == cut["verdict"] == "DryRun"
    assert kill["dryRun"] is True
    assert "would terminate 2 of 3 pod(s)" in kill["message"]
    assert "would cut off the network of 3 of 3 pod(s)" in cut["message"]
    assert {p.metadata.name for p in cluster.pods(chaos_ns, "app=web")} == before
    assert _policies(cluster, chaos_ns, "dry") == []


def test_restart_after_the_window_restores_what_was_left(
    cluster: Cluster, chaos_ns: str, tmp_path: Path
) -> None:
    op = _start(cluster, tmp_path, "inline")
    try:
        _web(cluster, chaos_ns)
        _session(cluster, chaos_ns, "rs", op, _partition(duration=3))
        wait_for(lambda: _policies(cluster, chaos_ns, "rs"), "the partition in place")
        _wait_phase(cluster, chaos_ns, "rs", "cut", "Injected", timeout=5)
        op.process.kill()  # no cleanup, as when the operator's node dies
        time.sleep(10)  # past the window (3 s) and the recover grace (5 s)
        assert _policies(cluster, chaos_ns, "rs"), "nothing restores while no operator runs"
        # And a fault whose session was deleted meanwhile (its finalizer removed by hand).
        client.NetworkingV1Api(cluster.api).create_namespaced_network_policy(
            chaos_ns,
            {
                "metadata": {
                    "name": "heady-chaos-ghost",
                    "labels": {"heady.io/session": "ghost", "heady.io/experiment": "cut"},
                    "annotations": {"heady.io/session-ref": f"{chaos_ns}/ghost"},
                },
                "spec": {"podSelector": {"matchLabels": {"app": "web"}}, "policyTypes": ["Ingress"]},
            },
        )
        op.process.start()
        wait_for(lambda: _policies(cluster, chaos_ns, "rs") == [], "restored after the restart", timeout=15)
        wait_for(
            lambda: _policies(cluster, chaos_ns, "ghost") == [], "the orphaned fault restored at start-up"
        )
        rec = _wait_phase(cluster, chaos_ns, "rs", "cut", "Verdict", timeout=20)
        assert rec["interrupted"] == "Overdue"
        # Sessions go while the operator runs, so its finalizer can let them go.
        _delete_session(cluster, chaos_ns, "rs")
    finally:
        op.process.stop()


def test_job_executor_creates_the_right_job_and_its_command_injects(
    cluster: Cluster, job_op: ChaosOperator, chaos_ns: str
) -> None:
    _web(cluster, chaos_ns)
    obj = _session(cluster, chaos_ns, "jobs", job_op, _partition(duration=60))
    uid = obj["metadata"]["uid"]
    batch = client.BatchV1Api(cluster.api)
    (job,) = wait_for(
        lambda: (
            batch.list_namespaced_job(
                OPERATOR_NS, label_selector=f"heady.io/session-uid={uid},heady.io/action=inject"
            ).items
        ),
        "the inject Job",
    )
    labels = job.metadata.labels
    assert (labels["heady.io/session"], labels["heady.io/experiment"]) == ("jobs", "cut")
    assert labels["heady.io/session-namespace"] == chaos_ns
    assert job.spec.backoff_limit == 0
    assert job.spec.active_deadline_seconds and job.spec.ttl_seconds_after_finished
    pod = job.spec.template.spec
    assert pod.service_account_name == "heady-chaos"
    assert pod.restart_policy == "Never"
    assert pod.security_context.seccomp_profile.type == "RuntimeDefault"
    (container,) = pod.containers
    assert container.image == "registry.example/heady-operator:e2e"
    assert container.command == ["heady-chaos"]
    sc = container.security_context
    assert (sc.run_as_user, sc.run_as_non_root, sc.read_only_root_filesystem) == (10001, True, True)
    assert sc.allow_privilege_escalation is False
    assert sc.capabilities.drop == ["ALL"]
    args = list(container.args)
    assert args[:1] == ["inject"]
    for flag, value in (("--namespace", chaos_ns), ("--kind", "network_partition"), ("--session", "jobs"),
                        ("--experiment", "cut"), ("--service", "web"), ("--mode", "all"),
                        ("--duration", "60"), ("--seed", f"{uid}/cut")):  # fmt: skip
        assert args[args.index(flag) + 1] == value
    # kwok "ran" the Job without running anything; the operator moves on from its success.
    _wait_phase(cluster, chaos_ns, "jobs", "cut", "Injected")
    assert _policies(cluster, chaos_ns, "jobs") == []

    # The Job's command, run here against the same API server, does the injection ...
    env = dict(cluster.env)
    run = subprocess.run(
        [sys.executable, "-m", "heady_operator.chaos.cli", *args], env=env, capture_output=True, text=True
    )
    assert run.returncode == 0, run.stderr
    assert "create NetworkPolicy" in run.stdout
    (policy,) = _policies(cluster, chaos_ns, "jobs")
    assert policy.spec.policy_types == ["Ingress", "Egress"]
    # ... and the same line with `recover` undoes it.
    run = subprocess.run(
        [sys.executable, "-m", "heady_operator.chaos.cli", "recover", *args[1:]],
        env=env,
        capture_output=True,
        text=True,
    )
    assert run.returncode == 0, run.stderr
    assert "delete NetworkPolicy" in run.stdout
    assert _policies(cluster, chaos_ns, "jobs") == []

    # The same command refuses a namespace that did not opt in.
    cluster.core.patch_namespace(
        chaos_ns, {"metadata": {"labels": {"heady.io/chaos": None}}}, _content_type=MERGE
    )
    run = subprocess.run(
        [sys.executable, "-m", "heady_operator.chaos.cli", *args], env=env, capture_output=True, text=True
    )
    assert run.returncode == 2
    assert "not labelled heady.io/chaos=enabled" in run.stderr
    assert _policies(cluster, chaos_ns, "jobs") == []

    # The session's Jobs go with it.
    _delete_session(cluster, chaos_ns, "jobs")
    wait_for(
        lambda: (
            not batch.list_namespaced_job(OPERATOR_NS, label_selector=f"heady.io/session-uid={uid}").items
        ),
        "the session's Jobs deleted",
    )


# --- issue 17 ------------------------------------------------------------------------------------


def test_a_session_in_a_namespace_without_the_opt_in_holds_no_finalizer(
    cluster: Cluster, inline_op: ChaosOperator, plain_ns: str
) -> None:
    """So the namespace can be deleted while no operator runs."""
    _session(cluster, plain_ns, "unlabelled", inline_op, _partition(duration=300, startAfterSeconds=60))
    rec = _wait_phase(cluster, plain_ns, "unlabelled", "cut", "Verdict", timeout=15)
    assert rec["verdict"] == "Skipped" and "heady.io/chaos=enabled" in rec["message"]
    wait_for(
        lambda: not cluster.get(PLURAL, plain_ns, "unlabelled")["metadata"].get("finalizers"),
        "no finalizer on the settled session",
        timeout=15,
    )
    inline_op.process.stop()  # the operator is down ...
    try:
        cluster.custom.delete_namespaced_custom_object(GROUP, VERSION, plain_ns, PLURAL, "unlabelled")
        try:
            wait_for(
                lambda: _gone(cluster, plain_ns, "unlabelled"), "the session deleted without an operator", 15
            )
        except AssertionError as exc:
            raise AssertionError(
                f"{exc}: {cluster.get(PLURAL, plain_ns, 'unlabelled')['metadata']}"
            ) from None
    finally:
        inline_op.process.start()


def test_an_expired_partition_is_removed_while_start_up_keeps_failing(
    cluster: Cluster, chaos_ns: str, tmp_path: Path
) -> None:
    op = _start(cluster, tmp_path, "inline")
    try:
        _web(cluster, chaos_ns)
        _session(cluster, chaos_ns, "stuck", op, _partition(duration=3))
        wait_for(lambda: _policies(cluster, chaos_ns, "stuck"), "the partition in place")
        op.process.kill()  # down for good in the middle of the fault
        # The next start-up fails over and over (here: its HTTP port is taken) ...
        with socket.socket() as squatter:
            squatter.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            squatter.bind(("127.0.0.1", op.process.port))
            squatter.listen()
            log = (tmp_path / "failing-start.log").open("ab")
            failing = subprocess.Popen(
                [sys.executable, "-m", "heady_operator.main"],
                env=op.process.env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
            try:
                # ... yet the partition goes once its window (3 s) and the recover grace (5 s) passed.
                wait_for(
                    lambda: "address already in use" in (tmp_path / "failing-start.log").read_text(),
                    "the start-up failing",
                )
                wait_for(
                    lambda: _policies(cluster, chaos_ns, "stuck") == [], "the expired partition removed", 40
                )
                assert failing.poll() is None
            finally:
                failing.terminate()
                try:
                    failing.wait(15)
                except subprocess.TimeoutExpired:
                    # kopf stops slowly while its start-up is failing; not what this test is about.
                    failing.kill()
                    failing.wait(10)
                log.close()
        op.process.start()
        _delete_session(cluster, chaos_ns, "stuck")
    finally:
        op.process.stop()
