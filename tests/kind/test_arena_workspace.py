"""Arena workspaces with real git on a real kubelet: a git daemon in the cluster serves a bare
repository this test makes, a session's clone Job clones it into the session's PVC and creates
arena/<session>, a pod reading the PVC finds that branch at the expected commit; a bad URL is
Degraded with git's own message and leaves nothing behind; a session deleted mid-clone takes its
Job, pods and PVC with it.

The kind node has no volume provisioner: the test makes hostPath PersistentVolumes (class
heady-workspace, which the kind tier's operator is told to use), reserved for each claim.
"""

from __future__ import annotations

import base64
import io
import os
import subprocess
import tarfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client

from tests.harness import Cluster, OperatorProcess, condition, wait_for
from tests.kind.realnode import WORKSPACE_STORAGE_CLASS, image_refs

pytestmark = pytest.mark.kind

SESSION_UID = "heady.io/session-uid"
HOST_ROOT = "/tmp/heady-workspaces"


def _git(*args: str, cwd: Path | None = None) -> str:
    env = dict(
        os.environ,
        GIT_AUTHOR_NAME="heady test",
        GIT_AUTHOR_EMAIL="test@heady.invalid",
        GIT_COMMITTER_NAME="heady test",
        GIT_COMMITTER_EMAIL="test@heady.invalid",
        GIT_CONFIG_GLOBAL="/dev/null",
    )
    out = subprocess.run(["git", *args], cwd=cwd, env=env, check=True, capture_output=True, text=True)
    return out.stdout.strip()


def bare_repository(tmp: Path) -> tuple[bytes, str, str]:
    """A bare repository web.git (main with two commits, and a branch release/1 at the first),
    as a tar; and the commits of main and release/1."""
    work = tmp / "web"
    work.mkdir()
    _git("init", "-q", "-b", "main", cwd=work)
    (work / "README.md").write_text("web\n")
    _git("add", ".", cwd=work)
    _git("commit", "-q", "-m", "first", cwd=work)
    first = _git("rev-parse", "HEAD", cwd=work)
    _git("branch", "release/1", cwd=work)
    (work / "app.py").write_text("print('hello')\n")
    _git("add", ".", cwd=work)
    _git("commit", "-q", "-m", "second", cwd=work)
    main = _git("rev-parse", "HEAD", cwd=work)
    _git("clone", "-q", "--bare", str(work), str(tmp / "web.git"))
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        tar.add(tmp / "web.git", arcname="web.git")
    return buf.getvalue(), main, first


def git_server(ns: str, repo_tar: bytes) -> list[dict[str, Any]]:
    """git daemon (the git image) serving the repository, and a tarpit on 9419 that accepts
    connections and never answers (a clone that hangs, to delete a session mid-clone)."""
    labels = {"app": "git-server"}
    git = image_refs()["git"]
    return [
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": "git-seed", "namespace": ns},
            "binaryData": {"repo.tar": base64.b64encode(repo_tar).decode()},
        },
        {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": "git-server", "namespace": ns, "labels": labels},
            "spec": {
                "terminationGracePeriodSeconds": 0,
                "volumes": [
                    {"name": "seed", "configMap": {"name": "git-seed"}},
                    {"name": "srv", "emptyDir": {}},
                ],
                "initContainers": [
                    {
                        "name": "seed",
                        "image": git,
                        "imagePullPolicy": "Never",
                        "command": ["tar", "-xf", "/seed/repo.tar", "-C", "/srv/git"],
                        "volumeMounts": [
                            {"name": "seed", "mountPath": "/seed"},
                            {"name": "srv", "mountPath": "/srv/git"},
                        ],
                    }
                ],
                "containers": [
                    {
                        "name": "daemon",
                        "image": git,
                        "imagePullPolicy": "Never",
                        "command": ["git", "daemon", "--reuseaddr", "--export-all", "--verbose"],
                        "args": ["--base-path=/srv/git", "--listen=0.0.0.0", "--port=9418", "/srv/git"],
                        "ports": [{"containerPort": 9418}],
                        "readinessProbe": {"tcpSocket": {"port": 9418}, "periodSeconds": 1},
                        "volumeMounts": [{"name": "srv", "mountPath": "/srv/git"}],
                    },
                    {
                        "name": "tarpit",
                        "image": image_refs()["busybox"],
                        "imagePullPolicy": "Never",
                        "command": ["sh", "-c", "while :; do sleep 3600 | nc -l -p 9419; done"],
                    },
                ],
            },
        },
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": "git-server", "namespace": ns},
            "spec": {
                "selector": labels,
                "ports": [
                    {"name": "git", "port": 9418, "targetPort": 9418},
                    {"name": "tarpit", "port": 9419, "targetPort": 9419},
                ],
            },
        },
    ]


def prepare_volumes(cluster: Cluster, ns: str, sessions: list[str]) -> list[str]:
    """A hostPath PersistentVolume per session, reserved for its claim, in a directory the clone's
    uid may write (hostPath ignores fsGroup): a root pod makes the directories first."""
    dirs = [f"{HOST_ROOT}/{ns}/{s}" for s in sessions]
    cluster.apply(
        {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": "prepare-volumes", "namespace": ns},
            "spec": {
                "restartPolicy": "Never",
                "volumes": [{"name": "root", "hostPath": {"path": HOST_ROOT, "type": "DirectoryOrCreate"}}],
                "containers": [
                    {
                        "name": "mkdir",
                        "image": image_refs()["busybox"],
                        "imagePullPolicy": "Never",
                        "command": ["sh", "-c", 'mkdir -p "$@" && chmod 0777 "$@"', "sh"],
                        "args": [d.replace(HOST_ROOT, "/host", 1) for d in dirs],
                        "volumeMounts": [{"name": "root", "mountPath": "/host"}],
                    }
                ],
            },
        }
    )
    wait_for(
        lambda: cluster.core.read_namespaced_pod("prepare-volumes", ns).status.phase == "Succeeded",
        "the volume directories made",
        timeout=60,
    )
    names = []
    for session, path in zip(sessions, dirs, strict=True):
        name = f"{ns}-{session}"[:63]
        cluster.core.create_persistent_volume(
            {
                "metadata": {"name": name, "labels": {"heady.io/test": "e2e"}},
                "spec": {
                    "storageClassName": WORKSPACE_STORAGE_CLASS,
                    "capacity": {"storage": "1Gi"},
                    "accessModes": ["ReadWriteOnce"],
                    "hostPath": {"path": path, "type": "Directory"},
                    "claimRef": {"namespace": ns, "name": f"{session}-workspace"},
                    "persistentVolumeReclaimPolicy": "Retain",
                },
            }
        )
        names.append(name)
    return names


def session(name: str, ns: str, url: str, branch: str = "main", **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "heady.io/v1alpha1",
        "kind": "ArenaSession",
        "metadata": {"name": name, "namespace": ns},
        "spec": {
            "repos": [{"name": "web", "url": url, "branch": branch}],
            "priority": "low",
            "durationSeconds": 3600,
            **spec,
        },
    }


def phase(cluster: Cluster, ns: str, name: str) -> str | None:
    ws = (cluster.get("arenasessions", ns, name).get("status") or {}).get("workspace") or {}
    value = ws.get("phase")
    return str(value) if value is not None else None


def leftovers(cluster: Cluster, ns: str, uid: str, session: str) -> list[str]:
    found = [f"job/{j.metadata.name}" for j in client.BatchV1Api(cluster.api).list_namespaced_job(
        ns, label_selector=f"{SESSION_UID}={uid}"
    ).items]  # fmt: skip
    found += [f"pod/{p.metadata.name}" for p in cluster.pods(ns, f"{SESSION_UID}={uid}")]
    found += [
        f"pvc/{c.metadata.name}"
        for c in cluster.core.list_namespaced_persistent_volume_claim(ns).items
        if c.metadata.name == f"{session}-workspace"
    ]
    return found


@pytest.fixture
def server(cluster: Cluster, ns: str, tmp_path: Path) -> tuple[str, str]:
    repo_tar, main, first = bare_repository(tmp_path)
    cluster.apply(git_server(ns, repo_tar))
    wait_for(
        lambda: any(
            c.type == "Ready" and c.status == "True"
            for c in cluster.core.read_namespaced_pod("git-server", ns).status.conditions or []
        ),
        "the git daemon ready",
        timeout=120,
    )
    return main, first


@pytest.fixture
def volumes(cluster: Cluster, ns: str) -> Iterator[list[str]]:
    made: list[str] = []
    yield made
    for name in made:
        cluster.core.delete_persistent_volume(name)


def test_a_session_clones_its_repo_onto_the_dev_branch(
    cluster: Cluster, operator: OperatorProcess, ns: str, server: tuple[str, str], volumes: list[str]
) -> None:
    main, first = server
    volumes += prepare_volumes(cluster, ns, ["dev"])
    start = time.monotonic()
    cluster.apply(session("dev", ns, "git://git-server/web.git", branch="release/1"))
    wait_for(lambda: phase(cluster, ns, "dev") == "Ready", "the workspace ready", timeout=180)
    took = time.monotonic() - start
    obj = cluster.get("arenasessions", ns, "dev")
    (repo,) = obj["status"]["repos"]
    assert repo == {
        "name": "web",
        "url": "git://git-server/web.git",
        "branch": "release/1",
        "devBranch": "arena/dev",
        "commit": first,
    }
    assert condition(obj, "WorkspaceReady")["status"] == "True"
    assert condition(obj, "Degraded")["status"] == "False"
    assert first != main  # the base is the named branch, not the default one
    print(f"\nadmission -> workspace Ready (clone Job on the real kubelet): {took:.1f} s")

    # What the session's pods see: the clone on its dev branch, read from the PVC itself.
    cluster.apply(
        {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": "reader", "namespace": ns},
            "spec": {
                "restartPolicy": "Never",
                "securityContext": {"runAsUser": 10001, "runAsGroup": 10001, "runAsNonRoot": True},
                "volumes": [{"name": "ws", "persistentVolumeClaim": {"claimName": "dev-workspace"}}],
                "containers": [
                    {
                        "name": "git",
                        "image": image_refs()["git"],
                        "imagePullPolicy": "Never",
                        "env": [{"name": "HOME", "value": "/tmp"}],
                        "command": ["sh", "-c"],
                        "args": [
                            "git -C /workspace/web branch --show-current && git -C /workspace/web rev-parse HEAD"
                            " && git -C /workspace/web status --porcelain | wc -l"
                        ],
                        "volumeMounts": [{"name": "ws", "mountPath": "/workspace"}],
                    }
                ],
            },
        }
    )
    wait_for(
        lambda: cluster.core.read_namespaced_pod("reader", ns).status.phase in ("Succeeded", "Failed"),
        "the reader pod done",
        timeout=120,
    )
    out = cluster.core.read_namespaced_pod_log("reader", ns).split()
    assert out == ["arena/dev", first, "0"], out
    cluster.core.delete_namespaced_pod("reader", ns, grace_period_seconds=0)

    uid = obj["metadata"]["uid"]
    cluster.custom.delete_namespaced_custom_object("heady.io", "v1alpha1", ns, "arenasessions", "dev")
    wait_for(lambda: not leftovers(cluster, ns, uid, "dev"), "the workspace collected", timeout=90)


def test_a_bad_url_is_degraded_with_gits_message_and_leaves_nothing(
    cluster: Cluster, operator: OperatorProcess, ns: str, server: tuple[str, str], volumes: list[str]
) -> None:
    volumes += prepare_volumes(cluster, ns, ["bad"])
    cluster.apply(session("bad", ns, "git://git-server/missing.git"))
    obj = wait_for(
        lambda: (
            (s := cluster.get("arenasessions", ns, "bad"))
            and (c := condition(s, "Degraded"))
            and c["status"] == "True"
            and s
        ),
        "the session Degraded",
        timeout=180,
    )
    degraded = condition(obj, "Degraded")
    assert degraded["reason"] == "CloneFailed"
    # git's own words, through the clone pod's termination message.
    assert degraded["message"].startswith("repo web: fatal: remote error:"), degraded["message"]
    assert "missing.git" in degraded["message"]
    assert obj["status"]["workspace"]["phase"] == "Failed"
    assert condition(obj, "WorkspaceReady")["reason"] == "CloneFailed"
    assert any(e.reason == "CloneFailed" for e in cluster.events(ns, "bad"))
    uid = obj["metadata"]["uid"]
    wait_for(lambda: not leftovers(cluster, ns, uid, "bad"), "no Job, pod or PVC left", timeout=60)


def test_a_missing_credentials_secret_is_degraded_at_once_not_at_the_deadline(
    cluster: Cluster, operator: OperatorProcess, ns: str, volumes: list[str]
) -> None:
    volumes += prepare_volumes(cluster, ns, ["locked"])
    body = session("locked", ns, "https://git-server.invalid/private.git")
    body["spec"]["repos"][0]["credentialsSecret"] = "no-such-secret"
    cluster.apply(body)
    obj = wait_for(
        lambda: (
            (s := cluster.get("arenasessions", ns, "locked"))
            and (c := condition(s, "Degraded"))
            and c["status"] == "True"
            and s
        ),
        "the session Degraded",
        timeout=180,  # the clone Job's deadline is 600 s: this must come from the clone, not the deadline
    )
    degraded = condition(obj, "Degraded")
    assert degraded["reason"] == "CloneFailed"
    assert degraded["message"].startswith("repo web: its credentialsSecret is missing"), degraded["message"]


def test_deleting_a_session_mid_clone_cleans_up(
    cluster: Cluster, operator: OperatorProcess, ns: str, server: tuple[str, str], volumes: list[str]
) -> None:
    volumes += prepare_volumes(cluster, ns, ["hang"])
    cluster.apply(session("hang", ns, "git://git-server:9419/web.git"))
    obj = wait_for(
        lambda: phase(cluster, ns, "hang") == "Cloning" and cluster.get("arenasessions", ns, "hang"),
        "cloning",
        timeout=60,
    )
    uid = obj["metadata"]["uid"]
    # The clone is really under way: its container runs git against the tarpit.
    wait_for(
        lambda: any(
            (p.status.container_statuses or [None])[0] is not None
            and p.status.container_statuses[0].state.running is not None
            for p in cluster.pods(ns, f"{SESSION_UID}={uid}")
        ),
        "the clone container running",
        timeout=120,
    )
    assert phase(cluster, ns, "hang") == "Cloning"
    cluster.custom.delete_namespaced_custom_object("heady.io", "v1alpha1", ns, "arenasessions", "hang")
    wait_for(lambda: not leftovers(cluster, ns, uid, "hang"), "Job, pods and PVC collected", timeout=90)
