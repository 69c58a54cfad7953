"""Arena workspaces: the claim and clone Job manifests, the lifecycle planner, and the clone script
itself run against real git repositories on this machine."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
from pydantic import ValidationError

from heady_operator.models.arena import ArenaSessionSpec, RepoRef
from heady_operator.planning.chaos import JobOutcome
from heady_operator.planning.workspace import (
    CLONE_SCRIPT,
    CloneJob,
    Do,
    Phase,
    WorkspaceObservation,
    WorkspaceParams,
    WorkspacePlan,
    WorkspaceSession,
    build_claim,
    build_clone_job,
    claim_name,
    clone_args,
    clone_job_name,
    dev_branch,
    parse_commits,
    plan_workspace,
    repos_hash,
)

PARAMS = WorkspaceParams(image="localhost/heady/git:test", size="2Gi", storage_class="fast", retries=2)
SHA_A = "a" * 40
SHA_B = "b" * 40


def repo(name: str = "web", url: str | None = "git://git-server/web.git", **kw: str) -> RepoRef:
    return RepoRef.model_validate({"name": name, "url": url, **kw})


def session(
    *repos: RepoRef, retain: bool = False, admitted: bool = True, finished: bool = False
) -> WorkspaceSession:
    return WorkspaceSession(
        namespace="team",
        name="s1",
        uid="uid-1",
        repos=repos or (repo(),),
        retain=retain,
        admitted=admitted,
        finished=finished,
    )


def job_of(s: WorkspaceSession) -> str:
    return clone_job_name(s.name, s.uid, repos_hash(s.repos))


def dos(plan: WorkspacePlan) -> list[tuple[Do, str]]:
    return [(a.do, a.name) for a in plan.actions]


# --- models -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"name": "web", "url": "ftp://x/y"}, "url must be"),
        ({"name": "web", "url": "https://host/repo git"}, "url must be"),
        ({"name": "../up", "url": "https://host/r.git"}, "usable as a directory"),
        ({"name": "web", "url": "https://host/r.git", "branch": "-x"}, "branch name git accepts"),
        ({"name": "web", "url": "https://host/r.git", "branch": "a..b"}, "branch name git accepts"),
        ({"name": "web", "credentialsSecret": "creds"}, "credentialsSecret needs a url"),
    ],
)
def test_bad_repos_are_refused_with_the_crd_messages(body: dict[str, str], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        RepoRef.model_validate(body)


@pytest.mark.parametrize(
    "url",
    [
        "https://example.com/org/repo.git",
        "http://h:8080/r",
        "git://git-server/web.git",
        "ssh://git@h/r",
        "git@h:org/r",
    ],
)
def test_git_urls_are_accepted(url: str) -> None:
    assert RepoRef.model_validate({"name": "r", "url": url}).url == url


def test_only_repos_with_a_url_are_cloned() -> None:
    spec = ArenaSessionSpec.model_validate(
        {"repos": [{"name": "a"}, {"name": "b", "url": "git://h/b"}], "retainWorkspace": True}
    )
    assert [r.name for r in spec.cloned_repos] == ["b"]
    assert spec.retain_workspace


# --- manifests --------------------------------------------------------------------------------


def test_claim_is_owned_by_the_session_unless_retained() -> None:
    claim = build_claim(session(), PARAMS)
    assert claim["metadata"]["name"] == "s1-workspace" == claim_name("s1")
    assert claim["metadata"]["ownerReferences"] == [
        {
            "apiVersion": "heady.io/v1alpha1",
            "kind": "ArenaSession",
            "name": "s1",
            "uid": "uid-1",
            "controller": True,
        }
    ]
    assert claim["spec"] == {
        "accessModes": ["ReadWriteOnce"],
        "volumeMode": "Filesystem",
        "resources": {"requests": {"storage": "2Gi"}},
        "storageClassName": "fast",
    }
    retained = build_claim(session(retain=True), WorkspaceParams(image="x"))
    assert "ownerReferences" not in retained["metadata"]
    assert "storageClassName" not in retained["spec"]  # the cluster's default class


def test_clone_job_mounts_the_claim_and_credentials_and_runs_restricted() -> None:
    s = session(
        repo("a", "https://h/a.git", credentialsSecret="a-creds"),
        repo("b"),
        repo("c", "git@h:c", credentialsSecret="c-key"),
    )
    name = job_of(s)
    job = build_clone_job(s, PARAMS, name)
    assert len(name) <= 63 and name.startswith("s1-clone-")
    assert job["metadata"]["ownerReferences"][0]["uid"] == "uid-1"
    spec = job["spec"]
    assert spec["backoffLimit"] == 2
    pod = spec["template"]["spec"]
    container = pod["containers"][0]
    assert container["image"] == "localhost/heady/git:test"
    assert container["command"][:3] == ["/bin/sh", "-c", CLONE_SCRIPT]
    assert container["args"] == [
        "s1",
        "a",
        "https://h/a.git",
        "main",
        "0",
        "b",
        "git://git-server/web.git",
        "main",
        "",
        "c",
        "git@h:c",
        "main",
        "1",
    ]
    assert container["args"] == clone_args(s)
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert volumes["workspace"]["persistentVolumeClaim"] == {"claimName": "s1-workspace"}
    assert volumes["credentials-0"]["secret"]["secretName"] == "a-creds"
    assert volumes["credentials-0"]["secret"]["optional"] is True, "missing: the clone says so at once"
    assert volumes["credentials-1"]["secret"]["secretName"] == "c-key"
    mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
    assert mounts == {
        "/workspace": "workspace",
        "/tmp": "tmp",
        "/credentials/0": "credentials-0",
        "/credentials/1": "credentials-1",
    }
    assert pod["securityContext"]["runAsNonRoot"] and pod["securityContext"]["fsGroup"] == 10001
    assert container["securityContext"]["readOnlyRootFilesystem"]
    assert pod["automountServiceAccountToken"] is False


def test_long_session_names_still_give_valid_names() -> None:
    long = "x" * 253
    assert len(claim_name(long)) <= 253
    assert len(clone_job_name(long, "u", "h")) <= 63


def test_commits_are_read_from_the_termination_message() -> None:
    assert parse_commits(f"0 {SHA_A}\n1 {SHA_B}\n7 {SHA_A}\nnoise\n", 2) == {0: SHA_A, 1: SHA_B}
    assert parse_commits("repo web: fatal: not found", 1) == {}


# --- the lifecycle ----------------------------------------------------------------------------


def test_a_queued_session_has_no_workspace() -> None:
    assert (
        plan_workspace(session(admitted=False), WorkspaceObservation(), None, None, PARAMS) == WorkspacePlan()
    )


def test_a_session_without_urls_has_no_workspace() -> None:
    s = WorkspaceSession("team", "s1", "uid-1", (), False, True, False)
    assert plan_workspace(s, WorkspaceObservation(), None, None, PARAMS) == WorkspacePlan()


def test_admission_creates_the_claim_and_the_clone_job() -> None:
    s = session()
    plan = plan_workspace(s, WorkspaceObservation(), None, None, PARAMS)
    assert dos(plan) == [(Do.CREATE_CLAIM, "s1-workspace"), (Do.CREATE_JOB, job_of(s))]
    assert plan.workspace is not None and plan.workspace["phase"] == Phase.CLONING
    assert plan.workspace["claimName"] == "s1-workspace" and plan.workspace["jobName"] == job_of(s)
    assert plan.repos == [
        {"name": "web", "url": "git://git-server/web.git", "branch": "main", "devBranch": "arena/s1"}
    ]
    assert plan.ready is not None and plan.ready[:2] == (False, "Cloning")
    assert plan.event is not None and plan.event[0] == "WorkspaceCloning"
    assert plan.cloning


def test_while_cloning_nothing_is_created_twice() -> None:
    s = session()
    first = plan_workspace(s, WorkspaceObservation(), None, None, PARAMS)
    obs = WorkspaceObservation(True, True, {job_of(s): CloneJob(job_of(s), JobOutcome.ACTIVE)})
    plan = plan_workspace(s, obs, first.workspace, first.repos, PARAMS)
    assert dos(plan) == [] and plan.cloning and plan.event is None


def test_a_succeeded_clone_reports_each_commit_and_the_dev_branch() -> None:
    s = session(repo("a"), repo("b", "https://h/b.git", branch="release/1.2"))
    prev = plan_workspace(s, WorkspaceObservation(), None, None, PARAMS)
    done = CloneJob(job_of(s), JobOutcome.SUCCEEDED, f"0 {SHA_A}\n1 {SHA_B}\n")
    plan = plan_workspace(
        s, WorkspaceObservation(True, True, {done.name: done}), prev.workspace, prev.repos, PARAMS
    )
    assert dos(plan) == []  # the finished Job stays for its logs (ttlSecondsAfterFinished)
    assert plan.workspace is not None and plan.workspace["phase"] == Phase.READY
    assert [(r["name"], r["branch"], r["devBranch"], r["commit"]) for r in plan.repos or []] == [
        ("a", "main", "arena/s1", SHA_A),
        ("b", "release/1.2", "arena/s1", SHA_B),
    ]
    assert plan.ready is not None and plan.ready[0] is True
    assert plan.event is not None and plan.event[0] == "WorkspaceReady" and SHA_A[:12] in plan.event[1]
    # Once Ready, the Job may go (its TTL) without anything happening.
    again = plan_workspace(s, WorkspaceObservation(True, True, {}), plan.workspace, plan.repos, PARAMS)
    assert dos(again) == [] and again.workspace == plan.workspace and again.repos == plan.repos
    assert again.event is None


def test_a_failed_clone_is_degraded_with_gits_message_and_leaves_nothing_behind() -> None:
    s = session()
    prev = plan_workspace(s, WorkspaceObservation(), None, None, PARAMS)
    git_says = "repo web: fatal: remote error: access denied or repository not exported: /web.git"
    failed = CloneJob(job_of(s), JobOutcome.FAILED, git_says)
    plan = plan_workspace(
        s, WorkspaceObservation(True, True, {failed.name: failed}), prev.workspace, prev.repos, PARAMS
    )
    assert dos(plan) == [(Do.DELETE_JOB, job_of(s)), (Do.DELETE_CLAIM, "s1-workspace")]
    assert plan.problem == git_says
    assert plan.ready == (False, "CloneFailed", git_says)
    assert plan.event == ("CloneFailed", git_says, "Warning")
    # Not retried for the same repos ...
    again = plan_workspace(s, WorkspaceObservation(), plan.workspace, plan.repos, PARAMS)
    assert dos(again) == [] and again.problem == git_says and again.event is None
    # ... but a fixed url clones again.
    fixed = session(repo(url="git://git-server/fixed.git"))
    retry = plan_workspace(fixed, WorkspaceObservation(), plan.workspace, plan.repos, PARAMS)
    assert dos(retry) == [(Do.CREATE_CLAIM, "s1-workspace"), (Do.CREATE_JOB, job_of(fixed))]
    assert retry.problem is None


def test_a_failed_clone_keeps_a_retained_claim() -> None:
    s = session(retain=True)
    failed = CloneJob(job_of(s), JobOutcome.FAILED, "repo web: fatal: x")
    plan = plan_workspace(s, WorkspaceObservation(True, False, {failed.name: failed}), None, None, PARAMS)
    assert dos(plan) == [(Do.DELETE_JOB, job_of(s))]


def test_changed_repos_replace_the_old_job_on_the_same_claim() -> None:
    old, new = session(repo("a")), session(repo("a"), repo("b"))
    ready = {
        "phase": "Ready",
        "claimName": "s1-workspace",
        "reposHash": repos_hash(old.repos),
        "message": "m",
    }
    stale = CloneJob(job_of(old), JobOutcome.SUCCEEDED, f"0 {SHA_A}")
    plan = plan_workspace(new, WorkspaceObservation(True, True, {stale.name: stale}), ready, None, PARAMS)
    assert dos(plan) == [(Do.DELETE_JOB, job_of(old)), (Do.CREATE_JOB, job_of(new))]


def test_finishing_releases_the_workspace() -> None:
    s = session(finished=True)
    ready = {"phase": "Ready", "claimName": "s1-workspace", "reposHash": repos_hash(s.repos)}
    repos = [{"name": "web", "commit": SHA_A}]
    done = CloneJob(job_of(s), JobOutcome.SUCCEEDED)
    plan = plan_workspace(s, WorkspaceObservation(True, True, {done.name: done}), ready, repos, PARAMS)
    assert dos(plan) == [(Do.DELETE_JOB, job_of(s)), (Do.DELETE_CLAIM, "s1-workspace")]
    assert plan.workspace is not None and plan.workspace["phase"] == Phase.RELEASED
    assert plan.repos is not None and plan.repos[0]["commit"] == SHA_A  # the record stays
    assert plan.event is not None and plan.event[0] == "WorkspaceReleased"
    after = plan_workspace(s, WorkspaceObservation(), plan.workspace, plan.repos, PARAMS)
    assert dos(after) == [] and after.event is None


def test_finishing_with_retain_keeps_the_claim_without_an_owner() -> None:
    s = session(finished=True, retain=True)
    ready = {"phase": "Ready", "claimName": "s1-workspace", "reposHash": repos_hash(s.repos)}
    plan = plan_workspace(s, WorkspaceObservation(True, True, {}), ready, None, PARAMS)
    assert dos(plan) == [(Do.DISOWN_CLAIM, "s1-workspace")]
    assert plan.workspace is not None and plan.workspace["phase"] == Phase.RETAINED
    assert plan.event is not None and plan.event[0] == "WorkspaceRetained"


def test_a_session_that_finished_unadmitted_never_had_a_workspace() -> None:
    assert (
        plan_workspace(session(finished=True), WorkspaceObservation(), None, None, PARAMS) == WorkspacePlan()
    )


@pytest.mark.parametrize(
    ("retain", "owned", "expected"), [(True, True, Do.DISOWN_CLAIM), (False, False, Do.OWN_CLAIM)]
)
def test_retain_can_be_changed_while_running(retain: bool, owned: bool, expected: Do) -> None:
    s = session(retain=retain)
    ready = {"phase": "Ready", "claimName": "s1-workspace", "reposHash": repos_hash(s.repos)}
    plan = plan_workspace(s, WorkspaceObservation(True, owned, {}), ready, None, PARAMS)
    assert dos(plan) == [(expected, "s1-workspace")]


def test_a_preempted_session_keeps_its_workspace() -> None:
    s = session(admitted=False)
    ready = {"phase": "Ready", "claimName": "s1-workspace", "reposHash": repos_hash(s.repos), "message": "m"}
    plan = plan_workspace(s, WorkspaceObservation(True, True, {}), ready, None, PARAMS)
    assert dos(plan) == [] and plan.workspace == ready


# --- the clone script, against real git repositories -------------------------------------------


def _git(*args: str, cwd: Path | None = None) -> str:
    env = dict(
        os.environ,
        GIT_AUTHOR_NAME="t",
        GIT_AUTHOR_EMAIL="t@example.com",
        GIT_COMMITTER_NAME="t",
        GIT_COMMITTER_EMAIL="t@example.com",
        GIT_CONFIG_GLOBAL="/dev/null",
    )
    return subprocess.run(
        ["git", *args], cwd=cwd, env=env, check=True, capture_output=True, text=True
    ).stdout.strip()


def _origin(tmp: Path, name: str, branch: str) -> tuple[Path, str]:
    work = tmp / f"{name}-src"
    work.mkdir()
    _git("init", "-q", "-b", branch, cwd=work)
    (work / "README").write_text(f"{name}\n")
    _git("add", "README", cwd=work)
    _git("commit", "-q", "-m", "first", cwd=work)
    bare = tmp / f"{name}.git"
    _git("clone", "-q", "--bare", str(work), str(bare))
    return bare, _git("rev-parse", "HEAD", cwd=work)


def _run_script(tmp: Path, args: list[str]) -> tuple[int, str]:
    ws, scratch, msg = tmp / "ws", tmp / "scratch", tmp / "termination-log"
    ws.mkdir(exist_ok=True)
    scratch.mkdir(exist_ok=True)
    env = dict(
        os.environ,
        HEADY_WORKSPACE=str(ws),
        HEADY_TERMINATION_LOG=str(msg),
        TMPDIR=str(scratch),
        HOME=str(scratch),
        GIT_CONFIG_GLOBAL="/dev/null",
        GIT_TERMINAL_PROMPT="0",
    )
    res = subprocess.run(
        ["/bin/sh", "-c", CLONE_SCRIPT, "clone", *args], env=env, capture_output=True, text=True
    )
    return res.returncode, msg.read_text()


def test_the_clone_script_makes_the_dev_branch_and_reports_the_base_commit(tmp_path: Path) -> None:
    a, sha_a = _origin(tmp_path, "a", "main")
    b, sha_b = _origin(tmp_path, "b", "develop")
    s = session(repo("a", "https://unused/a"), repo("b", "https://unused/b", branch="develop"))
    args = clone_args(s)
    args[2], args[6] = f"file://{a}", f"file://{b}"  # the CRD allows no file://; git does
    code, message = _run_script(tmp_path, args)
    assert code == 0, message
    assert parse_commits(message, 2) == {0: sha_a, 1: sha_b}
    for name, sha in (("a", sha_a), ("b", sha_b)):
        clone = tmp_path / "ws" / name
        assert _git("branch", "--show-current", cwd=clone) == dev_branch("s1")
        assert _git("rev-parse", "HEAD", cwd=clone) == sha
    assert not list((tmp_path / "ws").glob(".clone-*"))
    # A retry keeps what is there (the dev branch may already carry work).
    (tmp_path / "ws" / "a" / "work").write_text("x")
    code, message = _run_script(tmp_path, args)
    assert code == 0 and parse_commits(message, 2) == {0: sha_a, 1: sha_b}
    assert (tmp_path / "ws" / "a" / "work").exists()


def test_the_clone_script_reports_gits_message_for_a_bad_repo(tmp_path: Path) -> None:
    code, message = _run_script(tmp_path, ["s1", "gone", f"file://{tmp_path}/missing.git", "main", ""])
    assert code == 1
    assert message.startswith("repo gone: fatal:") and "missing.git" in message
    assert not (tmp_path / "ws" / "gone").exists()


def test_the_clone_script_reports_a_missing_branch(tmp_path: Path) -> None:
    a, _ = _origin(tmp_path, "a", "main")
    code, message = _run_script(tmp_path, ["s1", "a", f"file://{a}", "nope", ""])
    assert code == 1 and message.startswith("repo a:") and "nope" in message


def test_the_clone_script_says_when_a_repos_credentials_secret_is_missing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    a, _ = _origin(tmp_path, "a", "main")
    creds = tmp_path / "credentials" / "0"
    creds.mkdir(parents=True)  # what an optional Secret that does not exist mounts as
    monkeypatch.setenv("HEADY_CREDENTIALS", str(creds.parent))
    code, message = _run_script(tmp_path, ["s1", "a", f"file://{a}", "main", "0"])
    assert code == 1
    assert message.startswith("repo a: its credentialsSecret is missing"), message
    assert not (tmp_path / "ws" / "a").exists()
    # With a username and password in it, the same clone goes ahead (file:// asks for neither).
    (creds / "username").write_text("u")
    (creds / "password").write_text("p")
    code, message = _run_script(tmp_path, ["s1", "a", f"file://{a}", "main", "0"])
    assert code == 0, message


# --- the controller's conditions ----------------------------------------------------------------


async def test_a_failed_workspace_is_degraded_and_rewritten_by_no_later_pass() -> None:
    """Two writers of Degraded in one pass (the session's and the workspace's) must agree, or
    every pass would flip it and write status again (and the write wake the next pass)."""
    from datetime import UTC, datetime, timedelta

    from heady_operator.arena import ArenaController
    from heady_operator.config import Settings

    times = iter(datetime(2026, 11, 29, 12, 0, tzinfo=UTC) + timedelta(seconds=i) for i in range(10))
    arena = ArenaController(Settings(), None, clock=lambda: next(times))
    repos = [RepoRef.model_validate({"name": "web", "url": "git://h/web.git"})]
    git_says = "repo web: fatal: remote error: access denied or repository not exported: /web.git"
    body = {
        "metadata": {"name": "s1", "namespace": "team", "uid": "u", "generation": 1},
        "spec": {"repos": [{"name": "web", "url": "git://h/web.git"}]},
        "status": {
            "workspace": {"phase": "Failed", "message": git_says, "reposHash": repos_hash(repos)},
            "admittedAt": "2026-11-29T11:59:00Z",
        },
    }
    arena.on_session("ADDED", body)
    await arena.reconcile()
    first = arena.sessions[("team", "s1")].written
    degraded = next(c for c in first["conditions"] if c["type"] == "Degraded")
    assert (degraded["status"], degraded["reason"], degraded["message"]) == ("True", "CloneFailed", git_says)
    ready = next(c for c in first["conditions"] if c["type"] == "WorkspaceReady")
    assert (ready["status"], ready["reason"]) == ("False", "CloneFailed")
    await arena.reconcile()
    assert arena.sessions[("team", "s1")].written == first
