"""ArenaSession.spec.value on the real kube-apiserver: accepted in range, refused outside."""

from __future__ import annotations

from typing import Any

import pytest
from kubernetes import client

from tests.harness import Cluster

pytestmark = pytest.mark.k8s
GROUP, VERSION, PLURAL = "heady.io", "v1alpha1", "arenasessions"


def arena(name: str, value: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "ArenaSession",
        "metadata": {"name": name},
        "spec": {"repos": [{"name": "r"}], "value": value},
    }


def test_value_in_range_is_kept(cluster: Cluster, ns: str) -> None:
    created = cluster.custom.create_namespaced_custom_object(
        GROUP, VERSION, ns, PLURAL, arena("valued", {"expectedROI": 0.9, "strategicAlignment": 0.8})
    )
    assert created["spec"]["value"] == {"expectedROI": 0.9, "strategicAlignment": 0.8}


@pytest.mark.parametrize("value", [{"expectedROI": 1.5}, {"strategicAlignment": -0.1}, {"roi": 0.5}])
def test_value_out_of_range_is_refused(cluster: Cluster, ns: str, value: dict[str, Any]) -> None:
    with pytest.raises(client.ApiException) as refused:
        cluster.custom.create_namespaced_custom_object(
            GROUP, VERSION, ns, PLURAL, arena("bad", value), field_validation="Strict"
        )
    assert refused.value.status in (400, 422)
