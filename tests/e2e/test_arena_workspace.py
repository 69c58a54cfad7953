"""Arena workspaces on the real API server: the PVC and the clone Job appear on admission and go
on finish and on deletion (the garbage collector follows their ownerReferences), a retained
workspace outlives its session, and bad repos are refused at apply.

No kubelet runs git here (tests/kind/test_arena_workspace.py clones for real): a clone Job's
pod waits for its claim, or, bound to a PersistentVolume, is completed by kwok's Stage.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from kubernetes import client

from tests.harness import Cluster, OperatorProcess, condition, wait_for

pytestmark = pytest.mark.k8s

URL = "git://git-server/web.git"
SESSION_UID = "heady.io/session-uid"


def session(name: str, ns: str, duration: int = 600, **spec: Any) -> dict[str, Any]:
    # low: 3.2 CPU of the e2e operator's 14 CPU quota, so it is admitted beside other tests' sessions.
    return {
        "apiVersion": "heady.io/v1alpha1",
        "kind": "ArenaSession",
        "metadata": {"name": name, "namespace": ns},
        "spec": {
            "repos": [{"name": "web", "url": URL}, {"name": "notes"}],
            "priority": "low",
            "durationSeconds": duration,
            **spec,
        },
    }


def workspace(cluster: Cluster, ns: str, name: str) -> dict[str, Any]:
    status: dict[str, Any] = cluster.get("arenasessions", ns, name).get("status") or {}
    return status


def claim(cluster: Cluster, ns: str, name: str) -> client.V1PersistentVolumeClaim | None:
    try:
        pvc: client.V1PersistentVolumeClaim = cluster.core.read_namespaced_persistent_volume_claim(
            f"{name}-workspace", ns
        )
    except client.ApiException as exc:
        if exc.status == 404:
            return None
        raise
    return pvc


def jobs(cluster: Cluster, ns: str, uid: str) -> list[client.V1Job]:
    return list(
        client.BatchV1Api(cluster.api).list_namespaced_job(ns, label_selector=f"{SESSION_UID}={uid}").items
    )


def cloning(cluster: Cluster, ns: str, name: str) -> dict[str, Any]:
    """Wait until the session is admitted and its workspace is cloning; return the session."""
    return wait_for(
        lambda: (
            (s := cluster.get("arenasessions", ns, name)).get("status", {}).get("workspace", {}).get("phase")
            == "Cloning"
            and s
        ),
        f"{name}'s workspace cloning",
    )


def test_admission_creates_the_workspace_and_finishing_releases_it(
    cluster: Cluster, operator: OperatorProcess, ns: str
) -> None:
    cluster.apply(session("short", ns, duration=8))
    obj = cloning(cluster, ns, "short")
    uid = obj["metadata"]["uid"]
    status = obj["status"]
    pvc = claim(cluster, ns, "short")
    assert pvc is not None
    assert [(r.kind, r.name, r.uid) for r in pvc.metadata.owner_references] == [
        ("ArenaSession", "short", uid)
    ]
    assert status["workspace"]["claimName"] == "short-workspace"
    (job,) = jobs(cluster, ns, uid)
    assert status["workspace"]["jobName"] == job.metadata.name
    container = job.spec.template.spec.containers[0]
    assert container.args == ["short", "web", URL, "main", ""]  # the repo without a url is not cloned
    assert job.metadata.owner_references[0].uid == uid
    assert status["repos"] == [{"name": "web", "url": URL, "branch": "main", "devBranch": "arena/short"}]
    ready = condition(obj, "WorkspaceReady")
    assert ready is not None and ready["status"] == "False" and ready["reason"] == "Cloning"
    assert any(e.reason == "WorkspaceCloning" for e in cluster.events(ns, "short"))

    wait_for(
        lambda: workspace(cluster, ns, "short").get("workspace", {}).get("phase") == "Released", "released"
    )
    wait_for(lambda: claim(cluster, ns, "short") is None, "the claim deleted", timeout=30)
    wait_for(lambda: not jobs(cluster, ns, uid), "the clone Job deleted", timeout=30)
    assert any(e.reason == "WorkspaceReleased" for e in cluster.events(ns, "short"))


def test_a_bound_claim_and_a_completed_job_make_the_workspace_ready(
    cluster: Cluster, operator: OperatorProcess, ns: str
) -> None:
    # A PersistentVolume reserved for this claim (no provisioner on kwok): the pod schedules and
    # kwok's Stage completes it, without a termination message (no real git ran).
    pv_name = f"{ns}-ws"
    cluster.core.create_persistent_volume(
        {
            "metadata": {"name": pv_name, "labels": {"heady.io/test": "e2e"}},
            "spec": {
                "capacity": {"storage": "1Gi"},
                "accessModes": ["ReadWriteOnce"],
                "hostPath": {"path": f"/tmp/{pv_name}"},
                "claimRef": {"namespace": ns, "name": "bound-workspace"},
                "persistentVolumeReclaimPolicy": "Retain",
            },
        }
    )
    try:
        cluster.apply(session("bound", ns))
        obj = wait_for(
            lambda: (
                (s := cluster.get("arenasessions", ns, "bound"))
                .get("status", {})
                .get("workspace", {})
                .get("phase")
                == "Ready"
                and s
            ),
            "the workspace ready",
            timeout=45,
        )
        assert condition(obj, "WorkspaceReady")["status"] == "True"
        assert "no commit reported for web" in obj["status"]["workspace"]["message"]
        assert condition(obj, "Degraded")["status"] == "False"
        assert any(e.reason == "WorkspaceReady" for e in cluster.events(ns, "bound"))
    finally:
        cluster.core.delete_persistent_volume(pv_name)


def test_deleting_a_session_mid_clone_removes_its_claim_and_job(
    cluster: Cluster, operator: OperatorProcess, ns: str
) -> None:
    cluster.apply(session("gone", ns))
    uid = cloning(cluster, ns, "gone")["metadata"]["uid"]
    assert claim(cluster, ns, "gone") is not None and jobs(cluster, ns, uid)
    cluster.custom.delete_namespaced_custom_object("heady.io", "v1alpha1", ns, "arenasessions", "gone")
    wait_for(lambda: claim(cluster, ns, "gone") is None, "the claim collected", timeout=45)
    wait_for(lambda: not jobs(cluster, ns, uid), "the clone Job collected", timeout=45)
    wait_for(
        lambda: not cluster.pods(ns, f"{SESSION_UID}={uid}"), "the clone Job's pods collected", timeout=45
    )


def test_a_retained_workspace_outlives_its_session(
    cluster: Cluster, operator: OperatorProcess, ns: str
) -> None:
    cluster.apply(session("keep", ns, retainWorkspace=True))
    uid = cloning(cluster, ns, "keep")["metadata"]["uid"]
    pvc = claim(cluster, ns, "keep")
    assert pvc is not None and not pvc.metadata.owner_references
    cluster.custom.delete_namespaced_custom_object("heady.io", "v1alpha1", ns, "arenasessions", "keep")
    wait_for(lambda: not jobs(cluster, ns, uid), "the clone Job collected", timeout=45)
    kept = claim(cluster, ns, "keep")
    assert kept is not None and kept.metadata.deletion_timestamp is None
    assert kept.metadata.labels["heady.io/session"] == "keep"


@pytest.mark.parametrize(
    ("repo", "message"),
    [
        ({"name": "web", "url": "ftp://example.com/web.git"}, "url must be an http(s)://, git://, ssh://"),
        ({"name": "web", "url": "https://example.com/web .git"}, "url must be an http(s)://"),
        ({"name": "../etc", "url": URL}, "needs a name usable as a directory"),
        ({"name": "web", "url": URL, "branch": "--upload-pack=x"}, "needs a branch name git accepts"),
        ({"name": "web", "credentialsSecret": "creds"}, "credentialsSecret needs a url"),
    ],
)
def test_bad_repos_are_refused_at_apply(
    cluster: Cluster, operator: OperatorProcess, ns: str, repo: dict[str, str], message: str
) -> None:
    bad = session("bad", ns)
    bad["spec"]["repos"] = [repo]
    res = cluster.kubectl("apply", "-f", "-", input=json.dumps(bad), check=False)
    assert res.returncode != 0 and message in res.stderr
    assert not cluster.core.list_namespaced_persistent_volume_claim(ns).items
