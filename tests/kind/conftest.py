"""The kind tier: a real kubelet, containerd and runc in a kind node (podman provider here,
Docker's by default elsewhere), images built locally by hack/images.py.

The session creates its own kind cluster (HEADY_E2E_KIND_CLUSTER, default heady-e2e) unless one of
that name already answers, and deletes it at the end only if it created it (HEADY_KIND_KEEP=1 keeps
it). Nothing skips: a missing tool or a cluster that does not come up fails every test here.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from tests.harness import Cluster, OperatorProcess
from tests.kind.realnode import WORKSPACE_STORAGE_CLASS, image_refs, kind_cluster


@pytest.fixture(scope="session")
def cluster() -> Iterator[Cluster]:
    try:
        with kind_cluster() as c:
            yield c
    except RuntimeError as exc:
        pytest.fail(str(exc), pytrace=False)


@pytest.fixture(scope="session")
def operator(cluster: Cluster, tmp_path_factory: pytest.TempPathFactory) -> Iterator[OperatorProcess]:
    """The operator as a host process talking to kind's apiserver (the chart test runs it in-cluster)."""
    op = OperatorProcess(
        cluster,
        tmp_path_factory.mktemp("operator"),
        {
            "HEADY_REBALANCE_INTERVAL_SECONDS": "2",
            # Arena workspaces: the locally built git image, on the PersistentVolumes the
            # workspace test makes (the kind node has no volume provisioner).
            "HEADY_ARENA_GIT_IMAGE": image_refs()["git"],
            "HEADY_ARENA_WORKSPACE_STORAGE_CLASS": WORKSPACE_STORAGE_CLASS,
        },
    )
    op.start()
    yield op
    op.stop()


@pytest.fixture
def ns(cluster: Cluster, request: pytest.FixtureRequest) -> Iterator[str]:
    name = f"k-{request.node.name[:30].lower().replace('_', '-').strip('-')}-{uuid.uuid4().hex[:5]}"
    cluster.core.create_namespace({"metadata": {"name": name, "labels": {"heady.io/test": "e2e"}}})
    yield name
    cluster.core.delete_namespace(name, propagation_policy="Background", grace_period_seconds=0)
