"""The chaos planner: targets, schedule, the phase machine, restoration and verdicts (no cluster)."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from heady_operator.chaos.args import UsageError, parse, to_argv
from heady_operator.config import Settings
from heady_operator.kube.chaos import build_job
from heady_operator.models.arena import ChaosExperiment, ChaosKind, ChaosMode, ChaosSpec
from heady_operator.planning.chaos import (
    Do,
    ExperimentRecord,
    FaultRequest,
    Halt,
    JobAction,
    JobOutcome,
    JobState,
    Limits,
    Observation,
    Phase,
    Verdict,
    conditions,
    experiment_problem,
    fault_expired,
    job_name,
    label_selector,
    label_value,
    plan,
    records_from_status,
    select_targets,
    settled,
    start_offset_seconds,
    target_count,
)

T0 = datetime(2026, 1, 1, 12, 0, 0, tzinfo=UTC)
UID = "2f0c9a57-0000-4000-8000-000000000001"
PODS = [f"web-{i}" for i in range(10)]


def exp(**kw: Any) -> ChaosExperiment:
    base: dict[str, Any] = {"name": "cut", "kind": "network_partition", "service": "web", "mode": "all"}
    base.update(kw)
    return ChaosExperiment.model_validate(base)


def spec(*experiments: ChaosExperiment, dry_run: bool = False) -> ChaosSpec:
    return ChaosSpec(dry_run=dry_run, experiments=list(experiments))


def obs(now: datetime = T0, **kw: Any) -> Observation:
    base: dict[str, Any] = {
        "namespace": "ns",
        "session": "s",
        "session_uid": UID,
        "now": now,
        "started_at": T0,
        "running": True,
    }
    base.update(kw)
    return Observation(**base)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def only(actions: list[Any]) -> Any:
    assert len(actions) == 1, actions
    return actions[0]


def injected(e: ChaosExperiment, when: float = 0, **kw: Any) -> ExperimentRecord:
    return ExperimentRecord(
        Phase.INJECTED,
        kind=e.kind,
        start_at=T0,
        duration_seconds=e.duration_seconds,
        job_name=job_name(UID, e.name, JobAction.INJECT),
        injected_at=at(when),
        recover_at=at(when + (0 if e.kind is ChaosKind.POD_TERMINATION else e.duration_seconds)),
        **kw,
    )


LIMITS = Limits(max_duration_seconds=600, recover_grace_seconds=30)


# --- targets -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("mode", "value", "candidates", "want"),
    [
        (ChaosMode.ONE, None, 10, 1),
        (ChaosMode.ALL, None, 10, 10),
        (ChaosMode.FIXED, 2, 10, 2),
        (ChaosMode.FIXED, 20, 10, 10),
        (ChaosMode.PERCENT, 50, 10, 5),
        (ChaosMode.PERCENT, 25, 10, 3),  # rounds up: 2.5 -> 3
        (ChaosMode.PERCENT, 1, 3, 1),  # a small workload still loses a pod
        (ChaosMode.PERCENT, 100, 3, 3),
        (ChaosMode.ONE, None, 0, 0),
        (ChaosMode.ALL, None, 0, 0),
    ],
)
def test_target_count_per_mode(mode: ChaosMode, value: int | None, candidates: int, want: int) -> None:
    assert target_count(candidates, mode, value) == want
    chosen = select_targets(PODS[:candidates], mode, value, "k")
    assert len(chosen) == want
    assert set(chosen) <= set(PODS[:candidates])


def test_fixed_and_percent_need_a_value() -> None:
    with pytest.raises(ValueError, match="needs a value"):
        target_count(3, ChaosMode.FIXED, None)


def test_selection_is_seeded_and_independent_of_listing_order() -> None:
    first = select_targets(PODS, ChaosMode.FIXED, 3, "uid/kill")
    assert select_targets(list(reversed(PODS)), ChaosMode.FIXED, 3, "uid/kill") == first
    assert select_targets(PODS, ChaosMode.FIXED, 3, "uid/kill") == first
    # Another seed picks differently (for at least one of a handful of seeds).
    others = {tuple(select_targets(PODS, ChaosMode.FIXED, 3, f"uid/kill-{i}")) for i in range(5)}
    assert others != {tuple(first)}


@given(st.lists(st.text(min_size=1, max_size=8), min_size=1, max_size=30, unique=True), st.integers(1, 100))
def test_percent_selection_is_a_subset_of_the_right_size(pods: list[str], percent: int) -> None:
    chosen = select_targets(pods, ChaosMode.PERCENT, percent, "seed")
    assert set(chosen) <= set(pods)
    assert len(chosen) == min(len(pods), -(-len(pods) * percent // 100))
    assert chosen == sorted(chosen)


# --- schedule ----------------------------------------------------------------------------------


@given(st.integers(0, 3600), st.integers(0, 100), st.text(max_size=20))
def test_start_offset_stays_within_the_jitter(start_after: int, jitter: int, key: str) -> None:
    offset = start_offset_seconds(start_after, jitter, key)
    spread = start_after * jitter / 100
    assert start_after - spread - 1e-9 <= offset <= start_after + spread + 1e-9
    assert offset >= 0
    assert offset == start_offset_seconds(start_after, jitter, key)


def test_no_jitter_means_exactly_start_after() -> None:
    assert start_offset_seconds(40, 0, "x") == 40
    assert start_offset_seconds(0, 100, "x") == 0


def test_jitter_spreads_starts_across_sessions() -> None:
    offsets = {start_offset_seconds(100, 50, f"uid-{i}/cut") for i in range(50)}
    assert len(offsets) > 5
    assert min(offsets) >= 50
    assert max(offsets) <= 150


def test_first_plan_schedules_from_the_running_time_and_caps_the_duration() -> None:
    e = exp(startAfterSeconds=10, durationSeconds=900)
    actions = plan(spec(e), {}, obs(), Limits(max_duration_seconds=120))
    act = only(actions)
    assert act.do is Do.SCHEDULE
    assert act.record.phase is Phase.SCHEDULED
    assert act.record.start_at == at(10)
    assert act.record.duration_seconds == 120
    assert "capped" in (act.record.message or "")


def test_experiment_added_to_a_long_running_session_counts_from_now() -> None:
    e = exp(startAfterSeconds=10, durationSeconds=30)
    act = plan(spec(e), {}, obs(now=at(3600)), LIMITS)[0]
    assert act.record.start_at == at(3610)
    # Within its window it is not moved: the session's start stays the base.
    assert plan(spec(e), {}, obs(now=at(20)), LIMITS)[0].record.start_at == at(10)


def test_nothing_is_scheduled_before_the_session_runs() -> None:
    assert plan(spec(exp()), {}, obs(started_at=None, running=False), LIMITS) == []


def test_scheduled_and_due_injects_in_the_same_plan() -> None:
    e = exp()
    actions = plan(spec(e), {}, obs(), LIMITS)
    assert [a.do for a in actions] == [Do.SCHEDULE, Do.INJECT]
    inject = actions[1]
    assert inject.record.phase is Phase.INJECTING
    assert inject.job_name == job_name(UID, "cut", JobAction.INJECT) == inject.record.job_name
    assert inject.request.seed == f"{UID}/cut"
    assert inject.request.kind is ChaosKind.NETWORK_PARTITION


def test_not_due_yet_waits() -> None:
    e = exp(startAfterSeconds=60)
    rec = ExperimentRecord(Phase.SCHEDULED, kind=e.kind, start_at=at(60), duration_seconds=30)
    assert plan(spec(e), {"cut": rec}, obs(now=at(59)), LIMITS) == []
    assert only(plan(spec(e), {"cut": rec}, obs(now=at(60)), LIMITS)).do is Do.INJECT


def test_window_passed_while_held_is_skipped() -> None:
    e = exp()
    rec = ExperimentRecord(Phase.SCHEDULED, kind=e.kind, start_at=T0, duration_seconds=30)
    act = only(plan(spec(e), {"cut": rec}, obs(now=at(31), halt=Halt.KILL_SWITCH), LIMITS))
    assert act.do is Do.SKIP
    assert act.record.verdict is Verdict.SKIPPED
    assert "KillSwitch" in act.record.message


def test_finished_session_skips_what_never_started() -> None:
    e = exp(startAfterSeconds=100)
    rec = ExperimentRecord(Phase.SCHEDULED, kind=e.kind, start_at=at(100), duration_seconds=30)
    act = only(plan(spec(e), {"cut": rec}, obs(now=at(5), running=False, finished=True), LIMITS))
    assert act.do is Do.SKIP


# --- the phase machine -------------------------------------------------------------------------


def test_inject_job_success_confirms_with_its_completion_time() -> None:
    e = exp()
    job = job_name(UID, "cut", JobAction.INJECT)
    rec = ExperimentRecord(Phase.INJECTING, kind=e.kind, start_at=T0, duration_seconds=30, job_name=job)
    o = obs(now=at(5), jobs={job: JobState(JobOutcome.SUCCEEDED, at(3))})
    act = only(plan(spec(e), {"cut": rec}, o, LIMITS))
    assert act.do is Do.CONFIRM_INJECTED
    assert act.record.injected_at == at(3)
    assert act.record.recover_at == at(33)


def test_inject_job_still_running_waits() -> None:
    e = exp()
    job = job_name(UID, "cut", JobAction.INJECT)
    rec = ExperimentRecord(Phase.INJECTING, kind=e.kind, start_at=T0, duration_seconds=30, job_name=job)
    assert plan(spec(e), {"cut": rec}, obs(jobs={job: JobState(JobOutcome.ACTIVE)}), LIMITS) == []


@pytest.mark.parametrize("jobs", [{}, {"X": JobState(JobOutcome.FAILED, T0, "Refused")}])
def test_failed_or_vanished_inject_job_is_an_error_and_restored(jobs: dict[str, JobState]) -> None:
    e = exp()
    job = job_name(UID, "cut", JobAction.INJECT)
    rec = ExperimentRecord(Phase.INJECTING, kind=e.kind, start_at=T0, duration_seconds=30, job_name=job)
    jobs = {job if k == "X" else k: v for k, v in jobs.items()}
    act = only(plan(spec(e), {"cut": rec}, obs(jobs=jobs), LIMITS))
    assert act.do is Do.RESTORE
    assert act.record.verdict is Verdict.ERROR
    assert act.reason == "InjectJobFailed"


def test_pod_termination_needs_no_recover_job() -> None:
    e = exp(name="kill", kind="pod_termination", mode="fixed", value=2)
    rec = injected(e)
    act = only(plan(spec(e), {"kill": rec}, obs(now=at(1)), LIMITS))
    assert act.do is Do.CONFIRM_RECOVERED
    assert act.record.recovered_at == at(0)


def test_partition_is_recovered_by_a_job_at_the_end_of_its_window() -> None:
    e = exp(durationSeconds=30)
    rec = injected(e)
    assert plan(spec(e), {"cut": rec}, obs(now=at(29)), LIMITS) == []
    act = only(plan(spec(e), {"cut": rec}, obs(now=at(30)), LIMITS))
    assert act.do is Do.RECOVER
    assert act.record.phase is Phase.RECOVERING
    assert act.job_name == job_name(UID, "cut", JobAction.RECOVER)
    done = obs(now=at(32), jobs={act.job_name: JobState(JobOutcome.SUCCEEDED, at(31))})
    confirm = only(plan(spec(e), {"cut": act.record}, done, LIMITS))
    assert confirm.do is Do.CONFIRM_RECOVERED
    assert confirm.record.recovered_at == at(31)


def test_recover_job_that_is_late_or_failed_is_bypassed() -> None:
    e = exp(durationSeconds=30)
    rec = replace(injected(e), phase=Phase.RECOVERING, recover_job_name="r")
    late = only(plan(spec(e), {"cut": rec}, obs(now=at(61), jobs={"r": JobState(JobOutcome.ACTIVE)}), LIMITS))
    assert (late.do, late.reason) == (Do.RESTORE, "RecoverJobLate")
    failed = only(
        plan(spec(e), {"cut": rec}, obs(now=at(31), jobs={"r": JobState(JobOutcome.FAILED)}), LIMITS)
    )
    assert (failed.do, failed.reason) == (Do.RESTORE, "RecoverJobFailed")
    assert failed.record.phase is Phase.RECOVERED


def test_restart_long_after_the_window_restores_directly() -> None:
    e = exp(durationSeconds=30)
    act = only(plan(spec(e), {"cut": injected(e)}, obs(now=at(300)), LIMITS))
    assert act.do is Do.RESTORE
    assert act.reason == "Overdue"
    assert act.record.phase is Phase.RECOVERED
    assert act.record.interrupted == "Overdue"


# --- kill switch, pause, strays ----------------------------------------------------------------


@pytest.mark.parametrize("halt", [Halt.KILL_SWITCH, Halt.PAUSED, Halt.NAMESPACE_NOT_ENABLED])
def test_halt_restores_every_active_fault_and_injects_nothing(halt: Halt) -> None:
    cut, api, kill, later = (
        exp(name="cut"),
        exp(name="api", kind="api_failure"),
        exp(name="kill", kind="pod_termination"),
        exp(name="later", startAfterSeconds=5),
    )
    records = {
        "cut": injected(cut),
        "api": replace(injected(api), phase=Phase.RECOVERING, recover_job_name="r"),
        "kill": ExperimentRecord(
            Phase.INJECTING, kind=kill.kind, start_at=T0, duration_seconds=30, job_name="k"
        ),
        "later": ExperimentRecord(Phase.SCHEDULED, kind=later.kind, start_at=at(5), duration_seconds=30),
    }
    o = obs(now=at(10), halt=halt, jobs={"k": JobState(JobOutcome.ACTIVE), "r": JobState(JobOutcome.ACTIVE)})
    actions = plan(spec(cut, api, kill, later), records, o, LIMITS)
    # A pause or the kill switch holds what is scheduled; a namespace without the opt-in skips it.
    skipped = {"later": Do.SKIP} if halt is Halt.NAMESPACE_NOT_ENABLED else {}
    assert {a.experiment: a.do for a in actions} == {
        "cut": Do.RESTORE,
        "api": Do.RESTORE,
        "kill": Do.RESTORE,
        **skipped,
    }
    assert all(a.reason == halt.value for a in actions if a.do is Do.RESTORE)
    assert not any(a.do in (Do.INJECT, Do.RECOVER) for a in actions)
    by_name = {a.experiment: a.record for a in actions}
    assert by_name["cut"].phase is Phase.RECOVERED
    assert by_name["cut"].interrupted == halt.value
    assert by_name["kill"].verdict is Verdict.SKIPPED


def test_session_that_stops_running_restores_too() -> None:
    e = exp()
    act = only(plan(spec(e), {"cut": injected(e)}, obs(now=at(5), running=False), LIMITS))
    assert (act.do, act.reason) == (Do.RESTORE, Halt.NOT_RUNNING.value)


def test_a_fault_object_nobody_accounts_for_is_restored() -> None:
    e = exp()
    done = replace(injected(e), phase=Phase.VERDICT, verdict=Verdict.PASS)
    actions = plan(spec(e), {"cut": done}, obs(faults_present=frozenset({"cut", "gone"})), LIMITS)
    assert {(a.do, a.experiment, a.reason) for a in actions} == {
        (Do.RESTORE, "cut", "StrayFault"),
        (Do.RESTORE, "gone", "StrayFault"),
    }
    assert all(a.record is None for a in actions)  # the records stay as they were


def test_an_active_fault_object_is_left_alone() -> None:
    e = exp()
    assert (
        plan(spec(e), {"cut": injected(e)}, obs(now=at(5), faults_present=frozenset({"cut"})), LIMITS) == []
    )


def test_experiment_removed_from_spec_mid_fault_is_restored() -> None:
    e = exp()
    act = only(plan(spec(), {"cut": injected(e)}, obs(now=at(5)), LIMITS))
    assert (act.do, act.reason) == (Do.RESTORE, "RemovedFromSpec")
    assert act.record.verdict is Verdict.SKIPPED


# --- verdicts ----------------------------------------------------------------------------------


def recovered(e: ChaosExperiment, **kw: Any) -> ExperimentRecord:
    return replace(injected(e), phase=Phase.RECOVERED, recovered_at=at(e.duration_seconds), **kw)


@pytest.mark.parametrize(
    ("seconds", "ready", "verdict"),
    [
        (35, True, Verdict.PASS),
        (60, True, Verdict.PASS),  # exactly the objective passes
        (61, True, Verdict.FAIL),  # ready, but too late
        (50, False, None),  # not ready, still within the objective: wait
        (61, False, Verdict.FAIL),  # not ready past the objective
    ],
)
def test_verdict_against_the_recovery_objective(seconds: int, ready: bool, verdict: Verdict | None) -> None:
    e = exp(durationSeconds=30, recoveryObjectiveSeconds=60)
    actions = plan(spec(e), {"cut": recovered(e)}, obs(now=at(seconds), ready={"cut": ready}), LIMITS)
    if verdict is None:
        assert actions == []
        return
    act = only(actions)
    assert act.do is Do.VERDICT
    assert act.record.verdict is verdict
    assert act.record.phase is Phase.VERDICT
    assert act.record.recovery_seconds == (seconds if ready else None)


def test_pod_termination_verdict_times_the_replacement() -> None:
    e = exp(name="kill", kind="pod_termination", recoveryObjectiveSeconds=10)
    rec = replace(injected(e), phase=Phase.RECOVERED, recovered_at=at(0))
    act = only(plan(spec(e), {"kill": rec}, obs(now=at(4), ready={"kill": True}), LIMITS))
    assert (act.record.verdict, act.record.recovery_seconds) == (Verdict.PASS, 4)


def test_dry_run_walks_the_schedule_without_jobs_and_reports() -> None:
    e = exp(durationSeconds=10)
    first = plan(spec(e, dry_run=True), {}, obs(), LIMITS)
    assert [a.do for a in first] == [Do.SCHEDULE, Do.INJECT]
    inject = first[1]
    assert inject.job_name is None
    assert inject.request.dry_run
    assert inject.record.phase is Phase.INJECTED
    assert inject.record.dry_run
    later = plan(spec(e, dry_run=True), {"cut": inject.record}, obs(now=at(10)), LIMITS)
    assert [a.do for a in later] == [Do.CONFIRM_RECOVERED, Do.VERDICT]
    assert later[1].record.verdict is Verdict.DRY_RUN


# --- validation, records, conditions -----------------------------------------------------------


@pytest.mark.parametrize(
    ("kw", "problem"),
    [
        ({"kind": "api_failure", "service": None, "selector": {"a": "b"}}, "api_failure needs a service"),
        ({"kind": "pod_termination", "service": None}, "pod_termination needs a service or a selector"),
        ({"selector": {"a": "b"}}, "either service or selector"),
        ({"service": None, "selector": {}}, "must not be empty"),
        ({"kind": "zone_outage", "service": None, "zone": "z"}, None),
    ],
)
def test_experiment_problems(kw: dict[str, Any], problem: str | None) -> None:
    found = experiment_problem(exp(**kw))
    assert (found is None) if problem is None else (problem in (found or ""))


def test_invalid_experiment_is_recorded_once_and_never_run() -> None:
    e = exp(kind="api_failure", service=None, selector={"a": "b"})
    act = only(plan(spec(e), {}, obs(), LIMITS))
    assert act.do is Do.INVALID
    assert act.record.phase is Phase.INVALID
    assert plan(spec(e), {"cut": act.record}, obs(), LIMITS) == []


def test_record_round_trips_through_status() -> None:
    rec = recovered(exp(), recovery_seconds=12.5, verdict=Verdict.PASS, expected_pods=3)
    status = {"experiments": {"cut": rec.to_status()}}
    assert status["experiments"]["cut"]["injectedAt"] == "2026-01-01T12:00:00Z"
    assert records_from_status(status) == {"cut": rec}


def test_conditions() -> None:
    e = exp()
    refused = conditions(obs(halt=Halt.NAMESPACE_NOT_ENABLED), {})
    assert (refused[0].type, refused[0].status, refused[0].reason) == (
        "ChaosAllowed",
        False,
        "NamespaceNotEnabled",
    )
    assert "heady.io/chaos=enabled" in refused[0].message
    active = conditions(obs(), {"cut": injected(e)})
    assert (active[0].status, active[1].type, active[1].status) == (True, "ChaosActive", True)
    assert conditions(obs(halt=Halt.KILL_SWITCH), {})[0].reason == "KillSwitch"


def test_label_helpers() -> None:
    assert label_value("short") == "short"
    long = "x" * 100
    assert len(label_value(long)) <= 63
    assert label_value(long) != label_value("x" * 99)
    assert (
        label_selector({"b": "2", "a": "1"}, [{"key": "c", "operator": "In", "values": ["y", "x"]}])
        == "a=1,b=2,c in (x,y)"
    )
    assert len(job_name(UID, "e" * 63, JobAction.RECOVER)) <= 63


# --- the command line and the Job ---------------------------------------------------------------


REQUEST = FaultRequest(
    namespace="team",
    kind=ChaosKind.POD_TERMINATION,
    session="s",
    experiment="kill",
    selector={"app": "web", "tier": "api"},
    mode=ChaosMode.FIXED,
    value=2,
    duration_seconds=30,
    seed=f"{UID}/kill",
)


@pytest.mark.parametrize(
    "request_",
    [
        REQUEST,
        replace(REQUEST, selector=None, service="web", mode=ChaosMode.ALL, value=None, dry_run=True),
        replace(
            REQUEST, kind=ChaosKind.ZONE_OUTAGE, selector=None, zone="zone-a", mode=ChaosMode.ONE, value=None
        ),
    ],
)
def test_argv_round_trips(request_: FaultRequest) -> None:
    for action in JobAction:
        assert parse(to_argv(action, request_)) == (action, request_)


def test_inject_argv_is_checked() -> None:
    with pytest.raises(UsageError, match="needs --value"):
        parse(["inject", "--namespace", "n", "--kind", "pod_termination", "--session", "s", "--experiment", "e",
               "--mode", "fixed"])  # fmt: skip
    with pytest.raises(UsageError, match="needs --zone"):
        parse(["inject", "--namespace", "n", "--kind", "zone_outage", "--session", "s", "--experiment", "e"])
    # recover needs neither: it finds its objects by labels.
    parse(["recover", "--namespace", "n", "--kind", "zone_outage", "--session", "s", "--experiment", "e"])


def test_build_job_is_restricted_and_labelled() -> None:
    settings = Settings(chaos_image="registry/heady:1.2", operator_namespace="heady-system")
    name = job_name(UID, "kill", JobAction.INJECT)
    job = build_job(settings, JobAction.INJECT, REQUEST, UID, name)
    assert job["metadata"]["namespace"] == "heady-system"
    labels = job["metadata"]["labels"]
    assert labels["heady.io/session"] == "s"
    assert labels["heady.io/experiment"] == "kill"
    assert labels["heady.io/action"] == "inject"
    assert labels["heady.io/session-uid"] == UID
    spec_ = job["spec"]
    assert spec_["backoffLimit"] == 0  # never inject twice
    assert spec_["activeDeadlineSeconds"] == settings.chaos_job_deadline_seconds
    assert spec_["ttlSecondsAfterFinished"] == settings.chaos_job_ttl_seconds
    pod = spec_["template"]["spec"]
    assert pod["serviceAccountName"] == "heady-chaos"
    assert pod["restartPolicy"] == "Never"
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    (container,) = pod["containers"]
    assert container["image"] == "registry/heady:1.2"
    assert container["command"] == ["heady-chaos"]
    assert parse(container["args"]) == (JobAction.INJECT, REQUEST)
    sc = container["securityContext"]
    assert sc["runAsUser"] == 10001
    assert sc["runAsNonRoot"] is True
    assert sc["readOnlyRootFilesystem"] is True
    assert sc["allowPrivilegeEscalation"] is False
    assert sc["capabilities"] == {"drop": ["ALL"]}
    recover = build_job(settings, JobAction.RECOVER, REQUEST, UID, job_name(UID, "kill", JobAction.RECOVER))
    assert recover["spec"]["backoffLimit"] > 0  # recovery is idempotent: retrying helps


# --- issue 17: a halted experiment is never a Pass ---------------------------------------------


@pytest.mark.parametrize("halt", list(Halt))
def test_an_experiment_cut_short_by_a_halt_is_skipped_not_passed(halt: Halt) -> None:
    e = exp(durationSeconds=30, recoveryObjectiveSeconds=60)
    restore = only(plan(spec(e), {"cut": injected(e)}, obs(now=at(5), halt=halt), LIMITS))
    assert restore.do is Do.RESTORE
    # The halt lifts and the target is Ready at once: before, this was a Pass for 5 s of fault.
    act = only(plan(spec(e), {"cut": restore.record}, obs(now=at(6), ready={"cut": True}), LIMITS))
    assert act.do is Do.VERDICT
    assert act.record.verdict is Verdict.SKIPPED
    assert halt.value in act.record.message


@pytest.mark.parametrize("reason", ["Overdue", "RecoverJobLate", "RecoverJobFailed"])
def test_a_restore_after_the_full_window_is_still_judged(reason: str) -> None:
    e = exp(durationSeconds=30, recoveryObjectiveSeconds=60)
    rec = recovered(e, interrupted=reason)
    act = only(plan(spec(e), {"cut": rec}, obs(now=at(40), ready={"cut": True}), LIMITS))
    assert act.record.verdict is Verdict.PASS


# --- issue 17: a session in a namespace without the opt-in settles and holds no finalizer -------


def test_a_namespace_without_the_opt_in_skips_every_experiment_at_once() -> None:
    e, later = exp(), exp(name="later", startAfterSeconds=300)
    for started in (T0, None):  # running or not yet
        o = obs(halt=Halt.NAMESPACE_NOT_ENABLED, started_at=started, running=started is not None)
        actions = plan(spec(e, later), {}, o, LIMITS)
        assert {a.experiment: a.do for a in actions} == {"cut": Do.SKIP, "later": Do.SKIP}
        assert all(a.record.verdict is Verdict.SKIPPED for a in actions)
        assert "heady.io/chaos=enabled" in actions[0].record.message
        records = {a.experiment: a.record for a in actions}
        conds = [
            {"type": c.type, "status": "True" if c.status else "False", "reason": c.reason}
            for c in conditions(o, records)
        ]
        assert settled(["cut", "later"], records, conds)
        assert plan(spec(e, later), records, o, LIMITS) == []


def test_settled_only_when_refused_for_the_namespace_and_everything_is_final() -> None:
    e = exp()
    final = {"cut": replace(injected(e), phase=Phase.VERDICT, verdict=Verdict.SKIPPED)}
    refused = [{"type": "ChaosAllowed", "status": "False", "reason": "NamespaceNotEnabled"}]
    assert settled(["cut"], final, refused)
    assert not settled(["cut", "new"], final, refused)  # an experiment added since
    assert not settled(["cut"], {"cut": recovered(e)}, refused)  # still to be judged
    assert not settled(["cut"], final, [{**refused[0], "reason": "KillSwitch"}])  # held, not refused
    assert not settled(["cut"], final, [{**refused[0], "status": "True"}])
    assert not settled(["cut"], final, [])


def test_a_fault_past_its_expiry_and_grace_is_expired() -> None:
    assert not fault_expired("2026-01-01T12:00:30Z", at(40), 30)
    assert fault_expired("2026-01-01T12:00:30Z", at(60), 30)
    assert fault_expired(None, at(0), 30)  # unreadable: chaos must end
    assert fault_expired("garbage", at(0), 30)
    assert not fault_expired("9999-12-31T23:59:59Z", at(0), 30)
