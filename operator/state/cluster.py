"""What the operator knows of the cluster for escalation, kept current by deltas.

Every watch event (informers for pods, nodes, ReplicaSets, Deployments, StatefulSets and
AttentionSignals; kopf for HeadyServices), every ingested focus event and every accepted
resize lands here as one O(1) update:

- slim records (a pod is its planner record plus a resourceVersion and its owner);
- indexes: pods by workload and by ReplicaSet, workload -> HeadyService, and the planner's own
  (pods by service and node, room used per node, one deadline heap);
- the lifetime of every signal, whatever path it came by (object, Redis, HTTP, predictor);
- what the reporter has to say: services and signals whose status may have changed.

Which HeadyService a pod belongs to follows the pod's owner chain (ReplicaSet -> Deployment,
or StatefulSet), never label selectors: two workloads with overlapping selectors keep their
own pods.
"""

from __future__ import annotations

import asyncio
import heapq
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any

from pydantic import ValidationError

from heady_operator import metrics
from heady_operator.config import Settings
from heady_operator.kube import objects
from heady_operator.kube.convert import amount, pod_level
from heady_operator.kube.resize import FIELD_MANAGER
from heady_operator.models.attention import AttentionSignalSpec
from heady_operator.models.common import parse_time
from heady_operator.models.headyservice import HeadyServiceSpec
from heady_operator.planning.incremental import IncrementalPlanner, interned
from heady_operator.planning.levels import (
    PREDICTOR,
    ContainerResources,
    Memory,
    Node,
    Pod,
    PodKey,
    QoS,
    Service,
    ServiceKey,
    Signal,
    qos_of,
)
from heady_operator.planning.prediction import TransitionModel, known_user
from heady_operator.planning.recommend import Recommendation, Tuning, learned_cooldown, recommend
from heady_operator.planning.recurrence import MAX_DAYS, Due, Judge, target_of, user_key
from heady_operator.planning.vpa import (
    TEMPLATE,
    ContainerRecommendation,
    FollowedPeak,
    Vpa,
    acts_itself,
    conflict_message,
    follow,
    followed_from_status,
    peak_status,
    recommended_peak,
    targets,
)
from heady_operator.planning.world import explicit_peaks, service_model
from heady_operator.state.scope import Scope, parse_selector

log = logging.getLogger(__name__)

WorkloadKey = tuple[str, str, str]  # (namespace, kind, name)
SignalKey = tuple[str, str]
UNOWNED: ServiceKey = ("", "")  # pods no HeadyService manages: room taken on their node
# Conditions the escalation reporter writes on a HeadyService; others belong to other loops.
OWN_CONDITIONS = frozenset({"Ready", "Progressing", "Degraded", "TunnelRouted", "Conflict", "PeakSource"})
VPA_CRD = "verticalpodautoscalers.autoscaling.k8s.io"


@dataclass(slots=True)
class ObjectRef:
    """Enough of an object to post Events about it and to patch its status."""

    api_version: str
    kind: str
    namespace: str
    name: str
    uid: str = ""
    generation: int | None = None
    resource_version: str = ""

    def body(self) -> dict[str, Any]:
        return {
            "apiVersion": self.api_version,
            "kind": self.kind,
            "metadata": {
                "namespace": self.namespace,
                "name": self.name,
                "uid": self.uid,
                "resourceVersion": self.resource_version,
            },
        }


@dataclass(slots=True)
class ServiceEntry:
    ref: ObjectRef
    spec: HeadyServiceSpec | None
    error: str | None
    annotations: dict[str, str]
    created: datetime | None
    status: dict[str, Any]  # as last read from the object or written by the reporter
    # A VPA that resizes the same pods itself: heady leaves them alone and says why.
    conflict: str | None = None
    # With spec.peakFrom: the peak in use (status.peak) and the PeakSource condition.
    peak_report: tuple[dict[str, Any], tuple[bool, str, str]] | None = None


@dataclass(slots=True)
class PodEntry:
    resource_version: int
    workload: WorkloadKey | None
    replica_set: str | None
    resize: tuple[str, str] | None
    record: Pod
    restarts: int = 0


@dataclass(slots=True)
class SignalEntry:
    ref: ObjectRef | None  # None: ingested or predicted, no object to report on
    signal: Signal | None
    error: str | None
    received: float  # monotonic: latency is measured from here
    path: str
    conditions: list[dict[str, Any]] = field(default_factory=list)
    spec: dict[str, Any] = field(default_factory=dict)
    reported: str = ""  # the state its status says (so a restart rewrites nothing)


class ClusterState:
    def __init__(
        self,
        settings: Settings,
        planner: IncrementalPlanner,
        clock: Callable[[], datetime],
        model: TransitionModel | None = None,
        monotonic: Callable[[], float] = time.monotonic,
        changed: asyncio.Event | None = None,
    ) -> None:
        self.settings = settings
        self.planner = planner
        self.clock = clock
        self.monotonic = monotonic
        self.model = model or TransitionModel()
        # Set on every change that may need a plan; the escalation loop waits on it.
        self.changed = changed or asyncio.Event()
        self.services: dict[ServiceKey, ServiceEntry] = {}
        self.templates: dict[WorkloadKey, tuple[ContainerResources, ...]] = {}
        self.deployment_of_rs: dict[tuple[str, str], str] = {}
        self.pods: dict[PodKey, PodEntry] = {}
        self.signals: dict[SignalKey, SignalEntry] = {}
        self._pods_of_workload: dict[WorkloadKey, set[PodKey]] = {}
        self._pods_of_rs: dict[tuple[str, str], set[PodKey]] = {}
        self._service_of_workload: dict[WorkloadKey, ServiceKey] = {}
        self.infeasible: dict[PodKey, tuple[ContainerResources, ...]] = {}
        # What heady last set on each pod (set by the loop as it sends), and pods someone else
        # resized since (with who), for the loop to back off from.
        self.written: dict[PodKey, tuple[ContainerResources, ...]] = {}
        self.foreign_resizes: dict[PodKey, str] = {}
        # What the kubelet says about a resize it could not finish (PodResizeInProgress/Error),
        # and Events for the reporter to post (a resize that restarted a container).
        self.kubelet_errors: dict[PodKey, str] = {}
        self.events: list[tuple[ServiceKey, str, str, str]] = []
        self.pending_latency: dict[ServiceKey, tuple[float, str]] = {}
        # For the reporter: what may have a new status.
        self.dirty_services: set[ServiceKey] = set()
        self.dirty_signals: set[SignalKey] = set()
        self.deleted_services: set[ServiceKey] = set()
        self.topology_changed = False  # hostnames: the tunnel config
        # Each protected service's Access application audience tag (from the access loop, or
        # status.access on start), for the tunnel's token checks.
        self.access_audiences: dict[ServiceKey, str] = {}
        self.ingested_live = 0
        # A shard acts only in its namespaces; the last body of every HeadyService and
        # AttentionSignal object is kept, so a namespace that joins the shard is replayed.
        self.scope = Scope(parse_selector(settings.shard_selector) if settings.shard_selector else None)
        self._service_bodies: dict[ServiceKey, Mapping[str, Any]] = {}
        self._signal_objects: dict[SignalKey, objects.CustomObject] = {}
        self._ends: list[tuple[datetime, SignalKey]] = []  # ingested and predicted signals by end
        # VerticalPodAutoscalers (when the CRD is served), the peak each peakFrom service follows,
        # and when a waiting recommendation change is due (its settle window ends).
        self.vpas: dict[tuple[str, str], Vpa] = {}
        self.vpa_unavailable: str | None = f"the {VPA_CRD} CRD was not looked for yet"
        self.followed: dict[ServiceKey, FollowedPeak] = {}
        self._peak_reviews: list[tuple[datetime, ServiceKey]] = []
        # Pods whose resize the cluster cannot do at all (pod-level resources where the apiserver
        # or the node lacks InPlacePodLevelResourcesVerticalScaling): left alone, with the reason.
        self.unsupported: dict[PodKey, str] = {}
        self.tuning = tuning_of(settings)
        # Masks keep twice the days judged, so weekends and outages do not shrink the window.
        self.model.recurrence.configure(
            settings.recurrence_bucket_seconds, min(MAX_DAYS, 2 * settings.recurrence_days)
        )
        self._recurrence_due: datetime | None = None  # nothing is due before this

    # ------------------------------------------------------------------ HeadyServices

    def on_namespace(self, event: str, obj: objects.Namespace) -> None:
        """A namespace joined or left this shard: act on what is there, or let it go."""
        name = obj.metadata.name
        joined = self.scope.update(name, None if event == "DELETED" else obj.metadata.labels)
        if joined is None:
            return
        services = [(k, b) for k, b in self._service_bodies.items() if k[0] == name]
        signals = [(k, o) for k, o in self._signal_objects.items() if k[0] == name]
        if joined:
            for _, body in services:
                self._on_service("ADDED", body)
            for _, sig in signals:
                self._on_signal("ADDED", sig)
        else:
            # As if deleted: pods stay where they are, and another shard takes them over.
            for _, body in services:
                self._on_service("DELETED", body)
            for _, sig in signals:
                self._on_signal("DELETED", sig)
            for key in [k for k, e in self.signals.items() if k[0] == name and e.ref is None]:
                entry = self.signals.pop(key)
                self.planner.set_signal(key, None)
                if entry.path != PREDICTOR:
                    self.ingested_live -= 1
        self.changed.set()

    def on_service(self, event: str, body: Mapping[str, Any]) -> None:
        meta = body.get("metadata") or {}
        key = (str(meta.get("namespace", "")), str(meta.get("name", "")))
        if self.scope.sharded:
            if event == "DELETED":
                self._service_bodies.pop(key, None)
            else:
                self._service_bodies[key] = body
            if key[0] not in self.scope:
                return
        self._on_service(event, body)

    def _on_service(self, event: str, body: Mapping[str, Any]) -> None:
        meta = body.get("metadata") or {}
        key = (str(meta.get("namespace", "")), str(meta.get("name", "")))
        if event == "DELETED":
            entry = self.services.pop(key, None)
            if entry is not None:
                # Pods are left where they are: at peak stays at peak (safe), nothing is taken away.
                self._remap(key, entry.spec, None)
                self.planner.forget_service(key)
                self.deleted_services.add(key)
                self.dirty_services.discard(key)
                self.access_audiences.pop(key, None)
                self.topology_changed = True
                self.changed.set()
            return
        try:
            spec: HeadyServiceSpec | None = HeadyServiceSpec.model_validate(body.get("spec") or {})
            error = None
        except ValidationError as exc:
            spec, error = None, validation_message(exc)
        ref = ObjectRef(
            str(body.get("apiVersion") or "heady.io/v1alpha1"),
            "HeadyService",
            key[0],
            key[1],
            str(meta.get("uid", "")),
            meta.get("generation"),
            str(meta.get("resourceVersion", "")),
        )
        old = self.services.get(key)
        annotations = {str(k): str(v) for k, v in (meta.get("annotations") or {}).items()}
        if old is not None:
            # Conditions other writers own (Healthy, from the health checks) are kept, so the
            # reporter's next status carries them instead of wiping them.
            theirs = [
                c
                for c in (body.get("status") or {}).get("conditions") or []
                if c.get("type") not in OWN_CONDITIONS
            ]
            ours = [c for c in old.status.get("conditions") or [] if c.get("type") in OWN_CONDITIONS]
            if theirs or "conditions" in old.status:
                old.status["conditions"] = ours + theirs
        if (
            old is not None
            and old.spec == spec
            and old.annotations == annotations
            and (spec is not None or old.error == error)
        ):
            old.ref = ref  # our own status write coming back: nothing to plan
            return
        status = dict(body.get("status") or {}) if old is None else old.status
        if old is None:
            self.planner.restore_memory(key, memory_from_status(status))
            followed = followed_from_status(status.get("peak"))
            if followed is not None:
                self.followed[key] = followed
            self._restore_audience(key, spec, status)
        entry = ServiceEntry(ref, spec, error, annotations, parse_time(meta.get("creationTimestamp")), status)
        self.services[key] = entry
        self.deleted_services.discard(key)
        if (
            old is None
            or old.spec is None
            or spec is None
            or old.spec.hostname != spec.hostname
            or old.spec.port != spec.port
            or old.spec.access != spec.access
        ):
            self.topology_changed = True
        self._remap(key, old.spec if old else None, spec)
        self._replan_service(key)
        self.changed.set()

    def _restore_audience(
        self, key: ServiceKey, spec: HeadyServiceSpec | None, status: Mapping[str, Any]
    ) -> None:
        """A restart keeps protected hostnames routed: the audience tag Cloudflare assigned is in
        status.access, for the same hostname, until the access loop has listed the API again."""
        access = status.get("access")
        if spec is None or spec.access is None or not isinstance(access, Mapping):
            return
        aud = access.get("audTag")
        app = access.get("application")
        if isinstance(aud, str) and aud and isinstance(app, Mapping) and app.get("domain") == spec.hostname:
            self.access_audiences[key] = aud

    def set_access_audiences(self, audiences: Mapping[ServiceKey, str]) -> None:
        """From the access loop: the tunnel config is rebuilt when a service's audience changes."""
        if dict(audiences) != self.access_audiences:
            self.access_audiences = dict(audiences)
            self.topology_changed = True
            self.changed.set()

    def _remap(self, key: ServiceKey, old: HeadyServiceSpec | None, new: HeadyServiceSpec | None) -> None:
        """Keep workload -> service current; the pods of a workload that changed hands follow."""
        ns = key[0]
        before = (ns, old.workload.kind, old.workload.name) if old else None
        after = (ns, new.workload.kind, new.workload.name) if new else None
        if before == after:
            return
        if before is not None and self._service_of_workload.get(before) == key:
            del self._service_of_workload[before]
            # Another HeadyService naming the same workload takes it over.
            heir = min(
                (
                    k
                    for k, e in self.services.items()
                    if k != key
                    and e.spec is not None
                    and (k[0], e.spec.workload.kind, e.spec.workload.name) == before
                ),
                default=None,
            )
            if heir is not None:
                self._service_of_workload[before] = heir
                self._replan_service(heir)
            self._reassign(before)
        if after is not None:
            holder = self._service_of_workload.get(after)
            if holder is None or key < holder:
                self._service_of_workload[after] = key
                if holder is not None:
                    self._replan_service(holder)
                self._reassign(after)

    def _replan_service(self, key: ServiceKey) -> None:
        entry = self.services.get(key)
        if entry is None:
            return
        self.dirty_services.add(key)
        if entry.spec is None:
            self.planner.set_service(key, None)
            return
        wkey = (key[0], entry.spec.workload.kind, entry.spec.workload.name)
        holder = self._service_of_workload.get(wkey)
        if holder is not None and holder != key:
            entry.error = (
                f"{entry.spec.workload.kind} {entry.spec.workload.name} is already managed by "
                f"HeadyService {holder[1]}; one workload has one HeadyService"
            )
            self.planner.set_service(key, None)
            return
        template = self.templates.get(wkey)
        entry.conflict = self._vpa_conflict(key, entry.spec)
        if entry.conflict is not None:
            # The VPA writes these pods' requests itself: two writers would undo each other.
            entry.error, entry.peak_report = entry.conflict, None
            self.planner.set_service(key, None)
            return
        peak = self._peak_of(key, entry, template)
        service, error = service_model(key, entry.spec, template, entry.annotations, peak)
        entry.error = error
        if service is not None:
            service = self._tuned(key, entry.spec, service)
        self.planner.set_service(key, service)

    # ------------------------------------------------------------------ VerticalPodAutoscalers

    def _vpa_conflict(self, key: ServiceKey, spec: HeadyServiceSpec) -> str | None:
        kind, name = spec.workload.kind, spec.workload.name
        acting = sorted(
            (v for v in self.vpas.values() if targets(v, key[0], kind, name) and acts_itself(v)),
            key=lambda v: v.name,
        )
        if not acting:
            return None
        follows = spec.peak_from is not None and spec.peak_from.vertical_pod_autoscaler == acting[0].name
        return conflict_message(acting[0], kind, name, key[1], follows)

    def _peak_of(
        self, key: ServiceKey, entry: ServiceEntry, template: tuple[ContainerResources, ...] | None
    ) -> dict[str, Any] | None:
        """With peakFrom: the peak to plan with (followed as the VPA's recommendation moves); else None."""
        spec = entry.spec
        if spec is None or spec.peak_from is None or template is None:
            entry.peak_report = None
            self.followed.pop(key, None)
            return None
        name = spec.peak_from.vertical_pod_autoscaler
        vpa = self.vpas.get((key[0], name))
        why: tuple[bool, str, str]
        source = TEMPLATE
        if self.vpa_unavailable is not None:
            why = (
                False,
                "VPACRDMissing",
                f"spec.peakFrom needs the VerticalPodAutoscaler CRD ({VPA_CRD}/v1): {self.vpa_unavailable}; "
                "peaks come from the pod template until it is served",
            )
        elif vpa is None:
            why = (
                False,
                "VPANotFound",
                f"no VerticalPodAutoscaler {name} in namespace {key[0]}; peaks come from the pod template",
            )
        elif not targets(vpa, key[0], spec.workload.kind, spec.workload.name):
            why = (
                False,
                "VPATargetMismatch",
                f"VerticalPodAutoscaler {name} targets {vpa.target_kind} {vpa.target_name}, not "
                f"{spec.workload.kind} {spec.workload.name}; peaks come from the pod template",
            )
        elif not vpa.recommendation:
            why = (
                False,
                "NoRecommendation",
                f"VerticalPodAutoscaler {name} has no recommendation yet; peaks come from the pod template",
            )
        else:
            source = vpa.source
            why = (
                True,
                "Recommendation",
                f"peaks follow the target of VerticalPodAutoscaler {name}, bounded by its upperBound "
                "and containers[].peak",
            )
        recommendation = vpa.recommendation if vpa is not None and source != TEMPLATE else {}
        proposed = recommended_peak(template, explicit_peaks(spec), recommendation)
        now = self.clock()
        followed, due = follow(
            self.followed.get(key),
            source,
            proposed,
            now,
            self.settings.vpa_settle_seconds,
            self.settings.vpa_min_change,
        )
        self.followed[key] = followed
        if due is not None:
            heapq.heappush(self._peak_reviews, (due, key))
        entry.peak_report = (peak_status(followed), why)
        return dict(followed.peak)

    def on_vpa(self, event: str, obj: objects.VerticalPodAutoscaler) -> None:
        meta = obj.metadata
        vkey = (meta.namespace, meta.name)
        old = self.vpas.pop(vkey, None)
        if event != "DELETED":
            self.vpas[vkey] = vpa_of(obj)
        new = self.vpas.get(vkey)
        if old == new:
            return
        self._replan_vpa_users(meta.namespace, meta.name, [v for v in (old, new) if v is not None])

    def _replan_vpa_users(self, namespace: str, name: str | None, vpas: list[Vpa]) -> None:
        for key, entry in self.services.items():
            if key[0] != namespace or entry.spec is None:
                continue
            spec = entry.spec
            named = spec.peak_from is not None and (
                name is None or spec.peak_from.vertical_pod_autoscaler == name
            )
            if named or any(targets(v, namespace, spec.workload.kind, spec.workload.name) for v in vpas):
                self._replan_service(key)
                self.changed.set()

    def set_vpa_available(self, why_not: str | None) -> None:
        """The VPA CRD became served (None) or is not (why): services with peakFrom say so."""
        if why_not == self.vpa_unavailable:
            return
        self.vpa_unavailable = why_not
        if why_not is not None:
            self.vpas.clear()
        for key, entry in list(self.services.items()):
            if entry.spec is not None and (entry.spec.peak_from is not None or entry.conflict is not None):
                self._replan_service(key)
                self.changed.set()

    def review_peaks(self, now: datetime) -> None:
        """Recommendation changes that waited for their settle window: look at them again."""
        while self._peak_reviews and self._peak_reviews[0][0] <= now:
            _, key = heapq.heappop(self._peak_reviews)
            if key in self.services:
                self._replan_service(key)
                self.changed.set()

    def next_peak_review(self) -> datetime | None:
        return self._peak_reviews[0][0] if self._peak_reviews else None

    # ------------------------------------------------------------------ learned tuning

    def _tuned(self, key: ServiceKey, spec: HeadyServiceSpec, service: Service) -> Service:
        """The cooldown learned from the service's revisits, and its ratio in baselineRatioMode Auto."""
        history = self.model.history(key, self.clock())
        cooldown = learned_cooldown(history, self.tuning, spec.cooldown_seconds, spec.max_peak_seconds)
        ratio = service.baseline_ratio
        if spec.baseline_ratio_mode == "Auto":
            current = self.planner.services.get(key)
            rec = recommend(
                history,
                self.tuning,
                current.baseline_ratio if current is not None else spec.baseline_ratio,
                spec.cooldown_seconds,
                spec.max_peak_seconds,
                service.utilization,
            )
            bounded = max(self.tuning.auto_min_ratio, min(self.tuning.auto_max_ratio, spec.baseline_ratio))
            ratio = rec.baseline_ratio if rec is not None else bounded
        return replace(service, cooldown_seconds=cooldown, baseline_ratio=ratio)

    def recommendation(self, key: ServiceKey) -> Recommendation | None:
        """What status.recommendation says for this service (None before any attention on it)."""
        entry = self.services.get(key)
        service = self.planner.services.get(key)
        if entry is None or entry.spec is None or service is None:
            return None
        return recommend(
            self.model.history(key, self.clock()),
            self.tuning,
            service.baseline_ratio,
            entry.spec.cooldown_seconds,
            entry.spec.max_peak_seconds,
            service.utilization,
        )

    def _reassign(self, wkey: WorkloadKey) -> None:
        owner = self._service_of_workload.get(wkey, UNOWNED)
        for pkey in self._pods_of_workload.get(wkey, ()):
            entry = self.pods[pkey]
            if entry.record.service != owner:
                old = entry.record.service
                entry.record = _with_service(entry.record, owner)
                self.planner.set_pod(pkey, entry.record)
                self.dirty_services.update(k for k in (old, owner) if k != UNOWNED)

    # ------------------------------------------------------------------ workloads and nodes

    def on_workload(self, event: str, kind: str, obj: objects.Workload) -> None:
        meta = obj.metadata
        wkey = (meta.namespace, kind, meta.name)
        if event == "DELETED":
            self.templates.pop(wkey, None)
        else:
            template = _containers(obj.spec.template.spec.containers, obj.spec.template.spec.resources)
            if self.templates.get(wkey) == template:
                return
            self.templates[wkey] = template
        service = self._service_of_workload.get(wkey)
        if service is not None:
            self._replan_service(service)
            self.changed.set()

    def on_replica_set(self, event: str, obj: objects.ReplicaSet) -> None:
        meta = obj.metadata
        rkey = (meta.namespace, meta.name)
        owner = next((o.name for o in meta.ownerReferences if o.controller and o.kind == "Deployment"), None)
        if event == "DELETED" or owner is None:
            if self.deployment_of_rs.pop(rkey, None) is None:
                return
        elif self.deployment_of_rs.get(rkey) == owner:
            return
        else:
            self.deployment_of_rs[rkey] = owner
        # Pods seen before their ReplicaSet get their owner now.
        for pkey in list(self._pods_of_rs.get(rkey, ())):
            self._own(pkey, self.pods[pkey], rkey[1])
        self.changed.set()

    def on_node(self, event: str, obj: objects.Node) -> None:
        name = obj.metadata.name
        if event == "DELETED":
            self.planner.set_node(name, None)
        else:
            self.planner.set_node(name, Node(name, amount(obj.status.allocatable)))
        self.changed.set()

    # ------------------------------------------------------------------ pods

    def on_pod(self, event: str, obj: objects.Pod) -> None:
        meta = obj.metadata
        key = (meta.namespace, meta.name)
        if event == "DELETED" or meta.deletionTimestamp:
            self._drop_pod(key)
            return
        rv = _int(meta.resourceVersion)
        prev = self.pods.get(key)
        if prev is not None and rv and rv <= prev.resource_version:
            return  # older than (or the echo of) what a resize response already told us
        containers = _containers(obj.spec.containers, obj.spec.resources)
        qos = _qos(obj.status.qosClass) or qos_of(containers)
        resize, resize_message = _resize_condition(obj)
        restarts = sum(c.restartCount for c in obj.status.containerStatuses)
        if resize == ("PodResizeInProgress", "Error"):
            self.kubelet_errors[key] = resize_message or "the kubelet could not apply the resize"
        else:
            self.kubelet_errors.pop(key, None)
        if resize == ("PodResizePending", "Infeasible"):
            if key not in self.infeasible:
                metrics.RESIZE_FAILURES.labels("Infeasible").inc()
            self.infeasible[key] = containers
        elif resize is not None and resize[1] == "Deferred" and (prev is None or prev.resize != resize):
            metrics.RESIZE_FAILURES.labels("Deferred").inc()
        if (
            prev is not None
            and prev.record.containers != containers
            and key in self.written
            and containers != self.written[key]
        ):
            self.foreign_resizes[key] = foreign_manager(meta.managedFields) or "another actor"
        replica_set, workload = self._owner_of(meta)
        service = self._service_of_workload.get(workload, UNOWNED) if workload else UNOWNED
        record = Pod(
            key,
            service,
            obj.spec.nodeName,
            qos,
            containers,
            obj.status.phase == "Running",
            key in self.infeasible,
        )
        if prev is None:
            entry = PodEntry(rv, workload, replica_set, resize, record, restarts)
            self.pods[key] = entry
        else:
            entry = prev
            if prev.workload != workload:
                self._unindex(key, prev)
            if service != UNOWNED and prev.resize != resize:
                self.dirty_services.add(service)
            if service != UNOWNED and restarts > prev.restarts and key in self.written:
                # A container whose resizePolicy says RestartContainer restarts on a resize.
                self.events.append(
                    (
                        service,
                        "ContainerRestarted",
                        f"pod {key[1]}: a container restarted during its resize (restartCount {restarts}); "
                        "its resizePolicy asks for a restart",
                        "Normal",
                    )
                )
            entry.resource_version, entry.workload, entry.replica_set = rv, workload, replica_set
            entry.resize, entry.restarts = resize, restarts
        self._index(key, entry)
        if entry.record != record or prev is None:
            if service != UNOWNED and (
                prev is None or prev.record.containers != containers or prev.record.running != record.running
            ):
                self.dirty_services.add(service)
            if prev is not None and prev.record.service != service and prev.record.service != UNOWNED:
                self.dirty_services.add(prev.record.service)
            entry.record = record
            self.planner.set_pod(key, record)
            self.changed.set()

    def on_resized(self, obj: objects.Pod) -> None:
        """The pod as the resize response returned it: newer than any watch event so far."""
        if (obj.metadata.namespace, obj.metadata.name) in self.pods:
            self.on_pod("MODIFIED", obj)

    def mark_infeasible(self, key: PodKey, target: tuple[ContainerResources, ...]) -> None:
        self.infeasible[key] = target
        entry = self.pods.get(key)
        if entry is not None and not entry.record.infeasible_at_peak:
            entry.record = Pod(**{**_fields(entry.record), "infeasible_at_peak": True})
            self.planner.set_pod(key, entry.record)
            self.dirty_services.add(entry.record.service)
            self.changed.set()

    def _drop_pod(self, key: PodKey) -> None:
        entry = self.pods.pop(key, None)
        self.infeasible.pop(key, None)
        self.written.pop(key, None)
        self.kubelet_errors.pop(key, None)
        self.unsupported.pop(key, None)
        if entry is None:
            return
        self._unindex(key, entry)
        self.planner.set_pod(key, None)
        if entry.record.service != UNOWNED:
            self.dirty_services.add(entry.record.service)
        self.changed.set()

    def _owner_of(self, meta: objects.ObjectMeta) -> tuple[str | None, WorkloadKey | None]:
        ref = next((o for o in meta.ownerReferences if o.controller), None)
        if ref is None:
            return None, None
        if ref.kind == "StatefulSet":
            return None, (meta.namespace, "StatefulSet", ref.name)
        if ref.kind == "ReplicaSet":
            deployment = self.deployment_of_rs.get((meta.namespace, ref.name))
            return ref.name, (meta.namespace, "Deployment", deployment) if deployment else None
        return None, None

    def _own(self, key: PodKey, entry: PodEntry, rs_name: str) -> None:
        ns = key[0]
        deployment = self.deployment_of_rs.get((ns, rs_name))
        workload = (ns, "Deployment", deployment) if deployment else None
        if workload == entry.workload:
            return
        self._unindex(key, entry)
        entry.workload = workload
        self._index(key, entry)
        owner = self._service_of_workload.get(workload, UNOWNED) if workload else UNOWNED
        if owner != entry.record.service:
            self.dirty_services.update(k for k in (owner, entry.record.service) if k != UNOWNED)
            entry.record = _with_service(entry.record, owner)
            self.planner.set_pod(key, entry.record)

    def _index(self, key: PodKey, entry: PodEntry) -> None:
        if entry.workload is not None:
            self._pods_of_workload.setdefault(entry.workload, set()).add(key)
        if entry.replica_set is not None:
            self._pods_of_rs.setdefault((key[0], entry.replica_set), set()).add(key)

    def _unindex(self, key: PodKey, entry: PodEntry) -> None:
        if entry.workload is not None:
            self._pods_of_workload.get(entry.workload, set()).discard(key)
        if entry.replica_set is not None:
            self._pods_of_rs.get((key[0], entry.replica_set), set()).discard(key)

    def pods_of(self, service: ServiceKey) -> list[PodKey]:
        entry = self.services.get(service)
        if entry is None or entry.spec is None:
            return []
        wkey = (service[0], entry.spec.workload.kind, entry.spec.workload.name)
        if self._service_of_workload.get(wkey) != service:
            return []
        return sorted(self._pods_of_workload.get(wkey, ()))

    def service_bodies(self) -> list[dict[str, Any]]:
        """HeadyServices as the health checks read them (no I/O: from this cache)."""
        out = []
        for entry in self.services.values():
            if entry.spec is None or entry.spec.health_check is None:
                continue
            body = entry.ref.body()
            body["metadata"]["generation"] = entry.ref.generation
            body["spec"] = entry.spec.model_dump(by_alias=True, exclude_none=True, mode="json")
            body["status"] = entry.status
            out.append(body)
        return out

    def cpu_requests_of(self, namespace: str, services: list[str]) -> dict[str, int]:
        """Running pods of these HeadyServices with their CPU requests (for arena utilization)."""
        out: dict[str, int] = {}
        for name in services:
            for pkey in self.pods_of((namespace, name)):
                record = self.pods[pkey].record
                if record.running:
                    out[pkey[1]] = sum(
                        (c.requests.cpu if c.requests.cpu is not None else c.limits.cpu) or 0
                        for c in record.containers
                    )
        return out

    # ------------------------------------------------------------------ signals

    def on_signal(self, event: str, obj: objects.CustomObject) -> None:
        key = (obj.metadata.namespace, obj.metadata.name)
        if self.scope.sharded:
            if event == "DELETED":
                self._signal_objects.pop(key, None)
            else:
                self._signal_objects[key] = obj
            if key[0] not in self.scope:
                return
        self._on_signal(event, obj)

    def _on_signal(self, event: str, obj: objects.CustomObject) -> None:
        meta = obj.metadata
        key = (meta.namespace, meta.name)
        if event == "DELETED":
            if self.signals.pop(key, None) is not None:
                self.planner.set_signal(key, None)
                self.dirty_signals.discard(key)
                self.changed.set()
            return
        existing = self.signals.get(key)
        received = existing.received if existing else self.monotonic()
        ref = ObjectRef(
            "heady.io/v1alpha1",
            "AttentionSignal",
            key[0],
            key[1],
            meta.uid,
            meta.generation,
            meta.resourceVersion,
        )
        conditions = list(obj.status.get("conditions") or [])
        if existing is not None and existing.ref is not None and existing.spec == obj.spec:
            # Our own status write coming back, or a label change: the attention is the same.
            existing.ref, existing.conditions = ref, conditions
            return
        try:
            spec = AttentionSignalSpec.model_validate(obj.spec)
            created = parse_time(meta.creationTimestamp) or self.clock()
            now = self.clock()
            if created <= now < created + timedelta(seconds=1):
                # creationTimestamp is whole seconds: a signal seen within that second counts
                # from when it was seen, so a 1 s TTL does not end up to a second early.
                created = now
            signal, error = self._signal(key, spec, created), None
        except ValidationError as exc:
            signal, error = None, validation_message(exc)
        entry = SignalEntry(ref, signal, error, received, "object", conditions, spec=dict(obj.spec))
        entry.reported = existing.reported if existing else reported_state(obj.status)
        self._put_signal(key, entry, existing)

    def add_ingested(
        self, spec: AttentionSignalSpec, namespace: str, name: str, created: datetime, path: str
    ) -> str:
        """An event from the Redis stream or HTTP: applied, replayed (known already), expired or invalid."""
        key = (namespace, name)
        if namespace not in self.scope:
            return "elsewhere"  # another shard's namespace: that shard applies it
        if key in self.signals:
            return "replayed"
        signal = self._signal(key, spec, created)
        if signal.end <= self.clock():
            return (
                "expired"  # replayed after an outage, or sent late: attention that is over escalates nothing
            )
        self.ingested_live += 1
        self._put_signal(key, SignalEntry(None, signal, None, self.monotonic(), path), None)
        return "applied"

    def _signal(self, key: SignalKey, spec: AttentionSignalSpec, created: datetime) -> Signal:
        # Never raises: times are clamped at the edge, and "never" (year 9999) means the
        # longest signal there is (MAX_SIGNAL_SECONDS), not an overflow deep in the planner.
        start, end = spec.window(created, self.settings.default_signal_ttl_seconds)
        return Signal(
            key[1],
            tuple((key[0], s) for s in spec.services),
            spec.intensity,
            spec.source,
            start,
            end,
            spec.user,
        )

    def _put_signal(self, key: SignalKey, entry: SignalEntry, existing: SignalEntry | None) -> None:
        self.signals[key] = entry
        if entry.ref is None and entry.signal is not None:
            heapq.heappush(self._ends, (entry.signal.end, key))
        self.planner.set_signal(key, entry.signal)
        if entry.ref is not None:
            self.dirty_signals.add(key)
        sig = entry.signal
        if existing is None and sig is not None:
            metrics.ATTENTION_EVENTS.labels(entry.path, sig.source).inc()
            now = self.clock()
            if sig.active(now):
                if sig.intensity >= self.planner.policy.attention_threshold:
                    # Only attention that can escalate starts the signal-to-resize clock.
                    for svc in sig.services:
                        self.pending_latency[svc] = (entry.received, sig.source)
                self._observe(sig, now)
        self.changed.set()

    # ------------------------------------------------------------------ prediction

    def _observe(self, sig: Signal, now: datetime) -> None:
        if sig.source == PREDICTOR:
            return  # a guess: nothing to learn
        if sig.intensity >= self.planner.policy.attention_threshold:
            for svc in sig.services:
                # A return after a gap: the revisit intervals (and so the cooldown) moved.
                if svc in self.services and self.model.attend(svc, sig.start, sig.end) is not None:
                    self._replan_service(svc)
                if svc in self.services:
                    self._recurrence_observe(svc, sig)
        if not sig.user:
            return  # nobody in particular: nothing to learn where people go next
        for svc in sig.services:
            outcome = self.model.observe(sig.user, svc, now)
            if outcome is not None:
                metrics.PREDICTIONS.labels(outcome).inc()
        if not self.settings.prediction_enabled:
            return
        for svc in sig.services:
            guess = self.model.predict(
                svc, self.settings.prediction_threshold, self.settings.prediction_min_observations
            )
            if guess is None or guess[0] in sig.services or guess[0] not in self.services:
                continue
            target, probability = guess
            end = now + timedelta(seconds=self.settings.prediction_ttl_seconds)
            if self.model.throttled(
                target, self.settings.prediction_min_precision, self.settings.prediction_min_outcomes
            ):
                # Not paying: scored in the shadow (hit or miss as if issued), escalating nothing.
                self.model.expect(sig.user, target, end, shadow=True)
                metrics.PREDICTIONS.labels("shadow").inc()
                continue
            name = f"predict-{target[1]}-{int(now.timestamp() * 1000)}"[:253]
            pred = Signal(name, (target,), min(1.0, probability), PREDICTOR, now, end, sig.user)
            self.model.expect(sig.user, target, end)
            metrics.PREDICTIONS.labels("issued").inc()
            key = (target[0], name)
            self.signals[key] = SignalEntry(None, pred, None, self.monotonic(), PREDICTOR)
            heapq.heappush(self._ends, (end, key))
            self.planner.set_signal(key, pred)
            self.pending_latency.setdefault(target, (self.monotonic(), PREDICTOR))

    def expire(self, now: datetime) -> int:
        """Forget predictions and ingested signals that ended (objects go by their own deletion).

        They are kept a second past their end, so a plan already under way still finds them."""
        count = 0
        while self._ends and self._ends[0][0] + timedelta(seconds=1) <= now:
            _, key = heapq.heappop(self._ends)
            entry = self.signals.get(key)
            if entry is None or entry.ref is not None or entry.signal is None:
                continue
            del self.signals[key]
            self.planner.set_signal(key, None)
            count += 1
            if entry.path == PREDICTOR:
                for outcome in self.model.expire(now):
                    metrics.PREDICTIONS.labels(outcome).inc()
            else:
                self.ingested_live -= 1
        self._recur(now)
        return count

    # ------------------------------------------------------------------ time-of-day recurrence

    def _recurrence_observe(self, svc: ServiceKey, sig: Signal) -> None:
        """Real attention (any user, or none): learn when episodes start; score a waiting guess."""
        rec = self.model.recurrence
        key = f"{svc[0]}/{svc[1]}"
        if rec.observe(key, sig.start, sig.end):
            confirmed = rec.confirm(key, sig.start)
            if confirmed is not None:
                self.model.score(svc, hit=True, shadow=confirmed.shadow)
                metrics.PREDICTIONS.labels("shadow_hit" if confirmed.shadow else "hit").inc()
        if sig.user and known_user(sig.user) and self.settings.recurrence_by != "service":
            rec.observe(user_key(key, sig.user), sig.start, sig.end)
        if rec.dirty:
            rec.dirty = False
            self.model.dirty = True

    def _recur(self, now: datetime) -> None:
        """Score the recurrence's guesses that ran out, and make the ones due now.

        Called on every pass of the loop (through `expire`); the planner is told when the next
        one is due (`wake_at`), so the loop, and the simulator's virtual clock, wake then."""
        cfg = self.settings
        if not (cfg.prediction_enabled and cfg.prediction_recurrence):
            return
        rec = self.model.recurrence
        for service, missed in rec.expire(now):
            self.model.score(_service_key(service), hit=False, shadow=missed.shadow)
            metrics.PREDICTIONS.labels("shadow_miss" if missed.shadow else "miss").inc()
        if self._recurrence_due is not None and now < self._recurrence_due:
            return
        lead = cfg.recurrence_lead_seconds
        judge = Judge(
            cfg.recurrence_min_days,
            cfg.recurrence_days,
            cfg.recurrence_spread_buckets,
            cfg.recurrence_min_lift,
        )
        wanted: dict[str, Due] = {}
        for due in rec.due(now, lead, judge):
            by_user = "@" in due.service
            if cfg.recurrence_by == ("service" if by_user else "user"):
                continue
            name = target_of(due.service)
            prev = wanted.get(name)
            if prev is None or (due.until, due.share) > (prev.until, prev.share):
                wanted[name] = Due(name, due.until, due.share)
        for due in wanted.values():
            target = _service_key(due.service)
            if target not in self.services or rec.attended(due.service, now):
                continue  # gone, or someone is on it already: nothing to foresee
            throttled = self.model.throttled(
                target, cfg.prediction_min_precision, cfg.prediction_min_outcomes
            )
            new = rec.expect(due.service, now, due.until, shadow=throttled)
            if throttled:
                if new:
                    metrics.PREDICTIONS.labels("shadow").inc()
                continue
            name = f"recur-{target[1]}-{int(now.timestamp() * 1000)}"[:253]
            # The share of days as its strength, never below the threshold: a due guess escalates.
            strength = min(1.0, max(due.share, self.planner.policy.attention_threshold))
            pred = Signal(name, (target,), strength, PREDICTOR, now, due.until, None)
            if new:
                metrics.PREDICTIONS.labels("issued").inc()
            key = (target[0], name)
            self.signals[key] = SignalEntry(None, pred, None, self.monotonic(), PREDICTOR)
            heapq.heappush(self._ends, (due.until, key))
            self.planner.set_signal(key, pred)
            self.pending_latency.setdefault(target, (self.monotonic(), PREDICTOR))
        self._recurrence_due = rec.next_due(now, lead, judge)
        self.planner.wake_at(self._recurrence_due)


def _service_key(text: str) -> ServiceKey:
    ns, _, name = text.partition("/")
    return (ns, name)


def tuning_of(settings: Settings) -> Tuning:
    return Tuning(
        learn_cooldown=settings.cooldown_learning,
        min_revisits=settings.cooldown_min_revisits,
        cooldown_min_seconds=settings.cooldown_min_seconds,
        cooldown_max_seconds=max(settings.cooldown_min_seconds, settings.cooldown_max_seconds),
        wait_cost_seconds=settings.cooldown_wait_cost_seconds,
        actuation_delay_seconds=settings.actuation_delay_seconds,
        sla_budget=settings.recommendation_sla_budget,
        auto_min_ratio=settings.auto_baseline_min_ratio,
        auto_max_ratio=max(settings.auto_baseline_min_ratio, settings.auto_baseline_max_ratio),
    )


def validation_message(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors(include_url=False):
        loc = ".".join(str(x) for x in err["loc"])
        msg = str(err["msg"]).removeprefix("Value error, ")
        parts.append(f"spec.{loc}: {msg}" if loc else msg)
    return "; ".join(parts)


def memory_from_status(status: Mapping[str, Any]) -> Memory:
    return Memory(
        escalated_since=parse_time(status.get("escalatedSince")),
        attention_until=parse_time(status.get("attentionUntil")),
        resting_until=parse_time(status.get("restingUntil")),
    )


def reported_state(status: Mapping[str, Any] | None) -> str:
    """What an AttentionSignal's status already says, in the reporter's terms."""
    if not status:
        return ""
    if status.get("expired"):
        return "expired"
    ready = next((c for c in status.get("conditions") or [] if c.get("type") == "Ready"), None)
    if ready is None:
        return ""
    reason = ready.get("reason")
    if reason == "Applied":
        return "applied"
    if reason == "InvalidSpec":
        return "invalid"
    if reason == "ServiceNotFound":
        return "missing:" + str(ready.get("message", ""))
    return ""


def foreign_manager(managed: list[objects.ManagedField]) -> str | None:
    """The latest field manager other than heady that wrote the pod's resize subresource."""
    others = [
        (m.time or "", m.manager) for m in managed if m.subresource == "resize" and m.manager != FIELD_MANAGER
    ]
    return max(others)[1] if others else None


def _container(c: objects.Container) -> ContainerResources:
    return ContainerResources(c.name, amount(c.resources.requests), amount(c.resources.limits))


def _containers(
    containers: list[objects.Container], pod_resources: objects.Resources | None
) -> tuple[ContainerResources, ...]:
    """What heady plans for a pod: its containers, or its pod-level resources when it has them."""
    if pod_resources is not None:
        pod = pod_level(pod_resources.requests, pod_resources.limits)
        if pod is not None:
            return interned((pod,))
    return interned(_container(c) for c in containers)


def vpa_of(obj: objects.VerticalPodAutoscaler) -> Vpa:
    policy = obj.spec.updatePolicy
    recommendation = obj.status.recommendation
    recs: dict[str, ContainerRecommendation] = {}
    for r in recommendation.containerRecommendations if recommendation else []:
        recs[r.containerName] = ContainerRecommendation(amount(r.target), amount(r.upperBound))
    return Vpa(
        obj.metadata.namespace,
        obj.metadata.name,
        obj.spec.targetRef.kind,
        obj.spec.targetRef.name,
        (policy.updateMode if policy is not None and policy.updateMode else None) or "Recreate",
        recs,
    )


def _qos(value: str | None) -> QoS | None:
    return QoS(value) if value in ("Guaranteed", "Burstable", "BestEffort") else None


def _resize_condition(pod: objects.Pod) -> tuple[tuple[str, str] | None, str]:
    for cond in pod.status.conditions:
        if cond.type in ("PodResizePending", "PodResizeInProgress") and cond.status == "True":
            return (cond.type, cond.reason or ""), cond.message or ""
    return None, ""


def _int(value: str) -> int:
    try:
        return int(value)
    except ValueError:
        return 0


def _fields(pod: Pod) -> dict[str, Any]:
    return {
        "key": pod.key,
        "service": pod.service,
        "node": pod.node,
        "qos": pod.qos,
        "containers": pod.containers,
        "running": pod.running,
        "infeasible_at_peak": pod.infeasible_at_peak,
    }


def _with_service(pod: Pod, service: ServiceKey) -> Pod:
    return Pod(**{**_fields(pod), "service": service})
