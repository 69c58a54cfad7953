"""Every Kubernetes call of chaos from the operator: the Jobs, direct restoration, what is observed.

`build_job` is pure (a manifest from settings and a FaultRequest). The rest is I/O: Jobs are
created, listed and deleted here; faults are restored here *directly* (NetworkPolicies with the
session's labels deleted, nodes annotated by the session uncordoned), which is what a kill
switch, a pause, a deletion and a restart after an overdue window use, so that restoration
never depends on a Job being scheduled and run.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from kubernetes_asyncio.client.exceptions import ApiException

from heady_operator.chaos.args import to_argv
from heady_operator.config import Settings
from heady_operator.kube.client import Kube
from heady_operator.models.arena import PLURAL, ChaosKind
from heady_operator.models.common import GROUP, VERSION, utcnow
from heady_operator.planning.chaos import (
    ANNOTATION_CORDONED_BY,
    ANNOTATION_EXPIRES_AT,
    ANNOTATION_SESSION_REF,
    INSTANCE_LABEL,
    LABEL_ACTION,
    LABEL_CORDONED,
    LABEL_EXPERIMENT,
    LABEL_SESSION,
    LABEL_SESSION_NAMESPACE,
    LABEL_SESSION_UID,
    NAMESPACE_LABEL,
    NAMESPACE_LABEL_VALUE,
    FaultRequest,
    JobAction,
    JobOutcome,
    JobState,
    cordon_owner,
    fault_expired,
    label_selector,
    label_value,
    select_targets,
    uncordon_patch,
)

log = logging.getLogger(__name__)

MERGE_PATCH = "application/merge-patch+json"
CHAOS_UID = 10001
ZONE_LABEL = "topology.kubernetes.io/zone"
# inject may not run twice: a retried pod_termination would kill another set of pods.
INJECT_BACKOFF_LIMIT = 0
# recover is idempotent: retrying only helps.
RECOVER_BACKOFF_LIMIT = 3


# --- the Job -----------------------------------------------------------------------------------


def job_labels(request: FaultRequest, session_uid: str, action: JobAction) -> dict[str, str]:
    return {
        "app.kubernetes.io/name": "heady-chaos",
        "app.kubernetes.io/component": "chaos",
        "app.kubernetes.io/managed-by": "heady-operator",
        LABEL_SESSION: label_value(request.session),
        LABEL_SESSION_NAMESPACE: request.namespace,
        LABEL_SESSION_UID: session_uid,
        LABEL_EXPERIMENT: request.experiment,
        LABEL_ACTION: action.value,
    }


def build_job(
    settings: Settings, action: JobAction, request: FaultRequest, session_uid: str, name: str
) -> dict[str, Any]:
    """The Job that runs `heady-chaos <action>` for one experiment.

    It lives in the operator's namespace, where the chaos ServiceAccount is, not in the
    session's: users of a namespace cannot then edit or exec into the Job that holds the chaos
    rights, and a namespace deletion cannot orphan a half-done recovery.
    """
    labels = job_labels(request, session_uid, action)
    restricted = {
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "runAsNonRoot": True,
        "runAsUser": CHAOS_UID,
        "runAsGroup": CHAOS_UID,
        "capabilities": {"drop": ["ALL"]},
        "seccompProfile": {"type": "RuntimeDefault"},
    }
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "name": name,
            "namespace": settings.operator_namespace,
            "labels": labels,
            "annotations": {"heady.io/session-ref": f"{request.namespace}/{request.session}"},
        },
        "spec": {
            "backoffLimit": INJECT_BACKOFF_LIMIT if action is JobAction.INJECT else RECOVER_BACKOFF_LIMIT,
            "activeDeadlineSeconds": settings.chaos_job_deadline_seconds,
            "ttlSecondsAfterFinished": settings.chaos_job_ttl_seconds,
            "template": {
                "metadata": {"labels": labels},
                "spec": {
                    "serviceAccountName": settings.chaos_service_account,
                    "automountServiceAccountToken": True,
                    "restartPolicy": "Never",
                    "enableServiceLinks": False,
                    "securityContext": {
                        "runAsNonRoot": True,
                        "runAsUser": CHAOS_UID,
                        "runAsGroup": CHAOS_UID,
                        "seccompProfile": {"type": "RuntimeDefault"},
                    },
                    "containers": [
                        {
                            "name": "chaos",
                            "image": settings.chaos_image,
                            "imagePullPolicy": "IfNotPresent",
                            # The image's entrypoint is the operator; the Job runs the command.
                            "command": ["heady-chaos"],
                            "args": to_argv(action, request),
                            "env": [{"name": "PYTHONDONTWRITEBYTECODE", "value": "1"}],
                            "resources": {
                                "requests": {"cpu": "10m", "memory": "64Mi"},
                                "limits": {"memory": "256Mi"},
                            },
                            "securityContext": restricted,
                        }
                    ],
                },
            },
        },
    }


async def create_job(kube: Kube, job: Mapping[str, Any]) -> bool:
    """Create the Job; False when it already exists (its name is deterministic: no second fault)."""
    try:
        await kube.batch.create_namespaced_job(job["metadata"]["namespace"], job)  # type: ignore[arg-type]
    except ApiException as exc:
        if exc.status == 409:
            return False
        raise
    return True


def job_state(job: Any) -> JobState:
    conditions = (job.status.conditions or []) if job.status else []
    for cond in conditions:
        if cond.status != "True":
            continue
        if cond.type == "Complete":
            return JobState(JobOutcome.SUCCEEDED, job.status.completion_time)
        if cond.type == "Failed":
            return JobState(JobOutcome.FAILED, cond.last_transition_time, cond.message or cond.reason or "")
    return JobState(JobOutcome.ACTIVE)


async def list_jobs(kube: Kube, namespace: str, session_uid: str) -> dict[str, JobState]:
    jobs = await kube.batch.list_namespaced_job(
        namespace, label_selector=f"{LABEL_SESSION_UID}={session_uid}"
    )
    return {j.metadata.name: job_state(j) for j in jobs.items}


async def delete_jobs(
    kube: Kube, namespace: str, session_uid: str, experiment: str | None = None, finished_too: bool = False
) -> list[str]:
    """Delete the session's unfinished Jobs and their pods: a pending inject must never run later.

    Returns the unfinished ones. Foreground: such a Job stays visible until its pods are gone, so
    a caller that sees no unfinished Job left knows no inject is still running. Finished Jobs are
    kept for their logs (ttlSecondsAfterFinished) unless `finished_too` (the session is going).
    """
    selector = f"{LABEL_SESSION_UID}={session_uid}"
    if experiment is not None:
        selector += f",{LABEL_EXPERIMENT}={experiment}"
    jobs = await kube.batch.list_namespaced_job(namespace, label_selector=selector)
    unfinished = []
    for job in jobs.items:
        active = job_state(job).outcome is JobOutcome.ACTIVE
        if not active and not finished_too:
            continue
        try:
            await kube.batch.delete_namespaced_job(
                job.metadata.name,
                namespace,
                propagation_policy="Foreground" if active else "Background",
                grace_period_seconds=0,
            )
        except ApiException as exc:
            if exc.status != 404:
                raise
        if active:
            unfinished.append(job.metadata.name)
    return unfinished


# --- faults: what exists, and restoring it ----------------------------------------------------


@dataclass
class Restored:
    policies: list[str] = field(default_factory=list)
    nodes: list[str] = field(default_factory=list)
    # Nodes the operator may not patch (its role lacks nodes/patch): a recover Job must do it.
    forbidden: list[str] = field(default_factory=list)

    @property
    def anything(self) -> bool:
        return bool(self.policies or self.nodes)

    def describe(self) -> str:
        parts = []
        if self.policies:
            parts.append(f"deleted NetworkPolicy {', '.join(self.policies)}")
        if self.nodes:
            parts.append(f"uncordoned node {', '.join(self.nodes)}")
        if self.forbidden:
            parts.append(f"could not uncordon {', '.join(self.forbidden)} (no nodes/patch permission)")
        return "; ".join(parts) or "nothing was in place"


def _owner_matches(owner: str | None, namespace: str, session: str, experiment: str | None) -> bool:
    if owner is None:
        return False
    if experiment is not None:
        return owner == cordon_owner(namespace, session, experiment)
    return owner.startswith(f"{namespace}/{session}/")


async def cordoned_nodes(kube: Kube) -> list[Any]:
    nodes = await kube.core.list_node(label_selector=f"{LABEL_CORDONED}=true")
    return list(nodes.items)


async def present_faults(kube: Kube, namespace: str, session: str, with_nodes: bool) -> frozenset[str]:
    """Experiments of the session whose fault objects exist right now."""
    found: set[str] = set()
    policies = await kube.networking.list_namespaced_network_policy(
        namespace, label_selector=f"{LABEL_SESSION}={label_value(session)}"
    )
    for policy in policies.items:
        experiment = (policy.metadata.labels or {}).get(LABEL_EXPERIMENT)
        if experiment:
            found.add(experiment)
    if with_nodes:
        prefix = f"{namespace}/{session}/"
        for node in await cordoned_nodes(kube):
            owner = (node.metadata.annotations or {}).get(ANNOTATION_CORDONED_BY) or ""
            if owner.startswith(prefix):
                found.add(owner[len(prefix) :])
    return frozenset(found)


async def restore(kube: Kube, namespace: str, session: str, experiment: str | None = None) -> Restored:
    """Undo the faults of one experiment (or of the whole session) from the operator. Idempotent."""
    out = Restored()
    selector = f"{LABEL_SESSION}={label_value(session)}"
    if experiment is not None:
        selector += f",{LABEL_EXPERIMENT}={experiment}"
    policies = await kube.networking.list_namespaced_network_policy(namespace, label_selector=selector)
    for policy in policies.items:
        await _delete_policy(kube, policy.metadata.name, namespace)
        out.policies.append(policy.metadata.name)
    for node in await cordoned_nodes(kube):
        owner = (node.metadata.annotations or {}).get(ANNOTATION_CORDONED_BY)
        if _owner_matches(owner, namespace, session, experiment):
            await _uncordon(kube, node.metadata.name, out)
    return out


async def _delete_policy(kube: Kube, name: str, namespace: str) -> None:
    try:
        await kube.networking.delete_namespaced_network_policy(name, namespace)
    except ApiException as exc:
        if exc.status != 404:  # already gone: restored all the same
            raise


async def _uncordon(kube: Kube, node: str, out: Restored) -> None:
    """Uncordon a node heady cordoned, noting it in `out` (or as forbidden without RBAC on nodes)."""
    try:
        await kube.core.patch_node(
            node,
            uncordon_patch(),
            _content_type=MERGE_PATCH,  # type: ignore[call-arg]
        )
    except ApiException as exc:
        if exc.status == 403:
            out.forbidden.append(node)
            return
        if exc.status != 404:
            raise
    out.nodes.append(node)


async def restore_expired(kube: Kube, now: datetime, grace_seconds: float, instance: str) -> Restored:
    """Undo every chaos fault whose heady.io/expires-at passed `grace_seconds` ago.

    Only faults of sessions this operator instance runs (heady.io/chaos-instance == `instance`),
    or of sessions that no longer exist: another instance's faults are that instance's to undo.
    """
    out = Restored()
    owners: dict[tuple[str, str], bool] = {}

    async def ours(namespace: str, session: str) -> bool:
        if (namespace, session) not in owners:
            owners[(namespace, session)] = await _session_owned(kube, namespace, session, instance)
        return owners[(namespace, session)]

    policies = await kube.networking.list_network_policy_for_all_namespaces(label_selector=LABEL_SESSION)
    for policy in policies.items:
        meta = policy.metadata
        if not fault_expired((meta.annotations or {}).get(ANNOTATION_EXPIRES_AT), now, grace_seconds):
            continue
        _, _, session = ((meta.annotations or {}).get(ANNOTATION_SESSION_REF) or "").partition("/")
        if not await ours(meta.namespace, session or (meta.labels or {}).get(LABEL_SESSION, "")):
            continue
        await _delete_policy(kube, meta.name, meta.namespace)
        out.policies.append(f"{meta.namespace}/{meta.name}")
    for node in await cordoned_nodes(kube):
        annotations = node.metadata.annotations or {}
        if not fault_expired(annotations.get(ANNOTATION_EXPIRES_AT), now, grace_seconds):
            continue
        parts = (annotations.get(ANNOTATION_CORDONED_BY) or "").split("/")
        if len(parts) == 3 and not await ours(parts[0], parts[1]):
            continue
        await _uncordon(kube, node.metadata.name, out)
    return out


async def _session_owned(kube: Kube, namespace: str, session: str, instance: str) -> bool:
    """Whether this instance runs the session's chaos; True for a session that is gone (an orphan)."""
    try:
        obj = await kube.custom.get_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, session)
    except ApiException as exc:
        if exc.status == 404:
            return True
        raise
    labels = (obj.get("metadata") or {}).get("labels") or {}
    return bool(labels.get(INSTANCE_LABEL, "") == instance)


async def sessions_with_faults(kube: Kube) -> set[tuple[str, str]]:
    """(namespace, session) of every chaos fault object in the cluster, for the start-up sweep."""
    out: set[tuple[str, str]] = set()
    policies = await kube.networking.list_network_policy_for_all_namespaces(label_selector=LABEL_SESSION)
    for policy in policies.items:
        ref = (policy.metadata.annotations or {}).get(ANNOTATION_SESSION_REF) or ""
        _, _, session = ref.partition("/")
        out.add((policy.metadata.namespace, session or policy.metadata.labels[LABEL_SESSION]))
    for node in await cordoned_nodes(kube):
        owner = (node.metadata.annotations or {}).get(ANNOTATION_CORDONED_BY) or ""
        parts = owner.split("/")
        if len(parts) == 3:
            out.add((parts[0], parts[1]))
    return out


async def session_exists(kube: Kube, namespace: str, session: str) -> bool:
    try:
        await kube.custom.get_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, session)
    except ApiException as exc:
        if exc.status == 404:
            return False
        raise
    return True


# --- what the planner is told ----------------------------------------------------------------


async def namespace_enabled(kube: Kube, namespace: str) -> bool:
    try:
        ns = await kube.core.read_namespace(namespace)
    except ApiException as exc:
        if exc.status == 404:
            return False
        raise
    return bool((ns.metadata.labels or {}).get(NAMESPACE_LABEL) == NAMESPACE_LABEL_VALUE)


async def kill_switch_engaged(kube: Kube, settings: Settings) -> bool:
    """True when chaos_enabled is off or the kill-switch ConfigMap says enabled: "false"."""
    if not settings.chaos_enabled:
        return True
    try:
        cm = await kube.core.read_namespaced_config_map(
            settings.chaos_killswitch_configmap, settings.operator_namespace
        )
    except ApiException as exc:
        if exc.status == 404:
            return False
        raise
    value = str((cm.data or {}).get("enabled", "true")).strip().lower()
    return value in ("false", "0", "no", "off")


@dataclass(frozen=True)
class TargetPods:
    selector: str
    # Running, not terminating pods.
    running: list[Any]
    # The workload's replicas and readyReplicas; None for a bare selector.
    replicas: int | None = None
    ready_replicas: int | None = None


async def _workload_of(kube: Kube, namespace: str, service: str) -> Any | None:
    try:
        hs = await kube.custom.get_namespaced_custom_object(
            GROUP, VERSION, namespace, "headyservices", service
        )
    except ApiException as exc:
        if exc.status == 404:
            return None
        raise
    workload = (hs.get("spec") or {}).get("workload") or {}
    name = workload.get("name")
    if not name:
        return None
    try:
        if workload.get("kind") == "StatefulSet":
            return await kube.apps.read_namespaced_stateful_set(name, namespace)
        return await kube.apps.read_namespaced_deployment(name, namespace)
    except ApiException as exc:
        if exc.status == 404:
            return None
        raise


def _pod_ready(pod: Any) -> bool:
    if pod.metadata.deletion_timestamp is not None or pod.status is None:
        return False
    return any(c.type == "Ready" and c.status == "True" for c in pod.status.conditions or [])


async def target_pods(kube: Kube, request: FaultRequest) -> TargetPods | None:
    """The pods an experiment aims at as the operator sees them (None: no pod target)."""
    replicas = ready = None
    if request.service:
        workload = await _workload_of(kube, request.namespace, request.service)
        if workload is None:
            return None
        sel = kube.api.sanitize_for_serialization(workload.spec.selector) or {}
        selector = label_selector(sel.get("matchLabels") or {}, sel.get("matchExpressions") or [])
        replicas = workload.spec.replicas if workload.spec.replicas is not None else 1
        ready = (workload.status.ready_replicas or 0) if workload.status else 0
        if workload.status and (workload.status.observed_generation or 0) < (
            workload.metadata.generation or 0
        ):
            ready = 0  # the controller has not caught up with the spec yet
    elif request.selector:
        selector = label_selector(request.selector)
    else:
        return None
    pods = await kube.core.list_namespaced_pod(request.namespace, label_selector=selector)
    running = [
        p
        for p in pods.items
        if p.status and p.status.phase == "Running" and p.metadata.deletion_timestamp is None
    ]
    return TargetPods(selector, sorted(running, key=lambda p: p.metadata.name), replicas, ready)


async def target_ready(kube: Kube, request: FaultRequest, expected_pods: int | None) -> bool:
    """Ready again: readyReplicas == replicas, and as many live Ready pods (not ones being killed).

    Counting the pods as well closes the gap between a pod being deleted and its workload's
    status noticing, in which readyReplicas still shows the old number.
    """
    if request.kind is ChaosKind.ZONE_OUTAGE and not (request.service or request.selector):
        return await _namespace_workloads_ready(kube, request.namespace)
    target = await target_pods(kube, request)
    if target is None:
        return False
    live_ready = sum(1 for p in target.running if _pod_ready(p))
    if target.replicas is not None:
        return target.ready_replicas == target.replicas and live_ready >= target.replicas
    return live_ready >= max(1, expected_pods or 1)


async def _namespace_workloads_ready(kube: Kube, namespace: str) -> bool:
    deployments = await kube.apps.list_namespaced_deployment(namespace)
    statefulsets = await kube.apps.list_namespaced_stateful_set(namespace)
    workloads: list[Any] = [*deployments.items, *statefulsets.items]
    for w in workloads:
        want = w.spec.replicas if w.spec.replicas is not None else 1
        if ((w.status.ready_replicas or 0) if w.status else 0) != want:
            return False
    return True


@dataclass(frozen=True)
class Preview:
    targets: list[str]
    candidates: int

    def describe(self, request: FaultRequest) -> str:
        verb = {
            ChaosKind.POD_TERMINATION: "terminate",
            ChaosKind.NETWORK_PARTITION: "cut off the network of",
            ChaosKind.API_FAILURE: "deny ingress to",
            ChaosKind.ZONE_OUTAGE: "cordon",
        }[request.kind]
        noun = "node(s)" if request.kind is ChaosKind.ZONE_OUTAGE else "pod(s)"
        return (
            f"{verb} {len(self.targets)} of {self.candidates} {noun} "
            f"({', '.join(self.targets) or 'none'}) for {request.duration_seconds}s"
        )


async def preview(kube: Kube, request: FaultRequest) -> Preview:
    """What the command would hit, computed the same way (same seed, same selection)."""
    if request.kind is ChaosKind.ZONE_OUTAGE:
        nodes = await kube.core.list_node(label_selector=f"{ZONE_LABEL}={request.zone}")
        names = sorted(n.metadata.name for n in nodes.items)
        return Preview(names, len(names))
    target = await target_pods(kube, request)
    if target is None:
        return Preview([], 0)
    names = [p.metadata.name for p in target.running]
    if request.kind is ChaosKind.API_FAILURE:
        return Preview(names, len(names))
    return Preview(select_targets(names, request.mode, request.value, request.seed), len(names))


# --- the session's status --------------------------------------------------------------------


async def patch_session_status(
    kube: Kube,
    namespace: str,
    name: str,
    status: dict[str, Any],
    resource_version: str | None = None,
) -> dict[str, Any]:
    """Merge-patch status; with resource_version the write fails (409) if anyone wrote since.

    Conditions are a list, which a merge patch replaces whole: they are written read-modify-write
    under the resourceVersion they were read at, so another handler's condition is never lost.
    """
    body: dict[str, Any] = {"status": status}
    if resource_version is not None:
        body["metadata"] = {"resourceVersion": resource_version}
    result: dict[str, Any] = await kube.custom.patch_namespaced_custom_object_status(
        GROUP,
        VERSION,
        namespace,
        PLURAL,
        name,
        body,
        _content_type=MERGE_PATCH,  # type: ignore[call-arg]
    )
    return result


async def get_session(kube: Kube, namespace: str, name: str) -> dict[str, Any] | None:
    try:
        obj: dict[str, Any] = await kube.custom.get_namespaced_custom_object(
            GROUP, VERSION, namespace, PLURAL, name
        )
    except ApiException as exc:
        if exc.status == 404:
            return None
        raise
    return obj


# --- the inline executor ---------------------------------------------------------------------


class InlineExecutor:
    """Runs `heady-chaos` in the operator process (HEADY_CHAOS_EXECUTOR=inline) instead of a Job.

    Outcomes are kept by Job name, so the planner sees the same JobState it would see from a Job,
    and a repeated inject (a status write lost after the run) is never run twice.
    """

    def __init__(self) -> None:
        self.outcomes: dict[str, JobState] = {}
        # Runs in progress: a finalizer must not restore while an inject may still land after it.
        self.running: set[str] = set()
        self._chaos: Any = None

    def _client(self) -> Any:
        if self._chaos is None:
            # Imported here: the synchronous client is only needed by this executor.
            from heady_operator.chaos.cli import connect
            from heady_operator.chaos.faults import Chaos

            self._chaos = Chaos(connect())
        return self._chaos

    async def run(self, action: JobAction, request: FaultRequest, name: str) -> JobState:
        if name in self.outcomes:
            return self.outcomes[name]
        from heady_operator.chaos.cli import run

        self.running.add(name)
        try:
            await asyncio.to_thread(run, self._client(), action, request)
        except Exception as exc:  # an inline run (Refused, ApiException, ...) must not take the operator down
            log.warning(
                "inline chaos %s %s/%s failed: %s", action.value, request.namespace, request.experiment, exc
            )
            state = JobState(JobOutcome.FAILED, utcnow(), str(exc))
        else:
            # Like a Job's completionTime: the fault is in place from here on.
            state = JobState(JobOutcome.SUCCEEDED, utcnow())
        finally:
            self.running.discard(name)
        self.outcomes[name] = state
        return state
