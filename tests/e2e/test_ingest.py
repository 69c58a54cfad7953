"""Attention through the ingest end to end: Redis stream and POST /v1/attention to pods at peak.

A real redis-server, the operator process started with HEADY_REDIS_URL, the real API server.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import redis

from tests.e2e.test_escalation import BASE, PEAK, _all_at, _service, _setup
from tests.harness import Cluster, OperatorProcess, RedisServer, wait_for

pytestmark = [pytest.mark.k8s, pytest.mark.redis]

TOKEN = "e2e-ingest-token"


@pytest.fixture(scope="module")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path_factory.mktemp("redis"), appendonly=True)
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def stream() -> str:
    return f"heady:attention:e2e-{uuid.uuid4().hex[:6]}"


@pytest.fixture(scope="module")
def ingest_operator(
    cluster: Cluster, redis_server: RedisServer, stream: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[OperatorProcess]:
    op = OperatorProcess(
        cluster,
        tmp_path_factory.mktemp("operator-ingest"),
        {
            "HEADY_REDIS_URL": redis_server.url,
            "HEADY_ATTENTION_STREAM": stream,
            "HEADY_INGEST_TOKEN": TOKEN,
            "HEADY_INGEST_CONSUMER": "e2e-operator",
        },
    )
    op.start()
    wait_for(lambda: _health(op).get("ingest") == "ok", "the operator consuming the stream")
    yield op
    op.stop()


def _health(op: OperatorProcess) -> dict[str, Any]:
    with urllib.request.urlopen(f"http://127.0.0.1:{op.port}/healthz", timeout=2) as resp:
        return dict(json.loads(resp.read()))


def _post(op: OperatorProcess, body: Any, token: str | None = TOKEN) -> tuple[int, dict[str, Any]]:
    req = urllib.request.Request(
        f"http://127.0.0.1:{op.port}/v1/attention",
        data=json.dumps(body).encode(),
        headers={
            "Content-Type": "application/json",
            **({"Authorization": f"Bearer {token}"} if token else {}),
        },
        method="POST",
    )
    try:
        with urllib.request.urlopen(req, timeout=5) as resp:
            return resp.status, dict(json.loads(resp.read()))
    except urllib.error.HTTPError as exc:
        return exc.code, dict(json.loads(exc.read()))


def test_a_stream_entry_brings_the_service_to_peak(
    cluster: Cluster, ingest_operator: OperatorProcess, redis_server: RedisServer, stream: str, ns: str
) -> None:
    _setup(cluster, ns, "feed", priority="medium", cooldownSeconds=1)
    wait_for(lambda: _all_at(cluster, ns, "feed", BASE, 2), "both pods at baseline")
    client = redis.Redis.from_url(redis_server.url, decode_responses=True)
    try:
        entry_id = client.xadd(
            stream, {"service": "feed", "namespace": ns, "ttlSeconds": "3", "source": "ui", "user": "e2e"}
        )
    finally:
        client.close()
    wait_for(lambda: _all_at(cluster, ns, "feed", PEAK, 2), "both pods at peak", timeout=10)
    svc = wait_for(
        lambda: (s := _service(cluster, ns, "feed")).get("status", {}).get("lastAttention") and s,
        "lastAttention in the status",
    )
    assert svc["status"]["lastAttention"]["signal"] == f"redis-{entry_id}"
    assert svc["status"]["lastAttention"]["source"] == "ui"
    # The ingested signal expires like an object's: back to baseline after TTL + cooldown.
    wait_for(lambda: _all_at(cluster, ns, "feed", BASE, 2), "relaxed after expiry", timeout=20)
    assert 'heady_attention_events_total{path="redis",source="ui"}' in ingest_operator.metrics()


def test_a_posted_event_brings_the_service_to_peak(
    cluster: Cluster, ingest_operator: OperatorProcess, ns: str
) -> None:
    _setup(cluster, ns, "post", priority="medium")
    wait_for(lambda: _all_at(cluster, ns, "post", BASE, 2), "both pods at baseline")
    status, body = _post(ingest_operator, {"service": "post", "namespace": ns, "ttlSeconds": 120}, token=None)
    assert status == 401, body
    status, body = _post(ingest_operator, {"service": "post", "namespace": ns, "intensity": 7})
    assert status == 400 and "intensity" in body["error"]
    status, body = _post(
        ingest_operator, {"service": "post", "namespace": ns, "ttlSeconds": 120, "source": "web"}
    )
    assert status == 202, body
    assert body["durable"] is True
    wait_for(lambda: _all_at(cluster, ns, "post", PEAK, 2), "both pods at peak", timeout=10)
    wait_for(
        lambda: (
            _service(cluster, ns, "post").get("status", {}).get("lastAttention", {}).get("signal")
            == body["ids"][0]
        ),
        "lastAttention names the posted event",
    )
    metrics = ingest_operator.metrics()
    assert 'heady_attention_events_total{path="http",source="web"}' in metrics
    assert "heady_ingest_available 1.0" in metrics


def test_redis_down_leaves_objects_working_and_comes_back(
    cluster: Cluster, ingest_operator: OperatorProcess, redis_server: RedisServer, ns: str
) -> None:
    _setup(cluster, ns, "obj", priority="medium")
    _setup(cluster, ns, "late", priority="medium")
    wait_for(
        lambda: _all_at(cluster, ns, "obj", BASE, 2) and _all_at(cluster, ns, "late", BASE, 2), "baseline"
    )
    redis_server.kill()
    try:
        wait_for(
            lambda: _health(ingest_operator) == {"status": "ok", "ingest": "unavailable"},
            "ingest unavailable",
        )
        status, body = _post(ingest_operator, {"service": "late", "namespace": ns, "ttlSeconds": 120})
        assert status == 503, body
        cluster.apply(
            {
                "apiVersion": "heady.io/v1alpha1",
                "kind": "AttentionSignal",
                "metadata": {"name": "still-works", "namespace": ns},
                "spec": {"services": ["obj"], "ttlSeconds": 120},
            }
        )
        wait_for(lambda: _all_at(cluster, ns, "obj", PEAK, 2), "an AttentionSignal object still escalates")
    finally:
        redis_server.start()
    wait_for(lambda: _health(ingest_operator).get("ingest") == "ok", "ingest back", timeout=40)
    status, body = _post(ingest_operator, {"service": "late", "namespace": ns, "ttlSeconds": 120})
    assert status == 202, body
    wait_for(lambda: _all_at(cluster, ns, "late", PEAK, 2), "attention through the stream again", timeout=10)
