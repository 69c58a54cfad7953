"""End-to-end fixtures: the real kwok cluster (real kube-apiserver + etcd) and the real operator process.

Nothing here skips: if the cluster cannot start, every e2e test errors with the reason.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from tests.harness import Cluster, OperatorProcess, start_cluster


@pytest.fixture(scope="session")
def cluster() -> Cluster:
    try:
        return start_cluster()
    except RuntimeError as exc:
        pytest.fail(str(exc), pytrace=False)


@pytest.fixture(scope="session")
def operator(cluster: Cluster, tmp_path_factory: pytest.TempPathFactory) -> Iterator[OperatorProcess]:
    # A small arena quota so admission and preemption show with a few sessions.
    op = OperatorProcess(
        cluster,
        tmp_path_factory.mktemp("operator"),
        {
            "HEADY_ARENA_QUOTA_CPU": "14",
            "HEADY_ARENA_QUOTA_MEMORY_GIB": "64",
            "HEADY_REBALANCE_INTERVAL_SECONDS": "2",
        },
    )
    op.start()
    yield op
    op.stop()


@pytest.fixture
def ns(cluster: Cluster, request: pytest.FixtureRequest) -> Iterator[str]:
    name = f"t-{request.node.name[:30].lower().replace('_', '-').strip('-')}-{uuid.uuid4().hex[:5]}"
    cluster.core.create_namespace({"metadata": {"name": name, "labels": {"heady.io/test": "e2e"}}})
    yield name
    cluster.core.delete_namespace(name, propagation_policy="Background")
