"""The faults themselves, against the Kubernetes API with the synchronous official client.

What each kind does (and what `recover` undoes):

- pod_termination: deletes the selected pods at once (grace period 0, like a crash). Nothing to
  undo: the workload's controller replaces them, and that replacement is what the verdict times.
- network_partition: a NetworkPolicy that selects the targets and allows nothing (policyTypes
  Ingress and Egress, no rules): they can neither be reached nor reach anything, DNS included.
  NetworkPolicies select by label, so a subset of a Deployment's pods (which share every label)
  cannot be cut off alone: modes other than `all` need pods that carry
  statefulset.kubernetes.io/pod-name (StatefulSets), or the command refuses rather than cut off
  more than was asked. Recover deletes the policy.
- api_failure: the HeadyService's API stops answering: a NetworkPolicy denying all *ingress* to
  its workload's pods. Chosen over scaling the workload down or failing readiness because it
  touches neither the workload nor its pods (the chaos ServiceAccount cannot change either), its
  undo is a single delete, and the pods keep running and reaching their own dependencies, which is
  how a hung or unreachable API looks to its callers. Needs a CNI that enforces NetworkPolicies.
  Recover deletes the policy.
- zone_outage: cordons every node labelled topology.kubernetes.io/zone=<zone> (annotated
  heady.io/cordoned-by=<namespace>/<session>/<experiment>, so recovery uncordons only what it
  cordoned; a node someone else had cordoned is left alone) and evicts, through the Eviction API
  so PodDisruptionBudgets are honoured, the pods *of the session's namespace* on them (narrowed
  to the service or selector when one is given): other namespaces are not the experiment's to
  disrupt. Refused when it would leave no schedulable Ready node. Recover uncordons.

Safety: `inject` refuses a namespace not labelled heady.io/chaos=enabled; everything created or
changed carries heady.io/session and heady.io/experiment (nodes: the annotation above), which is
all `recover` looks for, so recovery is exact and can run any number of times. `--dry-run` reads
the same objects and reports what it would do without changing anything.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from kubernetes import client
from kubernetes.client.exceptions import ApiException

from heady_operator.models.arena import ChaosKind
from heady_operator.models.common import GROUP, VERSION
from heady_operator.planning.chaos import (
    ANNOTATION_CORDONED_BY,
    ANNOTATION_EXPIRES_AT,
    ANNOTATION_SESSION_REF,
    LABEL_CORDONED,
    LABEL_EXPERIMENT,
    LABEL_SESSION,
    NAMESPACE_LABEL,
    NAMESPACE_LABEL_VALUE,
    FaultRequest,
    cordon_owner,
    cordon_patch,
    fault_labels,
    fault_object_name,
    label_selector,
    label_value,
    select_targets,
    uncordon_patch,
)

ZONE_LABEL = "topology.kubernetes.io/zone"
STATEFULSET_POD_LABEL = "statefulset.kubernetes.io/pod-name"
MERGE_PATCH = "application/merge-patch+json"


class Refused(Exception):
    """The command will not do this: unsafe, or nothing it could sensibly do. Exit status 2."""


@dataclass
class Report:
    action: str
    request: FaultRequest
    targets: list[str] = field(default_factory=list)
    changed: list[str] = field(default_factory=list)
    lines: list[str] = field(default_factory=list)

    def say(self, line: str) -> None:
        self.lines.append(("[dry-run] would " if self.request.dry_run else "") + line)

    def summary(self) -> dict[str, Any]:
        return {
            "action": self.action,
            "kind": self.request.kind.value,
            "namespace": self.request.namespace,
            "session": self.request.session,
            "experiment": self.request.experiment,
            "dryRun": self.request.dry_run,
            "targets": self.targets,
            "changed": self.changed,
        }


@dataclass(frozen=True)
class Target:
    """The pods an experiment aims at: a LabelSelector (as the API spells it) and its owner."""

    selector: dict[str, Any]
    workload: str

    @property
    def selector_string(self) -> str:
        return label_selector(
            self.selector.get("matchLabels") or {}, self.selector.get("matchExpressions") or []
        )


def _utcnow() -> datetime:
    return datetime.now(UTC)


def _iso(ts: datetime) -> str:
    return ts.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _ignore_missing(exc: ApiException) -> None:
    if exc.status != 404:
        raise exc


class Chaos:
    """inject / recover on one cluster; `now` is injectable so expiry annotations are testable."""

    def __init__(self, api: client.ApiClient, now: Callable[[], datetime] = _utcnow) -> None:
        # Typed as Any: the generated models make every field Optional, and a pod from a list
        # call always has metadata; asserting that on every access would only add noise.
        self.api: Any = api
        self.core: Any = client.CoreV1Api(api)
        self.apps: Any = client.AppsV1Api(api)
        self.networking: Any = client.NetworkingV1Api(api)
        self.custom: Any = client.CustomObjectsApi(api)
        self.now = now

    # --- entry points ----------------------------------------------------------------------

    def inject(self, req: FaultRequest) -> Report:
        report = Report("inject", req)
        self.check_namespace(req.namespace)
        if req.kind is ChaosKind.POD_TERMINATION:
            self._terminate(req, report)
        elif req.kind is ChaosKind.NETWORK_PARTITION:
            self._partition(req, report)
        elif req.kind is ChaosKind.API_FAILURE:
            self._api_failure(req, report)
        else:
            self._zone_outage(req, report)
        return report

    def recover(self, req: FaultRequest) -> Report:
        """Undo every fault object of (namespace, session, experiment), whatever its kind."""
        report = Report("recover", req)
        selector = f"{LABEL_SESSION}={label_value(req.session)},{LABEL_EXPERIMENT}={req.experiment}"
        policies = self.networking.list_namespaced_network_policy(req.namespace, label_selector=selector)
        for policy in policies.items:
            name = policy.metadata.name
            report.say(f"delete NetworkPolicy {req.namespace}/{name}")
            if not req.dry_run:
                try:
                    self.networking.delete_namespaced_network_policy(name, req.namespace)
                except ApiException as exc:
                    _ignore_missing(exc)
            report.changed.append(f"networkpolicy/{req.namespace}/{name}")
        owner = cordon_owner(req.namespace, req.session, req.experiment)
        for node in self.core.list_node(label_selector=f"{LABEL_CORDONED}=true").items:
            if (node.metadata.annotations or {}).get(ANNOTATION_CORDONED_BY) != owner:
                continue
            report.say(f"uncordon node {node.metadata.name}")
            if not req.dry_run:
                self.core.patch_node(node.metadata.name, uncordon_patch(), _content_type=MERGE_PATCH)
            report.changed.append(f"node/{node.metadata.name}")
        if not report.changed:
            report.lines.append(
                "nothing to undo"
                + (
                    " (terminated pods are replaced by their controllers)"
                    if req.kind is ChaosKind.POD_TERMINATION
                    else ""
                )
            )
        return report

    # --- safety and targets ----------------------------------------------------------------

    def check_namespace(self, namespace: str) -> None:
        try:
            ns = self.core.read_namespace(namespace)
        except ApiException as exc:
            if exc.status == 404:
                raise Refused(f"namespace {namespace} does not exist") from exc
            raise
        labels = ns.metadata.labels or {}
        if labels.get(NAMESPACE_LABEL) != NAMESPACE_LABEL_VALUE:
            raise Refused(
                f"refusing: namespace {namespace} is not labelled {NAMESPACE_LABEL}={NAMESPACE_LABEL_VALUE} "
                f"(opt in with: kubectl label namespace {namespace} {NAMESPACE_LABEL}={NAMESPACE_LABEL_VALUE})"
            )

    def resolve(self, req: FaultRequest) -> Target | None:
        if req.service:
            return self.service_target(req.namespace, req.service)
        if req.selector:
            return Target({"matchLabels": dict(req.selector)}, f"pods {label_selector(req.selector)}")
        return None

    def service_target(self, namespace: str, service: str) -> Target:
        try:
            hs = self.custom.get_namespaced_custom_object(GROUP, VERSION, namespace, "headyservices", service)
        except ApiException as exc:
            if exc.status == 404:
                raise Refused(f"HeadyService {namespace}/{service} does not exist") from exc
            raise
        workload = (hs.get("spec") or {}).get("workload") or {}
        kind, name = workload.get("kind", "Deployment"), workload.get("name")
        if not name:
            raise Refused(f"HeadyService {namespace}/{service} names no workload")
        try:
            if kind == "StatefulSet":
                obj = self.apps.read_namespaced_stateful_set(name, namespace)
            else:
                obj = self.apps.read_namespaced_deployment(name, namespace)
        except ApiException as exc:
            if exc.status == 404:
                raise Refused(f"{kind} {namespace}/{name} of HeadyService {service} does not exist") from exc
            raise
        selector = self.api.sanitize_for_serialization(obj.spec.selector) or {}
        if not selector.get("matchLabels") and not selector.get("matchExpressions"):
            raise Refused(f"{kind} {namespace}/{name} has an empty selector; refusing to target every pod")
        return Target(selector, f"{kind}/{name}")

    def candidates(self, namespace: str, target: Target) -> list[Any]:
        pods = self.core.list_namespaced_pod(namespace, label_selector=target.selector_string).items
        return sorted(
            (p for p in pods if p.status.phase == "Running" and p.metadata.deletion_timestamp is None),
            key=lambda p: p.metadata.name,
        )

    def _pick(self, req: FaultRequest, report: Report) -> tuple[Target, list[Any], list[Any]]:
        target = self.resolve(req)
        if target is None:
            raise Refused(f"{req.kind.value} needs --service or --selector")
        pods = self.candidates(req.namespace, target)
        if not pods:
            raise Refused(f"no running pod of {target.workload} in {req.namespace} to target")
        names = set(select_targets((p.metadata.name for p in pods), req.mode, req.value, req.seed))
        chosen = [p for p in pods if p.metadata.name in names]
        report.targets = [p.metadata.name for p in chosen]
        return target, pods, chosen

    def _expires_at(self, req: FaultRequest) -> str:
        return _iso(self.now() + timedelta(seconds=req.duration_seconds))

    # --- the kinds -------------------------------------------------------------------------

    def _terminate(self, req: FaultRequest, report: Report) -> None:
        _, pods, chosen = self._pick(req, report)
        for pod in chosen:
            name = pod.metadata.name
            report.say(f"delete pod {req.namespace}/{name} (grace period 0), {len(chosen)} of {len(pods)}")
            if not req.dry_run:
                try:
                    self.core.delete_namespaced_pod(name, req.namespace, grace_period_seconds=0)
                except ApiException as exc:
                    _ignore_missing(exc)
            report.changed.append(f"pod/{req.namespace}/{name}")

    def _partition(self, req: FaultRequest, report: Report) -> None:
        target, pods, chosen = self._pick(req, report)
        selector: dict[str, Any] = {k: v for k, v in target.selector.items() if v}
        if len(chosen) < len(pods):
            names = [p.metadata.name for p in chosen]
            if not all(STATEFULSET_POD_LABEL in (p.metadata.labels or {}) for p in chosen):
                raise Refused(
                    f"network_partition mode {req.mode.value} picked {len(chosen)} of {len(pods)} pods of "
                    f"{target.workload}, but NetworkPolicies select by label and these pods share theirs: "
                    "use mode all, or target a StatefulSet"
                )
            selector = {
                **selector,
                "matchExpressions": [
                    *(selector.get("matchExpressions") or []),
                    {"key": STATEFULSET_POD_LABEL, "operator": "In", "values": names},
                ],
            }
        policy = self._policy(req, selector, ["Ingress", "Egress"], report.targets)
        self._create_policy(req, policy, report, "deny all traffic to and from")

    def _api_failure(self, req: FaultRequest, report: Report) -> None:
        if not req.service:
            raise Refused("api_failure needs --service (the HeadyService whose API fails)")
        target = self.service_target(req.namespace, req.service)
        pods = self.candidates(req.namespace, target)
        report.targets = [p.metadata.name for p in pods]
        selector = {k: v for k, v in target.selector.items() if v}
        policy = self._policy(req, selector, ["Ingress"], report.targets)
        self._create_policy(req, policy, report, f"deny all ingress (HeadyService {req.service}) to")

    def _policy(
        self, req: FaultRequest, pod_selector: Mapping[str, Any], policy_types: list[str], targets: list[str]
    ) -> dict[str, Any]:
        return {
            "apiVersion": "networking.k8s.io/v1",
            "kind": "NetworkPolicy",
            "metadata": {
                "name": fault_object_name(req.session, req.experiment),
                "namespace": req.namespace,
                "labels": fault_labels(req.session, req.experiment, req.kind),
                "annotations": {
                    ANNOTATION_SESSION_REF: f"{req.namespace}/{req.session}",
                    ANNOTATION_EXPIRES_AT: self._expires_at(req),
                    "heady.io/targets": ",".join(targets)[:4000],
                },
            },
            # No ingress/egress rules with these policyTypes: nothing is allowed.
            "spec": {"podSelector": dict(pod_selector), "policyTypes": policy_types},
        }

    def _create_policy(self, req: FaultRequest, policy: dict[str, Any], report: Report, what: str) -> None:
        name = policy["metadata"]["name"]
        report.say(
            f"create NetworkPolicy {req.namespace}/{name}: {what} {len(report.targets)} pod(s) "
            f"({', '.join(report.targets) or 'none running now'}) until {policy['metadata']['annotations'][ANNOTATION_EXPIRES_AT]}"
        )
        report.changed.append(f"networkpolicy/{req.namespace}/{name}")
        if req.dry_run:
            return
        try:
            self.networking.create_namespaced_network_policy(req.namespace, policy)
        except ApiException as exc:
            if exc.status != 409:
                raise
            existing = self.networking.read_namespaced_network_policy(name, req.namespace)
            labels = existing.metadata.labels or {}
            if (
                labels.get(LABEL_SESSION) != label_value(req.session)
                or labels.get(LABEL_EXPERIMENT) != req.experiment
            ):
                raise Refused(
                    f"NetworkPolicy {req.namespace}/{name} exists and is not this experiment's"
                ) from exc
            # Injected before (a retried Job): make it match this run, which is idempotent.
            self.networking.patch_namespaced_network_policy(
                name,
                req.namespace,
                {"metadata": policy["metadata"], "spec": policy["spec"]},
                _content_type=MERGE_PATCH,
            )

    def _zone_outage(self, req: FaultRequest, report: Report) -> None:
        zone = req.zone
        if not zone:
            raise Refused("zone_outage needs --zone")
        nodes = self.core.list_node().items
        in_zone = sorted(
            (n for n in nodes if (n.metadata.labels or {}).get(ZONE_LABEL) == zone),
            key=lambda n: n.metadata.name,
        )
        if not in_zone:
            raise Refused(f"no node is labelled {ZONE_LABEL}={zone}")
        zone_names = {n.metadata.name for n in in_zone}
        remaining = [
            n
            for n in nodes
            if n.metadata.name not in zone_names and not n.spec.unschedulable and _node_ready(n)
        ]
        if not remaining:
            raise Refused(f"cordoning zone {zone} would leave no schedulable Ready node; refusing")
        owner = cordon_owner(req.namespace, req.session, req.experiment)
        cordoned: list[str] = []
        for node in in_zone:
            name = node.metadata.name
            by = (node.metadata.annotations or {}).get(ANNOTATION_CORDONED_BY)
            if node.spec.unschedulable and by != owner:
                report.lines.append(f"node {name} was already cordoned ({by or 'not by heady'}); left alone")
                continue
            if by is not None and by != owner:
                report.lines.append(f"node {name} is marked cordoned-by {by}; left alone")
                continue
            report.say(f"cordon node {name} (zone {zone}) until {self._expires_at(req)}")
            if not req.dry_run:
                self.core.patch_node(
                    name, cordon_patch(owner, self._expires_at(req)), _content_type=MERGE_PATCH
                )
            report.changed.append(f"node/{name}")
            cordoned.append(name)
        report.targets = cordoned
        target = self.resolve(req)
        wanted = None
        if target is not None:
            wanted = {p.metadata.name for p in self.candidates(req.namespace, target)}
        for name in cordoned:
            pods = self.core.list_namespaced_pod(req.namespace, field_selector=f"spec.nodeName={name}").items
            for pod in sorted(pods, key=lambda p: p.metadata.name):
                if pod.metadata.deletion_timestamp is not None or (
                    wanted is not None and pod.metadata.name not in wanted
                ):
                    continue
                self._evict(req, pod.metadata.name, name, report)

    def _evict(self, req: FaultRequest, pod: str, node: str, report: Report) -> None:
        report.say(f"evict pod {req.namespace}/{pod} from node {node}")
        if req.dry_run:
            report.changed.append(f"pod/{req.namespace}/{pod}")
            return
        body = client.V1Eviction(
            api_version="policy/v1",
            kind="Eviction",
            metadata=client.V1ObjectMeta(name=pod, namespace=req.namespace),
        )
        try:
            self.core.create_namespaced_pod_eviction(pod, req.namespace, body)
        except ApiException as exc:
            if exc.status == 429:
                report.lines.append(f"eviction of {req.namespace}/{pod} blocked by a PodDisruptionBudget")
                return
            _ignore_missing(exc)
            return
        report.changed.append(f"pod/{req.namespace}/{pod}")


def _node_ready(node: Any) -> bool:
    return any(c.type == "Ready" and c.status == "True" for c in (node.status.conditions or []))
