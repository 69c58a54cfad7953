"""Chaos experiments of an ArenaSession: whom to hit, when, and what to do next.

Pure functions of plain data: the clock (``now``) and the randomness (a seed key) are
parameters, so every branch is a table-driven unit test and a restarted operator re-derives the
same plan from what it recorded in ``status.chaos``.

One experiment moves through these phases (``status.chaos.experiments.<name>.phase``)::

    Scheduled -> Injecting -> Injected -> Recovering -> Recovered -> Verdict
       |             |            |            |
       +-- Verdict (Skipped)      +------------+-- Recovered (restored directly by the operator)

``Injecting`` and ``Recovering`` mean "a Job was created, its outcome is not known yet": the
fault only counts as injected (and the clock of the verdict only starts) once the Job
succeeded. A kill switch, a pause, a session that stops running, an overdue or failed Job all
end in the same place: the operator restores the fault itself, so restoration never depends on
a Job being scheduled.
"""

from __future__ import annotations

import hashlib
import math
import random
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from heady_operator.models.arena import ChaosExperiment, ChaosKind, ChaosMode, ChaosSpec
from heady_operator.models.common import add_seconds, parse_time

# Labels and annotations on everything chaos creates or changes: recovery finds its objects by
# these and nothing else, so it is exact and can run any number of times.
LABEL_SESSION = "heady.io/session"
LABEL_SESSION_NAMESPACE = "heady.io/session-namespace"
LABEL_SESSION_UID = "heady.io/session-uid"
LABEL_EXPERIMENT = "heady.io/experiment"
LABEL_ACTION = "heady.io/action"
LABEL_KIND = "heady.io/chaos-kind"
# Nodes carry this label while cordoned by chaos, so they can be listed without reading all nodes.
LABEL_CORDONED = "heady.io/chaos-cordoned"
ANNOTATION_CORDONED_BY = "heady.io/cordoned-by"
ANNOTATION_EXPIRES_AT = "heady.io/expires-at"
# <namespace>/<session> in full on fault objects (a label value may have been shortened).
ANNOTATION_SESSION_REF = "heady.io/session-ref"
# The opt-in of a namespace, and the per-session pause.
NAMESPACE_LABEL = "heady.io/chaos"
NAMESPACE_LABEL_VALUE = "enabled"
PAUSE_ANNOTATION = "heady.io/chaos-paused"
# Which operator instance runs a session's chaos (settings.chaos_instance); absent: the default one.
INSTANCE_LABEL = "heady.io/chaos-instance"

CONDITION_ALLOWED = "ChaosAllowed"
CONDITION_ACTIVE = "ChaosActive"

# Faults that are over the moment they happen: the workload's own controller is the recovery.
INSTANTANEOUS = frozenset({ChaosKind.POD_TERMINATION})


class Phase(StrEnum):
    SCHEDULED = "Scheduled"
    INJECTING = "Injecting"
    INJECTED = "Injected"
    RECOVERING = "Recovering"
    RECOVERED = "Recovered"
    VERDICT = "Verdict"
    INVALID = "Invalid"


ACTIVE_PHASES = frozenset({Phase.INJECTING, Phase.INJECTED, Phase.RECOVERING})


class Verdict(StrEnum):
    PASS = "Pass"
    FAIL = "Fail"
    # The experiment never ran (its window passed while chaos was held, the session finished).
    SKIPPED = "Skipped"
    # The inject Job failed or vanished; the fault was restored, nothing can be judged.
    ERROR = "Error"
    # dryRun: the record says what would have been done; nothing was touched.
    DRY_RUN = "DryRun"


class Halt(StrEnum):
    """Why no fault may be active now. The order is the order of precedence."""

    NAMESPACE_NOT_ENABLED = "NamespaceNotEnabled"
    KILL_SWITCH = "KillSwitch"
    PAUSED = "Paused"
    DELETING = "Deleting"
    NOT_RUNNING = "NotRunning"


_HALTS = frozenset(h.value for h in Halt)


class JobOutcome(StrEnum):
    ACTIVE = "Active"
    SUCCEEDED = "Succeeded"
    FAILED = "Failed"


class JobAction(StrEnum):
    INJECT = "inject"
    RECOVER = "recover"


@dataclass(frozen=True)
class JobState:
    outcome: JobOutcome
    finished_at: datetime | None = None
    message: str = ""


# --- identities --------------------------------------------------------------------------------


def _digest(text: str, length: int = 8) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:length]


def label_value(text: str) -> str:
    """A label value (at most 63 characters) that still names `text`; long names get a hash."""
    if len(text) <= 63:
        return text
    return f"{text[:54].rstrip('-._')}-{_digest(text)}"


def selection_key(session_uid: str, experiment: str) -> str:
    """The seed of target selection and schedule jitter: stable across restarts and replicas."""
    return f"{session_uid}/{experiment}"


def job_name(session_uid: str, experiment: str, action: JobAction) -> str:
    """Deterministic, so creating the same Job twice is a conflict, not a second fault."""
    return f"chaos-{experiment[:30].rstrip('-')}-{action.value}-{_digest(f'{session_uid}/{experiment}')}"


def fault_object_name(session: str, experiment: str) -> str:
    """Name of an experiment's NetworkPolicy (one per experiment and session)."""
    return f"heady-chaos-{experiment[:30].rstrip('-')}-{_digest(f'{session}/{experiment}')}"


def cordon_owner(namespace: str, session: str, experiment: str) -> str:
    """Value of heady.io/cordoned-by on a node: nodes are cluster-wide, so the namespace is in it."""
    return f"{namespace}/{session}/{experiment}"


def cordon_patch(owner: str, expires_at: str) -> dict[str, Any]:
    return {
        "metadata": {
            "labels": {LABEL_CORDONED: "true"},
            "annotations": {ANNOTATION_CORDONED_BY: owner, ANNOTATION_EXPIRES_AT: expires_at},
        },
        "spec": {"unschedulable": True},
    }


def uncordon_patch() -> dict[str, Any]:
    """Merge patch: null removes the field, so the node is schedulable and unmarked again."""
    return {
        "metadata": {
            "labels": {LABEL_CORDONED: None},
            "annotations": {ANNOTATION_CORDONED_BY: None, ANNOTATION_EXPIRES_AT: None},
        },
        "spec": {"unschedulable": None},
    }


def fault_labels(session: str, experiment: str, kind: ChaosKind) -> dict[str, str]:
    return {
        LABEL_SESSION: label_value(session),
        LABEL_EXPERIMENT: experiment,
        LABEL_KIND: kind.value.replace("_", "-"),
        "app.kubernetes.io/managed-by": "heady-chaos",
    }


def label_selector(
    match_labels: Mapping[str, str], match_expressions: Sequence[Mapping[str, Any]] = ()
) -> str:
    """The string form (`a=b,c in (d,e)`) of a LabelSelector, for list calls."""
    parts = [f"{k}={v}" for k, v in sorted(match_labels.items())]
    for expr in match_expressions:
        key, op, values = expr["key"], expr["operator"], sorted(expr.get("values") or [])
        if op == "In":
            parts.append(f"{key} in ({','.join(values)})")
        elif op == "NotIn":
            parts.append(f"{key} notin ({','.join(values)})")
        elif op == "Exists":
            parts.append(key)
        elif op == "DoesNotExist":
            parts.append(f"!{key}")
        else:
            raise ValueError(f"unknown label selector operator {op!r}")
    return ",".join(parts)


# --- what an experiment does ------------------------------------------------------------------


@dataclass(frozen=True)
class FaultRequest:
    """Everything the `heady-chaos` command needs for one inject or recover (its argv, parsed)."""

    namespace: str
    kind: ChaosKind
    session: str
    experiment: str
    service: str | None = None
    selector: Mapping[str, str] | None = None
    mode: ChaosMode = ChaosMode.ONE
    value: int | None = None
    duration_seconds: int = 30
    zone: str | None = None
    dry_run: bool = False
    seed: str = ""


def experiment_problem(exp: ChaosExperiment) -> str | None:
    """What is wrong with an experiment the CRD accepted but chaos cannot run, if anything."""
    if exp.service and exp.selector is not None:
        return "set either service or selector, not both"
    if exp.selector is not None and not exp.selector:
        # An empty selector matches every pod of the namespace: never what anyone meant.
        return "selector must not be empty"
    if exp.kind is ChaosKind.API_FAILURE and not exp.service:
        return "api_failure needs a service (the HeadyService whose endpoints fail)"
    if exp.kind in (ChaosKind.POD_TERMINATION, ChaosKind.NETWORK_PARTITION) and not (
        exp.service or exp.selector
    ):
        return f"{exp.kind.value} needs a service or a selector"
    return None


def target_count(candidates: int, mode: ChaosMode, value: int | None) -> int:
    """How many of `candidates` an experiment hits.

    percent rounds up so a small workload still loses a pod: an experiment that injects nothing
    would pass without having tested anything.
    """
    if candidates <= 0:
        return 0
    if mode is ChaosMode.ALL:
        return candidates
    if mode is ChaosMode.ONE:
        return 1
    if value is None:
        raise ValueError(f"mode {mode.value} needs a value")
    if mode is ChaosMode.FIXED:
        return min(value, candidates)
    return min(candidates, math.ceil(candidates * value / 100))


def select_targets(candidates: Iterable[str], mode: ChaosMode, value: int | None, key: str) -> list[str]:
    """The targets among `candidates` (names), the same for the same key whatever the listing order."""
    pool = sorted(set(candidates))
    count = target_count(len(pool), mode, value)
    if count >= len(pool):
        return pool
    return sorted(random.Random(key).sample(pool, count))


def start_offset_seconds(start_after: int, jitter_percent: int, key: str) -> int:
    """startAfterSeconds moved by up to +-jitterPercent of itself, in whole seconds, seeded."""
    spread = start_after * jitter_percent / 100
    low, high = math.ceil(start_after - spread), math.floor(start_after + spread)
    if low >= high:
        return start_after
    return random.Random(f"{key}/start").randint(max(0, low), high)


def effective_duration(exp: ChaosExperiment, max_duration_seconds: int) -> int:
    return min(exp.duration_seconds, max_duration_seconds)


# --- the record in status.chaos ---------------------------------------------------------------


def _ts(value: Any) -> datetime | None:
    # Clamped and never raising: a record edited by hand must not stop the session's chaos.
    return parse_time(value)


def iso(ts: datetime) -> str:
    return ts.isoformat().replace("+00:00", "Z")


_RECORD_KEYS = {
    "phase": "phase",
    "kind": "kind",
    "start_at": "startAt",
    "duration_seconds": "durationSeconds",
    "job_name": "jobName",
    "recover_job_name": "recoverJobName",
    "injected_at": "injectedAt",
    "recover_at": "recoverAt",
    "recovered_at": "recoveredAt",
    "verdict": "verdict",
    "recovery_seconds": "recoverySeconds",
    "dry_run": "dryRun",
    "interrupted": "interrupted",
    "expected_pods": "expectedPods",
    "message": "message",
}


@dataclass(frozen=True)
class ExperimentRecord:
    """One experiment as written to status.chaos.experiments.<name> (camelCase there)."""

    phase: Phase
    kind: ChaosKind | None = None
    start_at: datetime | None = None
    duration_seconds: int | None = None
    job_name: str | None = None
    recover_job_name: str | None = None
    injected_at: datetime | None = None
    recover_at: datetime | None = None
    recovered_at: datetime | None = None
    verdict: Verdict | None = None
    recovery_seconds: float | None = None
    dry_run: bool = False
    interrupted: str | None = None
    expected_pods: int | None = None
    message: str | None = None

    @classmethod
    def from_status(cls, data: Mapping[str, Any]) -> ExperimentRecord:
        phase = Phase(data.get("phase", Phase.SCHEDULED))
        verdict = data.get("verdict")
        kind = data.get("kind")
        return cls(
            phase=phase,
            kind=ChaosKind(kind) if kind else None,
            start_at=_ts(data.get("startAt")),
            duration_seconds=data.get("durationSeconds"),
            job_name=data.get("jobName"),
            recover_job_name=data.get("recoverJobName"),
            injected_at=_ts(data.get("injectedAt")),
            recover_at=_ts(data.get("recoverAt")),
            recovered_at=_ts(data.get("recoveredAt")),
            verdict=Verdict(verdict) if verdict else None,
            recovery_seconds=data.get("recoverySeconds"),
            dry_run=bool(data.get("dryRun", False)),
            interrupted=data.get("interrupted"),
            expected_pods=data.get("expectedPods"),
            message=data.get("message"),
        )

    def to_status(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for attr, key in _RECORD_KEYS.items():
            value = getattr(self, attr)
            if isinstance(value, datetime):
                value = iso(value)
            elif isinstance(value, StrEnum):
                value = value.value
            out[key] = value
        return out

    @property
    def active(self) -> bool:
        return self.phase in ACTIVE_PHASES


def records_from_status(chaos_status: Mapping[str, Any] | None) -> dict[str, ExperimentRecord]:
    experiments = (chaos_status or {}).get("experiments") or {}
    return {name: ExperimentRecord.from_status(data) for name, data in experiments.items()}


# --- the planner -------------------------------------------------------------------------------


class Do(StrEnum):
    SCHEDULE = "Schedule"  # record only
    INVALID = "Invalid"  # record + Warning Event
    INJECT = "Inject"  # create the inject Job (or run it inline)
    CONFIRM_INJECTED = "ConfirmInjected"  # the inject Job succeeded
    RECOVER = "Recover"  # create the recover Job (or run it inline)
    CONFIRM_RECOVERED = "ConfirmRecovered"  # the recover Job succeeded, or nothing to undo
    RESTORE = "Restore"  # delete the experiment's Jobs and undo its fault from the operator
    VERDICT = "Verdict"
    SKIP = "Skip"


@dataclass(frozen=True)
class Action:
    do: Do
    experiment: str
    kind: ChaosKind | None
    # The experiment's new record once the action is done (None: the record does not change).
    record: ExperimentRecord | None
    request: FaultRequest | None = None
    job_name: str | None = None
    # RESTORE: a PascalCase cause (a metric label); INVALID: what is wrong with the experiment.
    reason: str = ""


@dataclass(frozen=True)
class Observation:
    """What the handler saw this tick; the planner reads nothing else."""

    namespace: str
    session: str
    session_uid: str
    now: datetime
    # When the session started running (the schedule's base); None while it never ran.
    started_at: datetime | None
    running: bool
    finished: bool = False
    halt: Halt | None = None
    jobs: Mapping[str, JobState] = field(default_factory=dict)
    # Experiments whose fault objects (NetworkPolicies, cordoned nodes) exist right now.
    faults_present: frozenset[str] = frozenset()
    # Experiments whose target workload is Ready right now (only asked for Recovered ones).
    ready: Mapping[str, bool] = field(default_factory=dict)


@dataclass(frozen=True)
class Limits:
    max_duration_seconds: int = 600
    # How long a recover Job may take before the operator restores the fault itself.
    recover_grace_seconds: float = 30.0


def effective_halt(obs: Observation) -> Halt | None:
    if obs.halt is not None:
        return obs.halt
    return None if obs.running else Halt.NOT_RUNNING


def fault_request(obs: Observation, exp: ChaosExperiment, dry_run: bool, limits: Limits) -> FaultRequest:
    return FaultRequest(
        namespace=obs.namespace,
        kind=exp.kind,
        session=obs.session,
        experiment=exp.name,
        service=exp.service,
        selector=dict(exp.selector) if exp.selector is not None else None,
        mode=exp.mode,
        value=exp.value,
        duration_seconds=effective_duration(exp, limits.max_duration_seconds),
        zone=exp.zone,
        dry_run=dry_run,
        seed=selection_key(obs.session_uid, exp.name),
    )


def plan(
    spec: ChaosSpec | None,
    records: Mapping[str, ExperimentRecord],
    obs: Observation,
    limits: Limits,
) -> list[Action]:
    """The actions that move every experiment of one session one step (or several) forward."""
    experiments = {e.name: e for e in (spec.experiments if spec else [])}
    dry_run = bool(spec and spec.dry_run)
    halt = effective_halt(obs)
    actions: list[Action] = []
    latest: dict[str, ExperimentRecord] = dict(records)

    for exp in experiments.values():
        for action in _plan_experiment(exp, records.get(exp.name), obs, halt, dry_run, limits):
            actions.append(action)
            if action.record is not None:
                latest[exp.name] = action.record

    # Experiments that left the spec while their fault was active: undo, and say why.
    for name, rec in records.items():
        if name not in experiments and rec.active:
            done = replace(
                rec,
                phase=Phase.VERDICT,
                verdict=Verdict.SKIPPED,
                recovered_at=obs.now,
                interrupted="RemovedFromSpec",
                message="the experiment was removed from the spec; its fault was restored",
            )
            actions.append(Action(Do.RESTORE, name, rec.kind, done, reason="RemovedFromSpec"))
            latest[name] = done

    # A fault object that no active experiment accounts for (a Job that ran late, a restart that
    # lost track, a kill switch racing a running Job): undo it.
    restoring = {a.experiment for a in actions if a.do is Do.RESTORE}
    for name in sorted(obs.faults_present - restoring):
        rec_now = latest.get(name)
        if rec_now is None or not rec_now.active:
            kind = experiments[name].kind if name in experiments else (rec_now.kind if rec_now else None)
            actions.append(Action(Do.RESTORE, name, kind, None, reason="StrayFault"))
    return actions


def _plan_experiment(
    exp: ChaosExperiment,
    rec: ExperimentRecord | None,
    obs: Observation,
    halt: Halt | None,
    dry_run: bool,
    limits: Limits,
) -> list[Action]:
    now = obs.now
    name = exp.name
    out: list[Action] = []

    def emit(do: Do, record: ExperimentRecord | None, reason: str = "", **kw: Any) -> ExperimentRecord | None:
        out.append(Action(do, name, exp.kind, record, reason=reason, **kw))
        return record

    if rec is None or rec.phase is Phase.INVALID:
        problem = experiment_problem(exp)
        if problem is not None:
            if rec is None or rec.message != problem:
                emit(Do.INVALID, ExperimentRecord(Phase.INVALID, kind=exp.kind, message=problem), problem)
            return out
        if halt is Halt.NAMESPACE_NOT_ENABLED:
            emit(Do.SKIP, _skipped(exp, None, _NOT_ENABLED.format(namespace=obs.namespace)))
            return out
        if obs.started_at is None:
            if obs.finished:
                emit(Do.SKIP, _skipped(exp, None, "the session finished before chaos could start"))
            return out
        key = selection_key(obs.session_uid, name)
        offset = timedelta(seconds=start_offset_seconds(exp.start_after_seconds, exp.jitter_percent, key))
        duration = effective_duration(exp, limits.max_duration_seconds)
        start = obs.started_at + offset
        if start + timedelta(seconds=duration) <= now:
            # Added to (or first seen in) a session that has run longer than the whole window:
            # count from now rather than skip an experiment nobody had a chance to run.
            start = now + offset
        message = None
        if duration < exp.duration_seconds:
            message = f"duration capped at {duration}s (the operator's chaos_max_duration_seconds)"
        rec = emit(
            Do.SCHEDULE,
            ExperimentRecord(
                Phase.SCHEDULED,
                kind=exp.kind,
                start_at=start,
                duration_seconds=duration,
                dry_run=dry_run,
                message=message,
            ),
        )
        assert rec is not None

    if rec.phase is Phase.SCHEDULED:
        start = rec.start_at or now
        duration = rec.duration_seconds or effective_duration(exp, limits.max_duration_seconds)
        if halt is Halt.NAMESPACE_NOT_ENABLED:
            emit(Do.SKIP, _skipped(exp, rec, _NOT_ENABLED.format(namespace=obs.namespace)))
        elif obs.finished:
            emit(Do.SKIP, _skipped(exp, rec, "the session finished before the experiment started"))
        elif now >= start + timedelta(seconds=duration):
            why = f" (chaos held: {halt.value})" if halt else ""
            emit(Do.SKIP, _skipped(exp, rec, f"its window passed before it could be injected{why}"))
        elif halt is None and now >= start:
            request = fault_request(obs, exp, rec.dry_run, limits)
            if rec.dry_run:
                # Nothing is touched: the record of what would have happened is the whole run.
                rec = emit(
                    Do.INJECT,
                    replace(
                        rec,
                        phase=Phase.INJECTED,
                        injected_at=now,
                        recover_at=now + timedelta(seconds=duration),
                    ),
                    request=request,
                )
            else:
                inject_job = job_name(obs.session_uid, name, JobAction.INJECT)
                emit(
                    Do.INJECT,
                    replace(rec, phase=Phase.INJECTING, job_name=inject_job),
                    request=request,
                    job_name=inject_job,
                )
        return out

    if rec.phase is Phase.INJECTING:
        job = obs.jobs.get(rec.job_name or "")
        if job is not None and job.outcome is JobOutcome.SUCCEEDED:
            injected = job.finished_at or now
            duration = rec.duration_seconds or effective_duration(exp, limits.max_duration_seconds)
            recover_at = injected if exp.kind in INSTANTANEOUS else injected + timedelta(seconds=duration)
            rec = emit(
                Do.CONFIRM_INJECTED,
                replace(rec, phase=Phase.INJECTED, injected_at=injected, recover_at=recover_at),
            )
            assert rec is not None
        elif job is None or job.outcome is JobOutcome.FAILED:
            what = "disappeared" if job is None else f"failed{': ' + job.message if job.message else ''}"
            emit(
                Do.RESTORE,
                replace(
                    rec,
                    phase=Phase.VERDICT,
                    verdict=Verdict.ERROR,
                    message=f"inject Job {rec.job_name} {what}; any partial fault was restored",
                ),
                reason="InjectJobFailed",
            )
            return out
        elif halt is not None:
            emit(
                Do.RESTORE,
                replace(
                    rec,
                    phase=Phase.VERDICT,
                    verdict=Verdict.SKIPPED,
                    interrupted=halt.value,
                    message=f"interrupted ({halt.value}) before the injection was confirmed; restored",
                ),
                reason=halt.value,
            )
            return out
        else:
            return out

    if rec.phase is Phase.INJECTED:
        recover_at = rec.recover_at or now
        if halt is not None:
            emit(
                Do.RESTORE,
                replace(rec, phase=Phase.RECOVERED, recovered_at=now, interrupted=halt.value),
                reason=halt.value,
            )
            return out
        if now < recover_at:
            return out
        if rec.dry_run or exp.kind in INSTANTANEOUS:
            rec = emit(Do.CONFIRM_RECOVERED, replace(rec, phase=Phase.RECOVERED, recovered_at=recover_at))
            assert rec is not None
        elif (now - recover_at).total_seconds() > limits.recover_grace_seconds:
            # Found long past its window (the operator was down): no Job, restore now.
            emit(
                Do.RESTORE,
                replace(rec, phase=Phase.RECOVERED, recovered_at=now, interrupted="Overdue"),
                reason="Overdue",
            )
            return out
        else:
            recover_job = job_name(obs.session_uid, name, JobAction.RECOVER)
            emit(
                Do.RECOVER,
                replace(rec, phase=Phase.RECOVERING, recover_job_name=recover_job),
                request=fault_request(obs, exp, False, limits),
                job_name=recover_job,
            )
            return out

    if rec.phase is Phase.RECOVERING:
        job = obs.jobs.get(rec.recover_job_name or "")
        recover_at = rec.recover_at or now
        if job is not None and job.outcome is JobOutcome.SUCCEEDED and halt is None:
            rec = emit(
                Do.CONFIRM_RECOVERED, replace(rec, phase=Phase.RECOVERED, recovered_at=job.finished_at or now)
            )
            assert rec is not None
        elif (
            halt is not None
            or job is None
            or job.outcome is JobOutcome.FAILED
            or (now - recover_at).total_seconds() > limits.recover_grace_seconds
        ):
            why = (
                halt.value
                if halt
                else (
                    "RecoverJobFailed"
                    if job is not None and job.outcome is JobOutcome.FAILED
                    else "RecoverJobLate"
                )
            )
            emit(
                Do.RESTORE,
                replace(rec, phase=Phase.RECOVERED, recovered_at=now, interrupted=why),
                reason=why,
            )
            return out
        else:
            return out

    if rec.phase is Phase.RECOVERED:
        verdict = judge(exp, rec, now, obs.ready.get(name))
        if verdict is not None:
            emit(Do.VERDICT, verdict)
    return out


def judge(
    exp: ChaosExperiment, rec: ExperimentRecord, now: datetime, ready: bool | None
) -> ExperimentRecord | None:
    """The verdict of a recovered experiment, or None while it is still undecided.

    Time to recovery runs from the injection until the target is Ready again with the fault
    removed; Pass when that is within recoveryObjectiveSeconds. An experiment cut short by a
    halt (kill switch, pause, the namespace's opt-in withdrawn, the session stopping) had its
    fault removed early: it tested nothing, so it is Skipped, never Pass. Restores that came
    after the full window (Overdue, a late or failed recover Job) are judged as usual.
    """
    if rec.interrupted in _HALTS and not rec.dry_run:
        return replace(
            rec,
            phase=Phase.VERDICT,
            verdict=Verdict.SKIPPED,
            recovery_seconds=None,
            message=f"interrupted ({rec.interrupted}) before its window ended; the fault was restored "
            "early, so nothing was judged",
        )
    if rec.dry_run:
        return replace(
            rec,
            phase=Phase.VERDICT,
            verdict=Verdict.DRY_RUN,
            message=rec.message or "dry run: nothing was touched",
        )
    injected = rec.injected_at or now
    elapsed = max(0.0, (now - injected).total_seconds())
    objective = exp.recovery_objective_seconds
    if ready:
        passed = elapsed <= objective
        return replace(
            rec,
            phase=Phase.VERDICT,
            verdict=Verdict.PASS if passed else Verdict.FAIL,
            recovery_seconds=round(elapsed, 1),
            message=f"Ready again {elapsed:.1f}s after injection (objective {objective}s)",
        )
    if elapsed > objective:
        return replace(
            rec,
            phase=Phase.VERDICT,
            verdict=Verdict.FAIL,
            recovery_seconds=None,
            message=f"not Ready within the objective of {objective}s",
        )
    return None


# Unlike a pause or the kill switch, a namespace that did not opt in does not hold experiments:
# they are skipped at once, so the session settles and needs no finalizer (see `settled`).
_NOT_ENABLED = (
    f"namespace {{namespace}} is not labelled {NAMESPACE_LABEL}={NAMESPACE_LABEL_VALUE}; "
    "label it before creating the session to run chaos experiments there"
)


def settled(
    experiments: Iterable[str],
    records: Mapping[str, ExperimentRecord],
    conditions: Sequence[Mapping[str, Any]],
) -> bool:
    """A session whose chaos can do nothing more: its namespace did not opt in, and every
    experiment has its final record. Such a session needs no daemon and no finalizer, so its
    namespace can be deleted while no operator runs.
    """
    allowed = next((c for c in conditions if c.get("type") == CONDITION_ALLOWED), None)
    if allowed is None or allowed.get("status") != "False":
        return False
    if allowed.get("reason") != Halt.NAMESPACE_NOT_ENABLED.value:
        return False
    final = (Phase.VERDICT, Phase.INVALID)
    if any(rec.phase not in final for rec in records.values()):
        return False
    return all(name in records for name in experiments)


def _skipped(exp: ChaosExperiment, rec: ExperimentRecord | None, why: str) -> ExperimentRecord:
    base = rec or ExperimentRecord(Phase.SCHEDULED, kind=exp.kind)
    return replace(base, phase=Phase.VERDICT, verdict=Verdict.SKIPPED, message=why)


# --- the expiry sweep ------------------------------------------------------------------------


def fault_expired(expires_at: object, now: datetime, grace_seconds: float) -> bool:
    """Whether a fault object (its heady.io/expires-at annotation) outlived its window plus grace.

    The last line of defence, independent of records, sessions and the daemons: a fault whose
    expiry is missing or unreadable counts as expired, since chaos must always end.
    """
    until = parse_time(expires_at)
    if until is None:
        return True
    return add_seconds(until, grace_seconds) <= now


# --- conditions ------------------------------------------------------------------------------


@dataclass(frozen=True)
class ConditionChange:
    type: str
    status: bool
    reason: str
    message: str


def conditions(
    obs: Observation, records: Mapping[str, ExperimentRecord], configmap: str = "heady-chaos"
) -> list[ConditionChange]:
    """ChaosAllowed (may faults be injected here now?) and ChaosActive (is one in place?)."""
    halt = obs.halt
    if halt is Halt.NAMESPACE_NOT_ENABLED:
        allowed = ConditionChange(
            CONDITION_ALLOWED,
            False,
            halt.value,
            f"namespace {obs.namespace} is not labelled {NAMESPACE_LABEL}={NAMESPACE_LABEL_VALUE}; "
            f"label it to allow chaos experiments here",
        )
    elif halt is Halt.KILL_SWITCH:
        allowed = ConditionChange(
            CONDITION_ALLOWED,
            False,
            halt.value,
            f"chaos is switched off (HEADY_CHAOS_ENABLED=false or ConfigMap {configmap} enabled=false); "
            "active faults were restored",
        )
    elif halt is Halt.PAUSED:
        allowed = ConditionChange(
            CONDITION_ALLOWED,
            False,
            halt.value,
            f"annotation {PAUSE_ANNOTATION}=true; active faults were restored",
        )
    else:
        allowed = ConditionChange(CONDITION_ALLOWED, True, "Allowed", "chaos experiments may run")
    active = sorted(name for name, rec in records.items() if rec.active)
    if active:
        active_cond = ConditionChange(CONDITION_ACTIVE, True, "FaultActive", f"active: {', '.join(active)}")
    else:
        active_cond = ConditionChange(CONDITION_ACTIVE, False, "NoActiveFault", "no fault is in place")
    return [allowed, active_cond]
