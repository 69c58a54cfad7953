"""The arena controller: admission, duration, rebalancing, risk and review rounds for ArenaSessions.

Like the escalation controller, one loop sees every session: admission is a cluster-wide decision
(a quota shared by all sessions, preemption across namespaces). Each pass gathers the sessions,
calls the pure planners (planning/arena.py, risk.py, battle.py) and writes status, Events,
metrics and memory. State lives in each session's status (queuedAt, admittedAt, allocation), so a
restart re-derives everything.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from kubernetes_asyncio.client.exceptions import ApiException
from pydantic import ValidationError

from heady_operator import metrics
from heady_operator.config import Settings
from heady_operator.kube import workspace as kworkspace
from heady_operator.kube.client import Kube
from heady_operator.kube.events import post_event
from heady_operator.kube.status import patch_status
from heady_operator.models.arena import ArenaSessionSpec
from heady_operator.models.common import PRIORITY_VALUES, parse_time, rfc3339, set_condition, utcnow
from heady_operator.models.quantity import cpu_millis, format_cpu, format_memory
from heady_operator.planning.arena import (
    AdmissionState,
    Allocation,
    Quota,
    SessionDemand,
    plan_admission,
    plan_rebalance,
    resource_plan,
    session_value,
)
from heady_operator.planning.battle import (
    SIMILAR_KEPT,
    SIMILAR_THRESHOLD,
    BattleRecord,
    BattleRound,
    QuestionGenerator,
    TemplateQuestionGenerator,
    run_battle,
)
from heady_operator.planning.leadership import ALWAYS, Gate
from heady_operator.planning.risk import PRECEDENT_THRESHOLD, assess_risk
from heady_operator.planning.workspace import (
    Phase as WorkspacePhase,
)
from heady_operator.planning.workspace import (
    WorkspaceParams,
    WorkspaceSession,
    plan_workspace,
    repos_hash,
)

log = logging.getLogger(__name__)
Key = tuple[str, str]
CONDITIONS = ("Admitted", "Running", "Preempted", "Finished", "Degraded", "Ready")
ARENA_CONDITIONS = frozenset({*CONDITIONS, "MemoryAvailable", "WorkspaceReady"})
# The status keys this controller writes; others (status.chaos and its conditions) belong to
# the chaos handlers and are carried along untouched.
OWNED = frozenset(
    {
        "observedGeneration",
        "priorityValue",
        "resourcePlan",
        "risk",
        "queuedAt",
        "admittedAt",
        "finishedAt",
        "allocation",
        "battle",
        "queuePosition",
        "workspace",
        "repos",
        "conditions",
    }
)
UTILIZATION_ANNOTATION = "heady.io/utilization"
# The memory entry that describes a session's work (what precedents are looked up against).
SESSION_ENTITY = "session"


def _cond(status: Mapping[str, Any], type_: str) -> bool:
    return any(c.get("type") == type_ and c.get("status") == "True" for c in status.get("conditions") or [])


def _degraded(
    conds: list[dict[str, Any]], status: Mapping[str, Any], now: datetime, gen: int | None
) -> list[dict[str, Any]]:
    """Degraded of a valid spec: a failed clone (git's message), else AsPlanned. One function for
    both writers of a pass, so the condition never flips within a pass (and is not rewritten)."""
    workspace = status.get("workspace") or {}
    if workspace.get("phase") == WorkspacePhase.FAILED.value:
        return set_condition(
            conds, "Degraded", True, "CloneFailed", str(workspace.get("message") or ""), now, gen
        )
    return set_condition(conds, "Degraded", False, "AsPlanned", "spec valid", now, gen)


def _key_text(key: Key) -> str:
    return f"{key[0]}/{key[1]}"


@dataclass
class SessionEntry:
    body: dict[str, Any]
    spec: ArenaSessionSpec | None
    error: str | None
    status: dict[str, Any] = field(default_factory=dict)
    battle: BattleRecord | None = None
    written: dict[str, Any] = field(default_factory=dict)
    # Best similarity of this session to past ones in memory (HeadyRisk's precedent): None
    # while unknown (no memory, or memory down when it was looked up).
    precedent: float | None = None
    precedent_looked_up: bool = False
    # What the workspace was last reconciled for (admitted, finished, repos, retain, phase): it
    # is looked at again when that changes, while it clones, and on the rebalance cadence.
    workspace_seen: tuple[Any, ...] | None = None


def operation_text(spec: ArenaSessionSpec) -> str:
    """What a session works on, as memory compares sessions: its repos (and branches) and services.

    The name is left out on purpose: two sessions on the same repos and services are the same
    kind of work whatever they are called.
    """
    repos = ", ".join(f"{r.name}@{r.branch}" for r in spec.repos)
    services = ", ".join(spec.services) or "none"
    return f"arena session on repos {repos}; services {services}"


class ArenaBattleMemory:
    """HeadyBattle's memory: similar concepts of the session (>= 0.7) and its rounds, in pgvector."""

    def __init__(self, memory: Any, embedder: Any, session: str, repos: str, risk: float) -> None:
        self.memory, self.embedder = memory, embedder
        self.session, self.repos, self.risk = session, repos, risk

    async def similar(self, text: str) -> tuple[str, ...]:
        found = await self.memory.find_similar(
            self.session, self.embedder.embed_one(text), SIMILAR_THRESHOLD, SIMILAR_KEPT
        )
        return tuple(entry.content for entry in found)

    async def remember(self, played: BattleRound) -> None:
        from heady_operator.storage.memory import MemoryRecord

        texts = [("battle_question", played.question)]
        if played.answer is not None:
            texts.append(("battle_answer", played.answer))
        for entity_type, text in texts:
            await self.memory.store(
                MemoryRecord(
                    session=self.session,
                    repo_name=self.repos,
                    entity_type=entity_type,
                    entity_id=str(played.depth),
                    content=text,
                    embedding=self.embedder.embed_one(text),
                    battle_depth=played.depth,
                    risk_score=self.risk,
                )
            )


class ArenaController:
    def __init__(
        self,
        settings: Settings,
        kube: Kube | None,
        clock: Callable[[], datetime] = utcnow,
        *,
        pods_of: Callable[[str, list[str]], dict[str, int]] | None = None,
        memory: Any = None,
        embedder: Any = None,
        gate: Gate = ALWAYS,
    ) -> None:
        self.settings = settings
        # Only the leader reconciles (and asks again right before each write); a standby keeps
        # the sessions' bodies current from the watch, for the moment it leads.
        self.gate = gate
        self.kube = kube
        self.clock = clock
        self.sessions: dict[Key, SessionEntry] = {}
        self.quota = self._quota_from({})
        self.memory: Any = memory  # ResilientMemory when Postgres is configured
        self.embedder: Any = embedder
        # Who asks (and maybe answers) HeadyBattle's questions; e.g. storage.llm.HttpQuestionGenerator.
        self.questions: QuestionGenerator = TemplateQuestionGenerator()
        self._wake = asyncio.Event()
        self._last_rebalance = time.monotonic()
        self._rebalances = 0
        self._quota_read = False
        # Namespace + HeadyService names -> {pod name: CPU request in millicores} (the cluster state).
        self.pods_of = pods_of
        self._metrics_api: bool | None = None

    def kick(self) -> None:
        self._wake.set()

    def on_session(self, event: str, body: Mapping[str, Any]) -> None:
        meta = body["metadata"]
        key = (meta["namespace"], meta["name"])
        if event == "DELETED" or meta.get("deletionTimestamp"):
            # Deleting a session releases its quota at once; the next pass admits the queue.
            self.sessions.pop(key, None)
            metrics.forget_session(*key)
            self.kick()
            return
        try:
            spec: ArenaSessionSpec | None = ArenaSessionSpec.model_validate(body.get("spec") or {})
            error = None
        except ValidationError as exc:
            spec, error = (
                None,
                "; ".join(f"spec.{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors()),
            )
        entry = self.sessions.get(key)
        watched = dict(body.get("status") or {})
        if entry is None:
            owned = {k: v for k, v in watched.items() if k in OWNED}
            self.sessions[key] = SessionEntry(dict(body), spec, error, watched, written=owned)
        else:
            entry.body, entry.spec, entry.error = dict(body), spec, error
            # Conditions of other writers (chaos) come from the latest watch event; ours from us.
            ours = [c for c in entry.status.get("conditions") or [] if c.get("type") in ARENA_CONDITIONS]
            theirs = [c for c in watched.get("conditions") or [] if c.get("type") not in ARENA_CONDITIONS]
            entry.status = {**watched, **{k: v for k, v in entry.status.items() if k in OWNED}}
            entry.status["conditions"] = ours + theirs
        self.kick()

    def on_quota(self, data: Mapping[str, str] | None) -> None:
        """The quota ConfigMap (keys cpu, memoryGiB, gpu, storageGB, bandwidthMbps, connections)
        overrides the operator settings."""
        try:
            quota = self._quota_from(data or {})
        except ValueError:
            log.warning("ignoring unreadable arena quota ConfigMap: %s", data)
            return
        if quota != self.quota:
            self.quota = quota
            self.kick()

    def _quota_from(self, data: Mapping[str, str]) -> Quota:
        s = self.settings

        def number(key: str, default: float | None) -> float | None:
            return float(data[key]) if key in data else default

        connections = number("connections", s.arena_quota_connections)
        return Quota.of(
            number("cpu", s.arena_quota_cpu) or 0.0,
            number("memoryGiB", s.arena_quota_memory_gib) or 0.0,
            max(int(number("gpu", s.arena_quota_gpu) or 0), 0),
            storage_gb=number("storageGB", s.arena_quota_storage_gb),
            bandwidth_mbps=number("bandwidthMbps", s.arena_quota_bandwidth_mbps),
            connections=None if connections is None else int(connections),
        )

    # ------------------------------------------------------------------ loop

    async def run(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=self._next_deadline())
            self._wake.clear()
            if not self.gate.may_write():
                continue
            try:
                await self.reconcile()
            except Exception:  # a bad pass must not stop admission for everyone else
                log.exception("arena reconcile failed")
                await asyncio.sleep(1)

    def _next_deadline(self) -> float:
        now = self.clock()
        horizon = self.settings.rebalance_interval_seconds - (time.monotonic() - self._last_rebalance)
        for entry in self.sessions.values():
            if (entry.status.get("workspace") or {}).get("phase") == WorkspacePhase.CLONING.value:
                # No watch on Jobs: a clone in progress is looked at every second.
                horizon = min(horizon, 1.0)
            admitted = parse_time(entry.status.get("admittedAt"))
            if entry.spec is not None and admitted is not None and _cond(entry.status, "Running"):
                left = (admitted + timedelta(seconds=entry.spec.duration_seconds) - now).total_seconds()
                horizon = min(horizon, left)
        return max(0.05, horizon)

    async def _utilization(self, key: Key, entry: SessionEntry) -> float | None:
        """CPU usage / requests of the session's services' pods from metrics.k8s.io.

        Fallback when the Metrics API is absent (no metrics-server, as on kwok without one) or has
        no samples: the session's `heady.io/utilization` annotation (0..1), set by whatever
        measures the session's work. Neither: no rebalancing for that session.
        """
        measured = await self._metrics_utilization(key, entry) if self.pods_of is not None else None
        if measured is not None:
            return measured
        util = entry.body["metadata"].get("annotations", {}).get(UTILIZATION_ANNOTATION)
        if util is None:
            return None
        try:
            return min(1.0, max(0.0, float(util)))
        except ValueError:
            return None

    async def _metrics_utilization(self, key: Key, entry: SessionEntry) -> float | None:
        if self.kube is None or entry.spec is None or not entry.spec.services or self._metrics_api is False:
            return None
        pods = self.pods_of(key[0], entry.spec.services) if self.pods_of else {}
        if not pods:
            return None
        try:
            items = (
                await self.kube.custom.list_namespaced_custom_object(
                    "metrics.k8s.io", "v1beta1", key[0], "pods"
                )
            ).get("items", [])
            self._metrics_api = True
        except ApiException as exc:
            if exc.status == 404:
                self._metrics_api = False  # no Metrics API in this cluster: stop asking
            return None
        used = 0
        for item in items:
            if item["metadata"]["name"] in pods:
                for c in item.get("containers", []):
                    used += cpu_millis(c.get("usage", {}).get("cpu", "0"))
        requested = sum(pods.values())
        return min(1.0, used / requested) if requested else None

    async def _read_quota(self) -> None:
        if self.kube is None:
            return
        try:
            cm = await self.kube.core.read_namespaced_config_map(
                self.settings.arena_quota_configmap, self.settings.operator_namespace
            )
        except ApiException as exc:
            if exc.status == 404:
                self.on_quota(None)
            return
        self.on_quota(cm.data)

    async def reconcile(self) -> None:
        if (
            not self._quota_read
            or time.monotonic() - self._last_rebalance >= self.settings.rebalance_interval_seconds
        ):
            # Read on the rebalance cadence: quota changes are rare and need no watch of every ConfigMap.
            await self._read_quota()
            self._quota_read = True
        now = self.clock()
        await self._look_up_precedents()
        demands: list[SessionDemand] = []
        plans = {}
        risks = {}
        for key, entry in self.sessions.items():
            if entry.spec is None:
                continue
            risk = assess_risk(entry.spec.risk, entry.precedent)
            plan = resource_plan(entry.spec.priority, risk.overall, entry.spec.requires_gpu)
            risks[key], plans[key] = risk, plan
            status = entry.status
            admitted_at = parse_time(status.get("admittedAt"))
            created = parse_time(entry.body["metadata"].get("creationTimestamp")) or now
            queued_at = parse_time(status.get("queuedAt")) or created
            finished = _cond(status, "Finished") or (
                admitted_at is not None
                and _cond(status, "Admitted")
                and admitted_at + timedelta(seconds=entry.spec.duration_seconds) <= now
            )
            demands.append(
                SessionDemand(
                    _key_text(key),
                    PRIORITY_VALUES[entry.spec.priority],
                    queued_at,
                    plan.cpu_millis,
                    plan.memory_bytes,
                    admitted=_cond(status, "Admitted"),
                    admitted_at=admitted_at,
                    finished=finished,
                    value=session_value(entry.spec.value.expected_roi, entry.spec.value.strategic_alignment)
                    if entry.spec.value is not None
                    else session_value(None, None),
                    gpus=plan.gpu_devices,
                    storage_gb=plan.storage_total_gb,
                    bandwidth_mbps=plan.bandwidth_whole_mbps,
                    connections=plan.network_connections,
                )
            )
        admission = plan_admission(demands, self.quota, now)
        self._queue_metrics(admission)
        if self.memory is not None:
            metrics.MEMORY_AVAILABLE.set(1 if self.memory.available else 0)
        preempted_by = {p.key: p for p in admission.preemptions}

        rebalance_due = time.monotonic() - self._last_rebalance >= self.settings.rebalance_interval_seconds
        changes = {}
        if rebalance_due:
            self._last_rebalance = time.monotonic()
            allocations = []
            utilization: dict[str, float] = {}
            for key, entry in self.sessions.items():
                if key in plans and _key_text(key) in admission.admitted:
                    scale = (entry.status.get("allocation") or {}).get("scale", 1.0)
                    allocations.append(
                        Allocation(
                            _key_text(key),
                            PRIORITY_VALUES[entry.spec.priority] if entry.spec else 0,
                            plans[key],
                            round(float(scale) * 100),
                        )
                    )
                    util = await self._utilization(key, entry)
                    if util is not None:
                        utilization[_key_text(key)] = util
            self._rebalances += 1
            for change in plan_rebalance(
                allocations,
                utilization,
                self.quota,
                jitter=self.settings.rebalance_jitter,
                rng_seed=self.settings.rebalance_seed + self._rebalances,
            ):
                changes[change.key] = change

        counts = dict.fromkeys(CONDITIONS, 0)
        for key, entry in list(self.sessions.items()):
            status = await self._session_status(
                key, entry, now, admission, preempted_by, plans, risks, changes.get(_key_text(key))
            )
            if entry.spec is not None:
                await self._workspace(key, entry, status, admission, now, rebalance_due)
            for c in status.get("conditions", []):
                if c["status"] == "True" and c["type"] in counts:
                    counts[c["type"]] += 1
            owned = {k: v for k, v in status.items() if k in OWNED}
            if owned != entry.written:
                # A merge patch only removes a field that is sent as null.
                removed = {k: None for k in entry.written if k not in owned}
                await self._patch(key, {**owned, **removed})
                entry.written = owned
            entry.status = status
        for cond, count in counts.items():
            metrics.ARENA_SESSIONS.labels(cond).set(count)

    async def _look_up_precedents(self) -> None:
        """HeadyRisk's precedent: the best similarity (>= 0.8) of a session to past sessions.

        Looked up once, before the session is first admitted (its resource plan depends on its
        risk, and an admitted session keeps its plan). Memory down: the precedent stays unknown
        and novelty counts in full (assess_risk's fallback); looked up again next pass.
        """
        if self.memory is None or self.embedder is None:
            return
        for key, entry in self.sessions.items():
            if entry.spec is None or entry.precedent_looked_up:
                continue
            if _cond(entry.status, "Admitted") or not self.memory.available:
                entry.precedent_looked_up = _cond(entry.status, "Admitted")
                continue
            found = await self.memory.find_precedents(
                _key_text(key), self.embedder.embed_one(operation_text(entry.spec)), PRECEDENT_THRESHOLD, 20
            )
            if not self.memory.available:
                continue  # the lookup hit an outage: [] says nothing
            sessions = [e for e in found if e.entity_type == SESSION_ENTITY]
            entry.precedent = round(max((e.similarity for e in sessions), default=0.0), 6)
            entry.precedent_looked_up = True

    @staticmethod
    def _queue_metrics(admission: Any) -> None:
        queued = dict.fromkeys(sorted(set(PRIORITY_VALUES.values())), 0)
        oldest = 0.0
        for decision in admission.pending:
            queued[decision.priority] = queued.get(decision.priority, 0) + 1
            oldest = max(oldest, decision.waiting_seconds or 0.0)
        for priority, count in queued.items():
            metrics.ARENA_QUEUED.labels(str(priority)).set(count)
        metrics.ARENA_QUEUE_OLDEST.set(oldest)

    async def _session_status(
        self,
        key: Key,
        entry: SessionEntry,
        now: datetime,
        admission: Any,
        preempted_by: Mapping[str, Any],
        plans: Mapping[Key, Any],
        risks: Mapping[Key, Any],
        change: Any,
    ) -> dict[str, Any]:
        gen = entry.body["metadata"].get("generation")
        prev = entry.status
        status: dict[str, Any] = {k: v for k, v in prev.items() if k not in ("conditions",)}
        conds: list[dict[str, Any]] = list(prev.get("conditions") or [])
        status["observedGeneration"] = gen
        if entry.spec is None:
            conds = set_condition(conds, "Ready", False, "InvalidSpec", entry.error or "", now, gen)
            conds = set_condition(conds, "Degraded", True, "InvalidSpec", entry.error or "", now, gen)
            if entry.error and not _cond(prev, "Degraded"):
                await self._event(entry.body, "InvalidSpec", entry.error, "Warning")
            status["conditions"] = conds
            return status
        risk, plan = risks[key], plans[key]
        status["priorityValue"] = PRIORITY_VALUES[entry.spec.priority]
        status["resourcePlan"] = plan.to_status()
        status["risk"] = risk.to_status()
        for kind in ("technical", "operational", "strategic", "overall"):
            value = getattr(risk, kind, None)
            if isinstance(value, (int, float)):
                metrics.ARENA_RISK.labels(key[0], key[1], kind).set(value)
        status.setdefault("queuedAt", rfc3339(now))
        decision = admission.decision(_key_text(key))
        if decision.state is AdmissionState.FINISHED:
            if not _cond(prev, "Finished"):
                status["finishedAt"] = rfc3339(now)
                await self._event(entry.body, "Finished", "duration ended; quota released")
            conds = set_condition(
                conds, "Finished", True, "DurationElapsed", "the session ran its duration", now, gen
            )
            conds = set_condition(conds, "Running", False, "Finished", "finished", now, gen)
            conds = set_condition(conds, "Admitted", False, "Finished", "quota released", now, gen)
            conds = set_condition(conds, "Preempted", False, "Finished", "finished", now, gen)
            conds = set_condition(conds, "Ready", True, "Finished", "finished", now, gen)
            status.pop("queuePosition", None)
        elif decision.state is AdmissionState.ADMITTED:
            if not _cond(prev, "Admitted"):
                status["admittedAt"] = rfc3339(now)
                status["allocation"] = {
                    "cpu": format_cpu(plan.cpu_millis),
                    "memory": format_memory(plan.memory_bytes),
                    "scale": 1.0,
                }
                await self._event(entry.body, "Admitted", decision.message)
            conds = set_condition(conds, "Admitted", True, str(decision.reason), decision.message, now, gen)
            conds = set_condition(conds, "Running", True, "Admitted", "running within quota", now, gen)
            conds = set_condition(conds, "Preempted", False, "Admitted", "admitted", now, gen)
            conds = set_condition(conds, "Finished", False, "Running", "running", now, gen)
            conds = set_condition(conds, "Ready", True, "Running", decision.message, now, gen)
            status.pop("queuePosition", None)
            if change is not None:
                status["allocation"] = change.to_status()
                await self._event(entry.body, change.reason, change.message)
            if "battle" not in prev:
                await self._remember(key, entry, risk.overall)
                record = await run_battle(
                    entry.body["metadata"]["name"],
                    [r.name for r in entry.spec.repos],
                    entry.spec.battle_depth,
                    self.questions,
                    risk,
                    services=entry.spec.services,
                    memory=self._battle_memory(key, entry, risk.overall),
                )
                status["battle"] = record.to_status()
                entry.battle = record
        else:
            pre = preempted_by.get(_key_text(key))
            if pre is not None:
                conds = set_condition(conds, "Preempted", True, str(pre.reason), pre.message, now, gen)
                await self._event(entry.body, "Preempted", pre.message, "Warning")
                status.pop("admittedAt", None)
                status["queuedAt"] = rfc3339(now)
            conds = set_condition(conds, "Admitted", False, str(decision.reason), decision.message, now, gen)
            conds = set_condition(conds, "Running", False, "Queued", decision.message, now, gen)
            conds = set_condition(conds, "Finished", False, "Queued", "not started", now, gen)
            if not any(c.get("type") == "Preempted" for c in conds):
                conds = set_condition(conds, "Preempted", False, "Queued", "never admitted", now, gen)
            conds = set_condition(conds, "Ready", True, "Queued", decision.message, now, gen)
            status["queuePosition"] = decision.queue_position
            if not any(c.get("type") == "Admitted" for c in prev.get("conditions") or []):
                await self._event(entry.body, "Queued", decision.message)
        if self.memory is not None:
            ok = bool(self.memory.available)
            conds = set_condition(
                conds,
                "MemoryAvailable",
                ok,
                "Connected" if ok else "Unavailable",
                "arena memory (Postgres + pgvector) reachable"
                if ok
                else f"Postgres unreachable; {self.memory.pending} write(s) queued, retrying",
                now,
                gen,
            )
        status["conditions"] = _degraded(conds, status, now, gen)
        return status

    def _workspace_params(self) -> WorkspaceParams:
        s = self.settings
        return WorkspaceParams(
            image=s.arena_git_image,
            size=s.arena_workspace_size,
            storage_class=s.arena_workspace_storage_class,
            access_mode=s.arena_workspace_access_mode,
            deadline_seconds=s.arena_clone_deadline_seconds,
            retries=s.arena_clone_retries,
        )

    async def _workspace(
        self,
        key: Key,
        entry: SessionEntry,
        status: dict[str, Any],
        admission: Any,
        now: datetime,
        periodic: bool,
    ) -> None:
        """The session's workspace (repos with a url): observe, plan, apply; status and conditions.

        Looked at when what it depends on changed, while a clone runs, and on the rebalance
        cadence (a claim or Job deleted by hand is put back); otherwise the status says it all.
        """
        spec = entry.spec
        assert spec is not None
        meta = entry.body["metadata"]
        state = admission.decision(_key_text(key)).state
        session = WorkspaceSession(
            namespace=key[0],
            name=key[1],
            uid=str(meta.get("uid") or ""),
            repos=tuple(spec.cloned_repos),
            retain=spec.retain_workspace,
            admitted=state is AdmissionState.ADMITTED,
            finished=state is AdmissionState.FINISHED,
        )
        previous = status.get("workspace")
        phase = (previous or {}).get("phase")
        seen = (
            session.admitted,
            session.finished,
            repos_hash(session.repos) if session.repos else None,
            session.retain,
            phase,
        )
        # Queued and never admitted: nothing exists yet. Released or retained: nothing is left to do.
        queued = not session.admitted and not session.finished and previous is None
        settled = session.finished and phase in (WorkspacePhase.RELEASED.value, WorkspacePhase.RETAINED.value)
        due = not queued and (
            seen != entry.workspace_seen
            or phase == WorkspacePhase.CLONING.value
            or (periodic and not settled)
        )
        if due and (session.repos or previous is not None) and self.kube is not None:
            try:
                obs = await kworkspace.observe(self.kube, key[0], key[1], session.uid)
                plan = plan_workspace(session, obs, previous, status.get("repos"), self._workspace_params())
                for action in plan.actions:
                    await kworkspace.apply(self.kube, key[0], session, action)
            except ApiException as exc:
                log.warning("workspace of arena %s: API error %s %s", _key_text(key), exc.status, exc.reason)
                return
            if plan.workspace is None:
                status.pop("workspace", None)
                status.pop("repos", None)
            else:
                status["workspace"] = plan.workspace
                status["repos"] = plan.repos
            if plan.event is not None:
                reason, message, type_ = plan.event
                await self._event(entry.body, reason, message, type_)
            entry.workspace_seen = (*seen[:4], (plan.workspace or {}).get("phase"))
        gen = meta.get("generation")
        conds = list(status.get("conditions") or [])
        workspace = status.get("workspace")
        if workspace is None:
            conds = [c for c in conds if c.get("type") != "WorkspaceReady"]
        else:
            ws_phase = str(workspace.get("phase"))
            message = str(workspace.get("message") or "")
            ready = ws_phase == WorkspacePhase.READY.value
            reason = "CloneFailed" if ws_phase == WorkspacePhase.FAILED.value else ws_phase
            conds = set_condition(conds, "WorkspaceReady", ready, reason, message, now, gen)
        status["conditions"] = _degraded(conds, status, now, gen)

    def _battle_memory(self, key: Key, entry: SessionEntry, risk: float) -> ArenaBattleMemory | None:
        if self.memory is None or self.embedder is None or entry.spec is None:
            return None
        repos = ",".join(r.name for r in entry.spec.repos)
        return ArenaBattleMemory(self.memory, self.embedder, _key_text(key), repos, risk)

    async def _remember(self, key: Key, entry: SessionEntry, risk: float) -> None:
        """The admitted session itself, so later sessions find it as their precedent."""
        if self.memory is None or self.embedder is None or entry.spec is None or not self.gate.may_write():
            return
        from heady_operator.storage.memory import MemoryRecord

        text = operation_text(entry.spec)
        await self.memory.store(
            MemoryRecord(
                session=_key_text(key),
                repo_name=",".join(r.name for r in entry.spec.repos),
                entity_type=SESSION_ENTITY,
                entity_id="operation",
                content=text,
                embedding=self.embedder.embed_one(text),
                battle_depth=0,
                risk_score=risk,
            )
        )

    embedder: Any = None

    async def _patch(self, key: Key, status: dict[str, Any]) -> None:
        if self.kube is None or not self.gate.may_write():
            return
        try:
            await patch_status(self.kube, "arenasessions", key[0], key[1], status)
        except ApiException as exc:
            if exc.status != 404:
                log.warning("status patch of arena %s/%s failed: %s", key[0], key[1], exc.reason)

    async def _event(self, body: Mapping[str, Any], reason: str, message: str, type_: str = "Normal") -> None:
        if self.kube is not None and self.gate.may_write():
            await post_event(self.kube, body, reason, message, type_)
