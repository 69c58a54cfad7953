"""Arena workspaces: a PVC per session holding a clone of each repo with a url, on the dev branch
``arena/<session>`` made from the repo's ``branch`` (the seeds' per-repo dev branches).

Pure: the manifests (the claim, the clone Job) are built from plain data, and `plan_workspace`
turns what was observed (does the claim exist, how did the clone Job end) into actions and the
status to write. The arena controller gathers and applies (kube/workspace.py does the calls).

Lifecycle, in ``status.workspace.phase``::

    (admitted) -> Cloning -> Ready --(finished)--> Released | Retained
                     |
                     +-> Failed (git's message in Degraded; Job and claim deleted)

The claim and the Job carry an ownerReference to the session, so deleting the session (also in
the middle of a clone) lets the garbage collector remove both; with retainWorkspace the claim
has no owner and outlives the session. A failed clone is retried only when the repos change.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from heady_operator.models.arena import KIND, RepoRef
from heady_operator.models.common import API_VERSION
from heady_operator.planning.chaos import LABEL_SESSION, LABEL_SESSION_UID, JobOutcome, label_value

MOUNT = "/workspace"
CREDENTIALS = "/credentials"
CLONE_UID = 10001
COMPONENT = "workspace"
# Finished clone Jobs stay this long for `kubectl logs`, unless the session releases them first.
JOB_TTL_SECONDS = 3600
# The kubelet keeps at most 4096 bytes of a termination message.
MESSAGE_LIMIT = 4096
_SHA = re.compile(r"^(\d+) ([0-9a-f]{40}|[0-9a-f]{64})$")


class Phase(StrEnum):
    CLONING = "Cloning"
    READY = "Ready"
    FAILED = "Failed"
    RELEASED = "Released"
    RETAINED = "Retained"


def dev_branch(session: str) -> str:
    return f"arena/{session}"


def _digest(text: str, length: int = 8) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:length]


def repos_hash(repos: Sequence[RepoRef]) -> str:
    """What the workspace was cloned for: a change of any repo's url, branch or credentials is a
    new clone (a failed clone is retried only then)."""
    data = [[r.name, r.url, r.branch, r.credentials_secret] for r in repos]
    return _digest(json.dumps(data, separators=(",", ":")), 12)


def claim_name(session: str) -> str:
    """Deterministic, so a user's pod can name it before the session exists (at most 253 chars)."""
    return f"{session[:240].rstrip('-.')}-workspace"


def clone_job_name(session: str, uid: str, hash_: str) -> str:
    """At most 63 characters (the Job's name becomes a label value of its pods)."""
    return f"{session[:40].rstrip('-.')}-clone-{_digest(f'{uid}/{hash_}')}"


@dataclass(frozen=True)
class WorkspaceSession:
    """One ArenaSession as its workspace sees it."""

    namespace: str
    name: str
    uid: str
    repos: tuple[RepoRef, ...]
    retain: bool
    admitted: bool
    finished: bool


@dataclass(frozen=True)
class WorkspaceParams:
    """The operator settings the manifests use."""

    image: str
    size: str = "1Gi"
    storage_class: str = ""
    access_mode: str = "ReadWriteOnce"
    deadline_seconds: int = 600
    retries: int = 1


def labels(session: WorkspaceSession) -> dict[str, str]:
    return {
        "app.kubernetes.io/name": "heady-workspace",
        "app.kubernetes.io/component": COMPONENT,
        "app.kubernetes.io/managed-by": "heady-operator",
        LABEL_SESSION: label_value(session.name),
        LABEL_SESSION_UID: session.uid,
    }


def selector(session_uid: str) -> str:
    return f"app.kubernetes.io/component={COMPONENT},{LABEL_SESSION_UID}={session_uid}"


def owner_reference(session: WorkspaceSession) -> dict[str, Any]:
    # No blockOwnerDeletion: it would need update on arenasessions/finalizers where the
    # OwnerReferencesPermissionEnforcement admission runs, and nothing waits for the dependents.
    return {
        "apiVersion": API_VERSION,
        "kind": KIND,
        "name": session.name,
        "uid": session.uid,
        "controller": True,
    }


def build_claim(session: WorkspaceSession, params: WorkspaceParams) -> dict[str, Any]:
    meta: dict[str, Any] = {
        "name": claim_name(session.name),
        "namespace": session.namespace,
        "labels": labels(session),
        "annotations": {"heady.io/session-ref": f"{session.namespace}/{session.name}"},
    }
    if not session.retain:
        meta["ownerReferences"] = [owner_reference(session)]
    spec: dict[str, Any] = {
        "accessModes": [params.access_mode],
        "volumeMode": "Filesystem",
        "resources": {"requests": {"storage": params.size}},
    }
    if params.storage_class:
        spec["storageClassName"] = params.storage_class
    return {"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": meta, "spec": spec}


# POSIX sh (dash in the git image). Arguments: the session, then per repo: name, url, branch and
# the index of its credentials under /credentials ("" for none). Values arrive as arguments,
# never spliced into the script, so a URL or branch cannot become shell. A clone goes to a
# hidden directory first and is renamed when complete: the session's pods never see half a
# clone, and a retried Job starts over. A repo already on its dev branch (a retry, or repos
# added to a session) is kept. The termination message carries "<index> <commit>" per repo, or
# on failure "repo <name>: " and git's last lines, which the operator copies into status.
CLONE_SCRIPT = r"""set -u
session="$1"; shift
# The paths are the pod's; tests run the same script against directories of their own.
ws="${HEADY_WORKSPACE:-/workspace}"
creds="${HEADY_CREDENTIALS:-/credentials}"
msg="${HEADY_TERMINATION_LOG:-/dev/termination-log}"
tmp="${TMPDIR:-/tmp}"
err="$tmp/git.err"
report="$tmp/commits"
: > "$report"
fail() {
  { printf 'repo %s: ' "$1"; grep -v '^$' "$err" | tail -n 6; } | head -c 3800 > "$msg"
  cat "$msg" >&2
  exit 1
}
i=0
while [ "$#" -ge 4 ]; do
  name="$1"; url="$2"; branch="$3"; cred="$4"; shift 4
  unset GIT_SSH_COMMAND GIT_ASKPASS
  if [ -n "$cred" ]; then
    c="$creds/$cred"
    # The Secret is mounted optional: missing, it is an empty directory, and the clone says so
    # now instead of the pod waiting in ContainerCreating until the Job's deadline.
    if [ ! -f "$c/ssh-privatekey" ] && [ ! -f "$c/username" ]; then
      echo "its credentialsSecret is missing in the session's namespace, or holds neither username/password nor ssh-privatekey" > "$err"
      fail "$name"
    fi
    if [ -f "$c/ssh-privatekey" ]; then
      install -m 600 "$c/ssh-privatekey" "$tmp/key-$cred"
      hosts="-o StrictHostKeyChecking=accept-new -o UserKnownHostsFile=$tmp/known_hosts"
      [ -f "$c/known_hosts" ] && hosts="-o StrictHostKeyChecking=yes -o UserKnownHostsFile=$c/known_hosts"
      export GIT_SSH_COMMAND="ssh -i $tmp/key-$cred -o IdentitiesOnly=yes $hosts"
    fi
    if [ -f "$c/username" ]; then
      printf '#!/bin/sh\ncase "$1" in Username*) cat %s/username;; *) cat %s/password;; esac\n' "$c" "$c" > "$tmp/askpass-$cred"
      chmod 700 "$tmp/askpass-$cred"
      export GIT_ASKPASS="$tmp/askpass-$cred"
    fi
  fi
  dir="$ws/$name"
  if [ -d "$dir/.git" ] && git -C "$dir" rev-parse -q --verify "refs/heads/arena/$session" > "$tmp/sha" 2> "$err"; then
    echo "$i $(cat "$tmp/sha")" >> "$report"
  else
    part="$ws/.clone-$name"
    rm -rf "$part"
    git clone --quiet --branch "$branch" -- "$url" "$part" 2> "$err" || fail "$name"
    git -C "$part" checkout --quiet -b "arena/$session" 2> "$err" || fail "$name"
    { rm -rf "$dir" && mv "$part" "$dir"; } 2> "$err" || fail "$name"
    echo "$i $(git -C "$dir" rev-parse HEAD)" >> "$report"
  fi
  i=$((i + 1))
done
cat "$report" > "$msg"
cat "$report"
"""


def clone_args(session: WorkspaceSession) -> list[str]:
    """The script's arguments; credentials are numbered in the order build_clone_job mounts them."""
    args = [session.name]
    index = 0
    for repo in session.repos:
        cred = ""
        if repo.credentials_secret:
            cred, index = str(index), index + 1
        args += [repo.name, repo.url or "", repo.branch, cred]
    return args


def build_clone_job(session: WorkspaceSession, params: WorkspaceParams, name: str) -> dict[str, Any]:
    """The Job that clones every repo with a url into the session's claim."""
    meta_labels = labels(session)
    volumes: list[dict[str, Any]] = [
        {"name": "workspace", "persistentVolumeClaim": {"claimName": claim_name(session.name)}},
        {"name": "tmp", "emptyDir": {"sizeLimit": "64Mi"}},
    ]
    mounts: list[dict[str, Any]] = [
        {"name": "workspace", "mountPath": MOUNT},
        {"name": "tmp", "mountPath": "/tmp"},
    ]
    index = 0
    for repo in session.repos:
        if repo.credentials_secret:
            volumes.append(
                {
                    "name": f"credentials-{index}",
                    # 0440 + fsGroup: readable by the clone's uid, and ssh accepts a key it does not own.
                    # optional: a missing Secret fails the clone at once with a message
                    # (CLONE_SCRIPT) rather than leaving the pod unmountable until the deadline.
                    "secret": {
                        "secretName": repo.credentials_secret,
                        "defaultMode": 0o440,
                        "optional": True,
                    },
                }
            )
            mounts.append(
                {"name": f"credentials-{index}", "mountPath": f"{CREDENTIALS}/{index}", "readOnly": True}
            )
            index += 1
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "name": name,
            "namespace": session.namespace,
            "labels": meta_labels,
            "annotations": {"heady.io/session-ref": f"{session.namespace}/{session.name}"},
            "ownerReferences": [owner_reference(session)],
        },
        "spec": {
            "backoffLimit": params.retries,
            "activeDeadlineSeconds": params.deadline_seconds,
            "ttlSecondsAfterFinished": JOB_TTL_SECONDS,
            "template": {
                "metadata": {"labels": meta_labels},
                "spec": {
                    "restartPolicy": "Never",
                    # A clone has nothing to save, and sh as PID 1 ignores SIGTERM: be gone soon.
                    "terminationGracePeriodSeconds": 5,
                    "automountServiceAccountToken": False,
                    "enableServiceLinks": False,
                    "securityContext": {
                        "runAsNonRoot": True,
                        "runAsUser": CLONE_UID,
                        "runAsGroup": CLONE_UID,
                        "fsGroup": CLONE_UID,
                        "seccompProfile": {"type": "RuntimeDefault"},
                    },
                    "volumes": volumes,
                    "containers": [
                        {
                            "name": "clone",
                            "image": params.image,
                            "imagePullPolicy": "IfNotPresent",
                            "command": ["/bin/sh", "-c", CLONE_SCRIPT, "clone"],
                            "args": clone_args(session),
                            "env": [
                                {"name": "HOME", "value": "/tmp"},
                                # Never wait for a password nobody will type.
                                {"name": "GIT_TERMINAL_PROMPT", "value": "0"},
                            ],
                            "workingDir": MOUNT,
                            "volumeMounts": mounts,
                            "terminationMessagePolicy": "File",
                            "resources": {
                                "requests": {"cpu": "50m", "memory": "64Mi"},
                                "limits": {"memory": "512Mi"},
                            },
                            "securityContext": {
                                "allowPrivilegeEscalation": False,
                                "readOnlyRootFilesystem": True,
                                "runAsNonRoot": True,
                                "capabilities": {"drop": ["ALL"]},
                            },
                        }
                    ],
                },
            },
        },
    }


def parse_commits(message: str, count: int) -> dict[int, str]:
    """The clone Job's termination message: "<index> <commit>" per line, for indexes < count."""
    out: dict[int, str] = {}
    for line in message.splitlines():
        m = _SHA.match(line.strip())
        if m and int(m.group(1)) < count:
            out[int(m.group(1))] = m.group(2)
    return out


# --- the plan ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class CloneJob:
    """A clone Job as observed: its outcome, and the termination message of its last pod (or the
    Job's failure reason when no pod said anything, e.g. DeadlineExceeded)."""

    name: str
    outcome: JobOutcome
    message: str = ""


@dataclass(frozen=True)
class WorkspaceObservation:
    claim_exists: bool = False
    # The claim's ownerReference points at the session (false: retained, or someone removed it).
    claim_owned: bool = False
    # Every Job of the session's workspace (the current repos' and older ones), by name.
    jobs: Mapping[str, CloneJob] = field(default_factory=dict)


class Do(StrEnum):
    CREATE_CLAIM = "CreateClaim"
    CREATE_JOB = "CreateJob"
    DELETE_JOB = "DeleteJob"
    DELETE_CLAIM = "DeleteClaim"
    OWN_CLAIM = "OwnClaim"  # set the ownerReference (retainWorkspace turned off)
    DISOWN_CLAIM = "DisownClaim"  # remove it (retainWorkspace turned on)


@dataclass(frozen=True)
class WorkspaceAction:
    do: Do
    name: str
    manifest: dict[str, Any] | None = None


@dataclass(frozen=True)
class WorkspacePlan:
    actions: tuple[WorkspaceAction, ...] = ()
    # status.workspace and status.repos; None: the session has no workspace.
    workspace: dict[str, Any] | None = None
    repos: list[dict[str, Any]] | None = None
    # The WorkspaceReady condition: (status, reason, message); None without a workspace.
    ready: tuple[bool, str, str] | None = None
    # Set when the clone failed: the Degraded condition's message (git's own words).
    problem: str | None = None
    # An Event for a phase that was just entered: (reason, message, type).
    event: tuple[str, str, str] | None = None

    @property
    def cloning(self) -> bool:
        return bool(self.workspace and self.workspace.get("phase") == Phase.CLONING.value)


def _repos_status(
    session: WorkspaceSession, commits: Mapping[int, str], previous: Sequence[Mapping[str, Any]] | None
) -> list[dict[str, Any]]:
    known = {str(r.get("name")): r.get("commit") for r in previous or [] if isinstance(r, Mapping)}
    out = []
    for i, repo in enumerate(session.repos):
        entry: dict[str, Any] = {
            "name": repo.name,
            "url": repo.url,
            "branch": repo.branch,
            "devBranch": dev_branch(session.name),
        }
        commit = commits.get(i) or known.get(repo.name)
        if commit:
            entry["commit"] = commit
        out.append(entry)
    return out


def plan_workspace(
    session: WorkspaceSession,
    obs: WorkspaceObservation,
    previous: Mapping[str, Any] | None,
    previous_repos: Sequence[Mapping[str, Any]] | None,
    params: WorkspaceParams,
) -> WorkspacePlan:
    """The next step of one session's workspace, from what exists and what status said before."""
    actions: list[WorkspaceAction] = []
    claim = claim_name(session.name)
    prev = dict(previous or {})
    prev_phase = prev.get("phase")
    if not session.repos:
        # No repo with a url (any more): nothing to clone; a claim that is left goes as at the end.
        actions += [WorkspaceAction(Do.DELETE_JOB, n) for n in sorted(obs.jobs)]
        if obs.claim_exists and obs.claim_owned:
            actions.append(WorkspaceAction(Do.DELETE_CLAIM, claim))
        return WorkspacePlan(tuple(actions))
    hash_ = repos_hash(session.repos)
    job_name = clone_job_name(session.name, session.uid, hash_)
    same_repos = prev.get("reposHash") == hash_

    def status(phase: Phase, message: str, job: str | None = job_name) -> dict[str, Any]:
        out = {"claimName": claim, "phase": phase.value, "message": message, "reposHash": hash_}
        if job is not None:
            out["jobName"] = job
        return out

    def entered(
        phase: Phase, reason: str, message: str, type_: str = "Normal"
    ) -> tuple[str, str, str] | None:
        return (reason, message, type_) if prev_phase != phase.value or not same_repos else None

    if session.finished:
        if prev_phase is None and not obs.claim_exists and not obs.jobs:
            return WorkspacePlan()  # finished before it was ever admitted: there never was one
        actions += [WorkspaceAction(Do.DELETE_JOB, n) for n in sorted(obs.jobs)]
        repos = _repos_status(session, {}, previous_repos)
        if session.retain:
            if obs.claim_exists and obs.claim_owned:
                actions.append(WorkspaceAction(Do.DISOWN_CLAIM, claim))
            message = f"the session finished; PVC {claim} is kept (retainWorkspace) and is yours to delete"
            return WorkspacePlan(
                tuple(actions),
                status(Phase.RETAINED, message, None),
                repos,
                (False, Phase.RETAINED.value, message),
                event=(
                    None if prev_phase == Phase.RETAINED.value else ("WorkspaceRetained", message, "Normal")
                ),
            )
        if obs.claim_exists:
            actions.append(WorkspaceAction(Do.DELETE_CLAIM, claim))
        message = f"the session finished; PVC {claim} and its clone Job were deleted"
        return WorkspacePlan(
            tuple(actions),
            status(Phase.RELEASED, message, None),
            repos,
            (False, Phase.RELEASED.value, message),
            event=(None if prev_phase == Phase.RELEASED.value else ("WorkspaceReleased", message, "Normal")),
        )

    if not session.admitted and prev_phase is None:
        return WorkspacePlan()  # queued: the workspace is made on admission

    # Jobs of earlier repos (the spec changed): their clone is superseded.
    actions += [WorkspaceAction(Do.DELETE_JOB, n) for n in sorted(obs.jobs) if n != job_name]
    if obs.claim_exists and obs.claim_owned == session.retain:
        actions.append(WorkspaceAction(Do.DISOWN_CLAIM if session.retain else Do.OWN_CLAIM, claim))

    def failed(message: str, event: tuple[str, str, str] | None) -> WorkspacePlan:
        """The clone failed: its Job goes, and the claim unless retained; Degraded with git's words."""
        if job_name in obs.jobs:
            actions.append(WorkspaceAction(Do.DELETE_JOB, job_name))
        if obs.claim_exists and not session.retain:
            actions.append(WorkspaceAction(Do.DELETE_CLAIM, claim))
        return WorkspacePlan(
            tuple(actions),
            status(Phase.FAILED, message, None),
            _repos_status(session, {}, None),
            (False, "CloneFailed", message),
            problem=message,
            event=event,
        )

    if same_repos and prev_phase == Phase.FAILED.value:
        # Not retried for the same repos: git would say the same; a changed spec retries. The
        # Event was posted when it failed.
        return failed(str(prev.get("message") or "the clone failed"), None)
    if same_repos and prev_phase == Phase.READY.value and obs.claim_exists:
        return WorkspacePlan(
            tuple(actions),
            prev,
            _repos_status(session, {}, previous_repos),
            (True, Phase.READY.value, str(prev.get("message") or "")),
        )

    job = obs.jobs.get(job_name)
    if job is None or job.outcome is JobOutcome.ACTIVE:
        if not obs.claim_exists:
            actions.append(WorkspaceAction(Do.CREATE_CLAIM, claim, build_claim(session, params)))
        if job is None:
            actions.append(
                WorkspaceAction(Do.CREATE_JOB, job_name, build_clone_job(session, params, job_name))
            )
        names = ", ".join(f"{r.name}@{r.branch}" for r in session.repos)
        message = f"Job {job_name} is cloning {names} into PVC {claim}"
        return WorkspacePlan(
            tuple(actions),
            status(Phase.CLONING, message),
            _repos_status(session, {}, previous_repos if same_repos else None),
            (False, Phase.CLONING.value, message),
            event=entered(Phase.CLONING, "WorkspaceCloning", message),
        )
    if job.outcome is JobOutcome.SUCCEEDED:
        commits = parse_commits(job.message, len(session.repos))
        repos = _repos_status(session, commits, None)
        branch = dev_branch(session.name)
        missing = [r["name"] for r in repos if "commit" not in r]
        described = ", ".join(f"{r['name']} {r.get('commit', '?')[:12]}" for r in repos)
        message = f"{branch} created from {described} in PVC {claim}"
        if missing:
            message += f" (no commit reported for {', '.join(missing)})"
        return WorkspacePlan(
            tuple(actions),
            status(Phase.READY, message),
            repos,
            (True, Phase.READY.value, message),
            event=entered(Phase.READY, "WorkspaceReady", message),
        )
    message = (job.message.strip() or "the clone Job failed")[:MESSAGE_LIMIT]
    return failed(message, ("CloneFailed", message, "Warning"))
