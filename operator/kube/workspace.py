"""Every Kubernetes call of arena workspaces: observe the claim and the clone Jobs, apply a plan.

The manifests and the decisions are planning/workspace.py's; this module only reads and writes.
"""

from __future__ import annotations

import logging
from typing import Any

from kubernetes_asyncio.client.exceptions import ApiException

from heady_operator.kube.chaos import MERGE_PATCH, job_state
from heady_operator.kube.client import Kube
from heady_operator.planning.chaos import JobOutcome
from heady_operator.planning.workspace import (
    MESSAGE_LIMIT,
    CloneJob,
    Do,
    WorkspaceAction,
    WorkspaceObservation,
    WorkspaceSession,
    claim_name,
    owner_reference,
    selector,
)

log = logging.getLogger(__name__)
JOB_NAME_LABEL = "batch.kubernetes.io/job-name"


async def _last_words(kube: Kube, namespace: str, job: Any) -> str:
    """The termination message of the Job's newest pod (what the clone script wrote), else the
    Job's own failure message (DeadlineExceeded, BackoffLimitExceeded)."""
    name = job.metadata.name
    pods = await kube.core.list_namespaced_pod(namespace, label_selector=f"{JOB_NAME_LABEL}={name}")
    for pod in sorted(pods.items, key=lambda p: p.metadata.creation_timestamp, reverse=True):
        for status in (pod.status.container_statuses or []) if pod.status else []:
            terminated = status.state.terminated if status.state else None
            if terminated is not None and terminated.message:
                return str(terminated.message)[:MESSAGE_LIMIT]
    return job_state(job).message


async def observe(kube: Kube, namespace: str, session: str, uid: str) -> WorkspaceObservation:
    claim_exists = claim_owned = False
    try:
        pvc = await kube.core.read_namespaced_persistent_volume_claim(claim_name(session), namespace)
    except ApiException as exc:
        if exc.status != 404:
            raise
    else:
        # A claim on its way out counts as gone: a new one is created (409 until the old is gone).
        claim_exists = pvc.metadata.deletion_timestamp is None
        claim_owned = any(ref.uid == uid for ref in pvc.metadata.owner_references or [])
    jobs: dict[str, CloneJob] = {}
    listed = await kube.batch.list_namespaced_job(namespace, label_selector=selector(uid))
    for job in listed.items:
        if job.metadata.deletion_timestamp is not None:
            continue
        state = job_state(job)
        message = "" if state.outcome is JobOutcome.ACTIVE else await _last_words(kube, namespace, job)
        jobs[job.metadata.name] = CloneJob(job.metadata.name, state.outcome, message)
    return WorkspaceObservation(claim_exists, claim_owned, jobs)


async def apply(kube: Kube, namespace: str, session: WorkspaceSession, action: WorkspaceAction) -> None:
    """One action; idempotent (exists on create and gone on delete are success)."""
    try:
        if action.do is Do.CREATE_CLAIM and action.manifest is not None:
            await kube.core.create_namespaced_persistent_volume_claim(namespace, action.manifest)  # type: ignore[arg-type]
        elif action.do is Do.CREATE_JOB and action.manifest is not None:
            await kube.batch.create_namespaced_job(namespace, action.manifest)  # type: ignore[arg-type]
        elif action.do is Do.DELETE_JOB:
            # Background: the Job's pods go with it; nobody needs to wait for them.
            await kube.batch.delete_namespaced_job(action.name, namespace, propagation_policy="Background")
        elif action.do is Do.DELETE_CLAIM:
            await kube.core.delete_namespaced_persistent_volume_claim(action.name, namespace)
        elif action.do in (Do.OWN_CLAIM, Do.DISOWN_CLAIM):
            refs = [owner_reference(session)] if action.do is Do.OWN_CLAIM else None
            await kube.core.patch_namespaced_persistent_volume_claim(
                action.name,
                namespace,
                {"metadata": {"ownerReferences": refs}},
                _content_type=MERGE_PATCH,  # type: ignore[call-arg]
            )
    except ApiException as exc:
        if exc.status == 409 and action.do in (Do.CREATE_CLAIM, Do.CREATE_JOB):
            return
        if exc.status == 404 and action.do not in (Do.CREATE_CLAIM, Do.CREATE_JOB):
            return
        raise
    log.info("workspace of %s/%s: %s %s", namespace, session.name, action.do.value, action.name)
