"""Chaos experiments of ArenaSessions: gather what is, ask the planner, apply, report.

One kopf daemon per session ticks every chaos_interval_seconds (which is also how fast a kill
switch or a pause takes effect). Each tick reads the session fresh from the API rather than
kopf's cached body, so an action is never planned twice from a stale status. Deletion goes
through a finalizer that restores every fault of the session first; at start-up, faults of
sessions that no longer exist are restored.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from dataclasses import replace
from datetime import datetime
from typing import Any

import kopf
from kubernetes_asyncio.client.exceptions import ApiException
from pydantic import ValidationError

from heady_operator.config import Settings
from heady_operator.kube import chaos as kchaos
from heady_operator.kube import client as kclient
from heady_operator.kube.client import Kube
from heady_operator.kube.events import post_event
from heady_operator.metrics import (
    CHAOS_FAULTS,
    CHAOS_RECOVERY,
    CHAOS_RESTORES,
    CHAOS_VERDICTS,
    fault_active,
    forget_faults,
)
from heady_operator.models.arena import PLURAL, ChaosKind, ChaosSpec
from heady_operator.models.common import GROUP, VERSION, parse_time, set_condition, utcnow
from heady_operator.planning import chaos as plan_chaos
from heady_operator.planning.chaos import (
    Action,
    Do,
    ExperimentRecord,
    Halt,
    JobAction,
    JobOutcome,
    Limits,
    Observation,
    Phase,
    Verdict,
)
from heady_operator.planning.leadership import ALWAYS, Gate

log = logging.getLogger(__name__)

INLINE = "chaos_inline"


def _deps(memo: kopf.Memo) -> tuple[Settings, Kube, kchaos.InlineExecutor | None]:
    return memo["settings"], memo["kube"], memo.get(INLINE)


class NotLeading(Exception):
    """This replica may not write (leader election): the chaos tick stops where it is."""


def _gate(memo: kopf.Memo) -> Gate:
    gate: Gate = memo.get("gate", ALWAYS)
    return gate


def _writing(gate: Gate) -> None:
    """Right before a chaos write: only the leader injects, restores, or reports."""
    if not gate.may_write():
        raise NotLeading


def _has_chaos(body: Mapping[str, Any]) -> bool:
    spec_chaos = (body.get("spec") or {}).get("chaos") or {}
    status_chaos = (body.get("status") or {}).get("chaos") or {}
    return bool(spec_chaos.get("experiments") or status_chaos.get("experiments"))


def _owned(body: kopf.Body, memo: kopf.Memo, **_: Any) -> bool:
    """Only the operator whose chaos_instance matches the session's label runs its chaos."""
    settings: Settings | None = memo.get("settings")
    mine = settings.chaos_instance if settings is not None else ""
    state = memo.get("state")
    if state is not None and body.get("metadata", {}).get("namespace") not in state.scope:
        return False  # another shard's session
    return bool((body.get("metadata", {}).get("labels") or {}).get(plan_chaos.INSTANCE_LABEL, "") == mine)


def _owned_with_chaos(body: kopf.Body, memo: kopf.Memo, **_: Any) -> bool:
    """Whether the session needs its daemon and the finalizer.

    Sessions without chaos, and sessions settled in a namespace that did not opt in (every
    experiment Skipped, nothing active: `plan_chaos.settled`), get neither: nothing can be
    injected there, and a finalizer would only hold up deleting the namespace while no operator
    runs. kopf stops the daemon and removes the finalizer on the status write that settles it.
    """
    if not (_owned(body, memo) and _has_chaos(body)):
        return False
    spec_chaos = (body.get("spec") or {}).get("chaos") or {}
    status = body.get("status") or {}
    try:
        records = plan_chaos.records_from_status(status.get("chaos"))
    except (ValueError, TypeError, AttributeError):
        return True  # a record the planner cannot read: let the daemon report it
    names = [str(e.get("name")) for e in spec_chaos.get("experiments") or [] if isinstance(e, Mapping)]
    return not plan_chaos.settled(names, records, list(status.get("conditions") or []))


def _condition(conditions: list[dict[str, Any]], type_: str) -> dict[str, Any] | None:
    return next((c for c in conditions if c.get("type") == type_), None)


def _ts(value: Any) -> datetime | None:
    return parse_time(value)


@kopf.on.startup()
async def chaos_startup(settings: kopf.OperatorSettings, memo: kopf.Memo, **_: Any) -> None:
    if SWEEPER not in memo:
        # First, and on its own client: the sweep must run even while the rest of start-up fails.
        memo[SWEEPER] = asyncio.create_task(
            _sweep_expired_forever(Settings(), memo), name="chaos-expiry-sweep"
        )
    if "kube" not in memo:
        raise kopf.TemporaryError("waiting for the operator's clients", delay=1)
    cfg: Settings = memo["settings"]
    kube: Kube = memo["kube"]
    if cfg.chaos_instance:
        # Another operator runs beside this one: with one finalizer name, each would remove the
        # finalizer the other needs (kopf removes its finalizer from objects it has no handler for).
        settings.persistence.finalizer = f"heady.io/chaos-{cfg.chaos_instance}"[:63]
    if cfg.chaos_executor == "inline":
        memo[INLINE] = kchaos.InlineExecutor()
    gate = _gate(memo)

    async def orphans() -> None:
        await _restore_orphans(kube, gate)

    # Again at every take-over: the old leader may have died between a session's deletion and
    # its restore.
    memo.setdefault("on_leading", []).append(orphans)
    if gate.may_write():
        await orphans()


async def _restore_orphans(kube: Kube, gate: Gate) -> None:
    """Faults whose session went away while no operator was running (its finalizer could not run)."""
    for namespace, session in sorted(await kchaos.sessions_with_faults(kube)):
        if not await kchaos.session_exists(kube, namespace, session) and gate.may_write():
            restored = await kchaos.restore(kube, namespace, session)
            CHAOS_RESTORES.labels("Orphaned").inc()
            log.warning(
                "restored faults of deleted session %s/%s: %s", namespace, session, restored.describe()
            )


SWEEPER = "chaos_sweeper"


async def _sweep_expired_forever(cfg: Settings, memo: kopf.Memo) -> None:
    """Restore every chaos fault that outlived its window, whatever else is (not) running.

    The daemons restore faults on schedule; this is the dead man's switch behind them. It starts
    before the rest of the operator and never waits for it, so a start-up that keeps failing (or
    a daemon that is stuck) cannot leave a network partition or a cordon in place past its
    heady.io/expires-at plus the recover grace. With leader election only the leader sweeps
    (before the election is set up, nobody does: the standby's Lease wait is far shorter than
    any grace).
    """
    interval = max(1.0, min(30.0, cfg.chaos_recover_grace_seconds / 2))
    kube: Kube | None = None
    try:
        while True:
            gate: Gate | None = memo.get("gate")
            if cfg.leader_election and (gate is None or not gate.may_write()):
                await asyncio.sleep(interval)
                continue
            try:
                if kube is None:
                    kube = await kclient.connect(pool_size=2)
                restored = await kchaos.restore_expired(
                    kube, utcnow(), cfg.chaos_recover_grace_seconds, cfg.chaos_instance
                )
                if restored.anything or restored.forbidden:
                    CHAOS_RESTORES.labels("Expired").inc()
                    log.warning("restored chaos faults past their expiry: %s", restored.describe())
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # an outage or a bug: try again next time, never stop sweeping
                log.warning("chaos expiry sweep failed (%s: %s); retrying", type(exc).__name__, exc)
            await asyncio.sleep(interval)
    finally:
        if kube is not None:
            await kube.close()


@kopf.on.cleanup()
async def chaos_cleanup(memo: kopf.Memo, **_: Any) -> None:
    task = memo.get(SWEEPER)
    if task is not None:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


# cancellation_backoff: a daemon whose filter stops matching (its session just settled) is asked
# to stop and finishes its tick (the Events after the settling write) before kopf cancels it.
@kopf.daemon(GROUP, VERSION, PLURAL, when=_owned_with_chaos, cancellation_backoff=5, cancellation_timeout=10)
async def chaos_daemon(stopped: kopf.DaemonStopped, body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
    settings, kube, inline = _deps(memo)
    gate = _gate(memo)
    name, namespace = str(body.metadata.name), str(body.metadata.namespace)
    while not stopped:
        # kopf keeps `body` current; it only decides whether there is anything to do.
        if _has_chaos(body) and gate.may_write():
            try:
                await reconcile(settings, kube, inline, namespace, name, gate)
            except NotLeading:
                pass  # lost the lead mid-tick: the next leader reads the session afresh
            except ApiException as exc:
                if exc.status != 409:
                    log.warning("chaos of %s/%s: API error %s %s", namespace, name, exc.status, exc.reason)
            except RuntimeError as exc:
                if "closed" in str(exc):
                    return  # the operator is shutting down and closed its API session
                log.exception("chaos of %s/%s failed this tick", namespace, name)
            except Exception:
                log.exception("chaos of %s/%s failed this tick", namespace, name)
        await stopped.wait(settings.chaos_interval_seconds)


@kopf.on.delete(GROUP, VERSION, PLURAL, when=_owned_with_chaos)
async def chaos_finalizer(body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
    """Before the session goes: no Job of it may still run, and none of its faults may remain."""
    settings, kube, inline = _deps(memo)
    if not _gate(memo).may_write():
        # The leader restores and removes the finalizer; a standby removing it would skip the restore.
        raise kopf.TemporaryError("not the leader: the leader restores this session's faults", delay=2)
    name, namespace, uid = str(body.metadata.name), str(body.metadata.namespace), str(body.metadata.uid)
    pending = await kchaos.delete_jobs(kube, settings.operator_namespace, uid, finished_too=True)
    if inline is not None:
        pending += sorted(inline.running)
    restored = await kchaos.restore(kube, namespace, name)
    forget_faults(namespace, name)
    if restored.forbidden:
        await _recover_forbidden(settings, kube, inline, body, namespace, name, uid)
    if restored.anything:
        CHAOS_RESTORES.labels(Halt.DELETING.value).inc()
        await post_event(kube, body, "ChaosRestored", f"session deleted: {restored.describe()}")
    if pending:
        # A deleted inject Job's pod may still be finishing: look again once it is gone.
        raise kopf.TemporaryError(f"waiting for chaos Jobs {', '.join(pending)} to go", delay=2)


async def reconcile(
    settings: Settings,
    kube: Kube,
    inline: kchaos.InlineExecutor | None,
    namespace: str,
    name: str,
    gate: Gate = ALWAYS,
) -> None:
    body = await kchaos.get_session(kube, namespace, name)
    if body is None or body["metadata"].get("deletionTimestamp"):
        return
    meta, status = body["metadata"], body.get("status") or {}
    uid = meta["uid"]
    try:
        spec = ChaosSpec.model_validate((body.get("spec") or {}).get("chaos") or {})
    except ValidationError as exc:
        # The CRD validates the same rules; this is an object admitted by an older CRD.
        log.warning("chaos spec of %s/%s is invalid: %s", namespace, name, exc)
        spec = ChaosSpec()
    chaos_status = status.get("chaos") or {}
    records = plan_chaos.records_from_status(chaos_status)
    conditions: list[dict[str, Any]] = list(status.get("conditions") or [])
    now = utcnow()

    running_cond = _condition(conditions, "Running") or {}
    running = running_cond.get("status") == "True"
    finished = (_condition(conditions, "Finished") or {}).get("status") == "True"
    started_at = _ts(chaos_status.get("runningSince"))
    record_start = started_at is None and running
    if record_start:
        started_at = _ts(running_cond.get("lastTransitionTime")) or now

    halt: Halt | None = None
    if not await kchaos.namespace_enabled(kube, namespace):
        halt = Halt.NAMESPACE_NOT_ENABLED
    elif await kchaos.kill_switch_engaged(kube, settings):
        halt = Halt.KILL_SWITCH
    elif str((meta.get("annotations") or {}).get(plan_chaos.PAUSE_ANNOTATION, "")).lower() == "true":
        halt = Halt.PAUSED

    limits = Limits(settings.chaos_max_duration_seconds, settings.chaos_recover_grace_seconds)
    experiments = {e.name: e for e in spec.experiments}
    kinds = {e.kind for e in spec.experiments} | {r.kind for r in records.values()}
    jobs = dict(inline.outcomes) if inline is not None else {}
    if inline is None:
        jobs = await kchaos.list_jobs(kube, settings.operator_namespace, uid)
    faults = await kchaos.present_faults(kube, namespace, name, with_nodes=ChaosKind.ZONE_OUTAGE in kinds)
    obs = Observation(
        namespace=namespace,
        session=name,
        session_uid=uid,
        now=now,
        started_at=started_at,
        running=running,
        finished=finished,
        halt=halt,
        jobs=jobs,
        faults_present=faults,
    )
    ready: dict[str, bool] = {}
    for exp_name, rec in records.items():
        if rec.phase is Phase.RECOVERED and not rec.dry_run and exp_name in experiments:
            request = plan_chaos.fault_request(obs, experiments[exp_name], False, limits)
            ready[exp_name] = await kchaos.target_ready(kube, request, rec.expected_pods)
    obs = replace(obs, ready=ready)

    updated: dict[str, ExperimentRecord] = {}
    for _round in range(3):
        actions = plan_chaos.plan(spec, {**records, **updated}, obs, limits)
        for action in actions:
            if _round and action.record is None:
                continue  # record-less actions (stray restores) were done in the first round
            _writing(gate)
            record = await apply(settings, kube, inline, body, obs, action)
            if record is not None:
                updated[action.experiment] = record
        # Inline runs finish within the tick: plan again with their outcomes, so "Injected" is
        # written with the run instead of a tick later (a restart in between would lose it).
        ran = any(a.do in (Do.INJECT, Do.RECOVER) and a.job_name for a in actions)
        if inline is None or not ran:
            break
        obs = replace(obs, jobs=dict(inline.outcomes))

    latest = {**records, **updated}
    if (
        halt is Halt.NAMESPACE_NOT_ENABLED
        and set(experiments) <= set(latest)
        and all(r.phase in (Phase.VERDICT, Phase.INVALID) for r in latest.values())
    ):
        # About to settle: with no finalizer left to do it at deletion, its Jobs go now.
        _writing(gate)
        await kchaos.delete_jobs(kube, settings.operator_namespace, uid, finished_too=True)

    chaos_patch: dict[str, Any] = {}
    if updated:
        chaos_patch["experiments"] = {n: r.to_status() for n, r in updated.items()}
    if record_start and started_at is not None:
        chaos_patch["runningSince"] = plan_chaos.iso(started_at)
    if chaos_patch:
        _writing(gate)
        body = await kchaos.patch_session_status(kube, namespace, name, {"chaos": chaos_patch})
    await _write_conditions(settings, kube, body, obs, {**records, **updated}, gate)


async def _write_conditions(
    settings: Settings,
    kube: Kube,
    body: dict[str, Any],
    obs: Observation,
    records: Mapping[str, ExperimentRecord],
    gate: Gate = ALWAYS,
) -> None:
    meta = body["metadata"]
    before: list[dict[str, Any]] = list((body.get("status") or {}).get("conditions") or [])
    after: list[dict[str, Any]] = [dict(c) for c in before]
    for change in plan_chaos.conditions(obs, records, settings.chaos_killswitch_configmap):
        after = set_condition(
            after, change.type, change.status, change.reason, change.message, obs.now, meta.get("generation")
        )
    if after == before:
        return
    _writing(gate)
    old = _condition(before, plan_chaos.CONDITION_ALLOWED) or {}
    new = _condition(after, plan_chaos.CONDITION_ALLOWED) or {}
    if new.get("reason") != old.get("reason") and new.get("status") == "False":
        # Before the write: the write may settle the session, and kopf then stops this daemon.
        await post_event(kube, body, "ChaosRefused", str(new.get("message")), "Warning")
    # Read-modify-write of a list other handlers share: only under the version it was read at.
    await kchaos.patch_session_status(
        kube, meta["namespace"], meta["name"], {"conditions": after}, meta["resourceVersion"]
    )


async def apply(
    settings: Settings,
    kube: Kube,
    inline: kchaos.InlineExecutor | None,
    body: Mapping[str, Any],
    obs: Observation,
    action: Action,
) -> ExperimentRecord | None:
    """Carry out one action; return the record to write (the planner's, plus what was reported)."""
    record = action.record
    kind = action.kind.value if action.kind else "unknown"
    if action.do is Do.INJECT and action.request is not None and record is not None:
        seen = await kchaos.preview(kube, action.request)
        described = seen.describe(action.request)
        if record.dry_run:
            record = replace(record, message=f"dry run: would {described}; nothing was touched")
            await post_event(kube, body, "ChaosInjected", f"{action.experiment} (dry run): would {described}")
            return record
        record = replace(record, expected_pods=seen.candidates, message=f"{kind}: {described}")
        await _execute(settings, kube, inline, body, obs, JobAction.INJECT, action)
    elif action.do is Do.RECOVER and action.request is not None:
        await _execute(settings, kube, inline, body, obs, JobAction.RECOVER, action)
    elif action.do is Do.CONFIRM_INJECTED:
        CHAOS_FAULTS.labels(kind).inc()
        fault_active(obs.namespace, obs.session, action.experiment or "", kind)
        await post_event(
            kube, body, "ChaosInjected", f"{action.experiment}: {record.message if record else kind}"
        )
    elif action.do is Do.CONFIRM_RECOVERED:
        forget_faults(obs.namespace, obs.session, action.experiment)
        await post_event(kube, body, "ChaosRecovered", f"{action.experiment}: {kind} fault removed")
    elif action.do is Do.RESTORE:
        await kchaos.delete_jobs(kube, settings.operator_namespace, obs.session_uid, action.experiment)
        restored = await kchaos.restore(kube, obs.namespace, obs.session, action.experiment)
        if restored.forbidden:
            await _recover_forbidden(
                settings, kube, inline, body, obs.namespace, obs.session, obs.session_uid
            )
        CHAOS_RESTORES.labels(action.reason or "Restore").inc()
        forget_faults(obs.namespace, obs.session, action.experiment)
        await post_event(
            kube, body, "ChaosRestored", f"{action.experiment} ({action.reason}): {restored.describe()}"
        )
    elif action.do is Do.VERDICT and record is not None and record.verdict is not None:
        CHAOS_VERDICTS.labels(kind, record.verdict.value).inc()
        if record.recovery_seconds is not None:
            CHAOS_RECOVERY.labels(kind).observe(record.recovery_seconds)
        warn = record.verdict in (Verdict.FAIL, Verdict.ERROR)
        await post_event(
            kube,
            body,
            "ChaosVerdict",
            f"{action.experiment}: {record.verdict.value}: {record.message or ''}",
            "Warning" if warn else "Normal",
        )
    elif action.do is Do.SKIP and record is not None:
        CHAOS_VERDICTS.labels(kind, Verdict.SKIPPED.value).inc()
        await post_event(kube, body, "ChaosSkipped", f"{action.experiment}: {record.message}")
    elif action.do is Do.INVALID:
        await post_event(kube, body, "ChaosInvalid", f"{action.experiment}: {action.reason}", "Warning")
    return record


async def _execute(
    settings: Settings,
    kube: Kube,
    inline: kchaos.InlineExecutor | None,
    body: Mapping[str, Any],
    obs: Observation,
    job_action: JobAction,
    action: Action,
) -> None:
    assert action.request is not None and action.job_name is not None
    if inline is not None:
        state = await inline.run(job_action, action.request, action.job_name)
        if state.outcome is JobOutcome.FAILED:
            await post_event(
                kube,
                body,
                "ChaosJobFailed",
                f"{action.experiment} {job_action.value}: {state.message}",
                "Warning",
            )
        return
    job = kchaos.build_job(settings, job_action, action.request, obs.session_uid, action.job_name)
    if await kchaos.create_job(kube, job):
        log.info("created chaos Job %s/%s", settings.operator_namespace, action.job_name)


async def _recover_forbidden(
    settings: Settings,
    kube: Kube,
    inline: kchaos.InlineExecutor | None,
    body: Mapping[str, Any],
    namespace: str,
    name: str,
    uid: str,
) -> None:
    """The operator may not uncordon (no nodes/patch): leave it to recover Jobs, and say so."""
    spec = ChaosSpec.model_validate((body.get("spec") or {}).get("chaos") or {})
    obs = Observation(namespace, name, uid, utcnow(), None, False)
    limits = Limits(settings.chaos_max_duration_seconds, settings.chaos_recover_grace_seconds)
    for exp in spec.experiments:
        if exp.kind is not ChaosKind.ZONE_OUTAGE:
            continue
        request = plan_chaos.fault_request(obs, exp, False, limits)
        job_name = plan_chaos.job_name(uid, exp.name, JobAction.RECOVER)
        if inline is not None:
            inline.outcomes.pop(job_name, None)
            await inline.run(JobAction.RECOVER, request, job_name)
        else:
            await kchaos.create_job(
                kube, kchaos.build_job(settings, JobAction.RECOVER, request, uid, job_name)
            )
    await post_event(
        kube,
        body,
        "ChaosRestoreDelegated",
        "the operator may not uncordon nodes (grant it nodes/patch); recover Jobs were created instead",
        "Warning",
    )
