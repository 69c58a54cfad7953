"""Two operator processes electing a leader on a Lease: take-over, fencing, hand-over, exactly once.

Real kube-apiserver + etcd (kwok), a real redis-server, two `heady-operator` processes scoped to
the test's namespace with short lease settings (4 s / 3 s / 1 s) so the tests run fast. Attention
arrives as a storm of Redis stream entries (20 a second); some live long ("live" services), some
end within 2 s ("expired" services).

Who wrote what is read from each process's own metrics: heady_api_writes_total counts every
write request it sent, heady_api_last_write_timestamp_seconds when it sent the last one besides
its Lease, heady_ingest_acknowledged_total the stream entries it applied and acknowledged.

The measured numbers (take-over and hand-over times) are printed; run with -s to see them.
"""

from __future__ import annotations

import json
import re
import signal
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import redis
from kubernetes import client

from tests.e2e.test_escalation import BASE, PEAK, _all_at, _setup
from tests.harness import Cluster, OperatorProcess, RedisServer, wait_for

pytestmark = [pytest.mark.k8s, pytest.mark.redis]

# Short, so the tests run fast; long enough that a leader on a loaded 2-core machine is not
# fenced by a slow renewal (that would be correct, but not what these tests look at).
LEASE, RENEW, RETRY = 6.0, 4.0, 1.0
LIVE = ["live-0", "live-1", "live-2"]
SHORT = ["short-0", "short-1", "short-2"]
RATE = 20.0


@pytest.fixture(scope="module")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path_factory.mktemp("redis-ha"), appendonly=True)
    server.start()
    yield server
    server.stop()


@dataclass
class Pair:
    """Two replicas of one operator (same Lease, same stream and group), and what the test did to them."""

    cluster: Cluster
    redis: RedisServer
    ns: str
    log_dir: Path
    lease: str = field(default_factory=lambda: f"e2e-ha-{uuid.uuid4().hex[:6]}")
    stream: str = field(default_factory=lambda: f"heady:attention:ha-{uuid.uuid4().hex[:6]}")
    ops: dict[str, OperatorProcess] = field(default_factory=dict)

    def start(self, name: str) -> OperatorProcess:
        op = OperatorProcess(
            self.cluster,
            self.log_dir,
            {
                "HEADY_NAMESPACES": self.ns,
                "HEADY_POD_NAME": name,
                "HEADY_LEADER_ELECTION": "true",
                "HEADY_LEADER_ELECTION_LEASE": self.lease,
                "HEADY_LEADER_ELECTION_LEASE_DURATION_SECONDS": str(LEASE),
                "HEADY_LEADER_ELECTION_RENEW_DEADLINE_SECONDS": str(RENEW),
                "HEADY_LEADER_ELECTION_RETRY_PERIOD_SECONDS": str(RETRY),
                "HEADY_REDIS_URL": self.redis.url,
                "HEADY_ATTENTION_STREAM": self.stream,
                "HEADY_INGEST_BLOCK_MS": "200",
                "HEADY_STATUS_SETTLE_SECONDS": "0.2",
                "HEADY_PREDICTION_ENABLED": "false",
            },
        )
        self.ops[name] = op  # first: stopped at the end even if it never gets healthy
        op.start()
        return op

    def stop(self) -> None:
        for op in self.ops.values():
            if op.proc is not None and op.proc.poll() is None:
                op.proc.send_signal(signal.SIGCONT)
            op.stop()

    def holder(self) -> str:
        lease = client.CoordinationV1Api(self.cluster.api).read_namespaced_lease(self.lease, "heady-system")
        return str(lease.spec.holder_identity or "")


def health(op: OperatorProcess) -> tuple[int, dict[str, Any]]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{op.port}/healthz", timeout=2) as resp:
            return resp.status, dict(json.loads(resp.read()))
    except urllib.error.HTTPError as exc:
        return exc.code, dict(json.loads(exc.read()))


def role(op: OperatorProcess) -> str:
    try:
        return str(health(op)[1].get("role"))
    except OSError:
        return "unreachable"


def metric(op: OperatorProcess, name: str, labels: str = "") -> float:
    """The sum of the samples of `name` whose labels contain `labels`."""
    total = 0.0
    for line in op.metrics().splitlines():
        m = re.match(rf"^{name}(\{{[^}}]*\}})? (\S+)$", line)
        if m and labels in (m.group(1) or ""):
            total += float(m.group(2))
    return total


def writes(op: OperatorProcess) -> float:
    """Write requests other than the Lease's."""
    return metric(op, "heady_api_writes_total") - metric(op, "heady_api_writes_total", 'resource="leases"')


class Storm:
    """RATE stream entries a second, round robin over the live and the short services, in a thread."""

    def __init__(self, pair: Pair, seconds: float) -> None:
        self.pair, self.seconds = pair, seconds
        self.sent = 0
        self.ended_at = 0.0
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> Storm:
        self._thread.start()
        return self

    def join(self) -> None:
        self._thread.join()

    def _run(self) -> None:
        stream = redis.Redis.from_url(self.pair.redis.url, decode_responses=True)
        services = LIVE + SHORT
        start = time.monotonic()
        try:
            while time.monotonic() - start < self.seconds:
                service = services[self.sent % len(services)]
                ttl = "120" if service in LIVE else "2"
                stream.xadd(
                    self.pair.stream,
                    {"service": service, "namespace": self.pair.ns, "ttlSeconds": ttl, "source": "storm"},
                )
                self.sent += 1
                time.sleep(max(0.0, start + self.sent / RATE - time.monotonic()))
        finally:
            stream.close()
            self.ended_at = time.monotonic()


def pending(pair: Pair) -> int:
    stream = redis.Redis.from_url(pair.redis.url, decode_responses=True)
    try:
        return int(stream.xpending(pair.stream, "heady-operator")["pending"])
    finally:
        stream.close()


@pytest.fixture
def pair(cluster: Cluster, redis_server: RedisServer, ns: str, tmp_path: Path) -> Iterator[Pair]:
    p = Pair(cluster, redis_server, ns, tmp_path)
    for name in LIVE + SHORT:
        _setup(cluster, ns, name, replicas=1, priority="medium", cooldownSeconds=0)
    yield p
    p.stop()


def leader_of(ops: list[OperatorProcess]) -> OperatorProcess | None:
    return next((o for o in ops if role(o) == "leader"), None)


def start_both(pair: Pair) -> tuple[OperatorProcess, OperatorProcess]:
    a = pair.start("op-a")
    wait_for(lambda: role(a) == "leader", "op-a leads", timeout=20)
    b = pair.start("op-b")
    assert role(b) == "standby"
    for name in LIVE + SHORT:
        wait_for(lambda n=name: _all_at(pair.cluster, pair.ns, n, BASE, 1), f"{name} at baseline")
    still_as_started(a, b)
    return a, b


def still_as_started(a: OperatorProcess, b: OperatorProcess) -> None:
    """Right before a test acts on the leader: nothing changed hands by itself meanwhile."""
    roles = (role(a), role(b))
    assert roles == ("leader", "standby"), (
        f"leadership moved before the test acted: {roles} (a starved machine?)"
    )


def settled(pair: Pair) -> bool:
    return all(_all_at(pair.cluster, pair.ns, n, PEAK, 1) for n in LIVE) and all(
        _all_at(pair.cluster, pair.ns, n, BASE, 1) for n in SHORT
    )


def test_sigkill_of_the_leader_during_a_storm_the_standby_leads_and_loses_nothing(pair: Pair) -> None:
    a, b = start_both(pair)
    storm = Storm(pair, seconds=8).start()
    time.sleep(3)  # mid-storm
    still_as_started(a, b)
    killed = time.monotonic()
    a.kill()
    wait_for(lambda: role(b) == "leader", "op-b leads", timeout=LEASE + 10, interval=0.05)
    took = time.monotonic() - killed
    print(f"\nSIGKILL take-over: {took:.2f} s (lease {LEASE:g} s, retry {RETRY:g} s)")
    assert took <= LEASE + 2, f"the standby led {took:.1f} s after the kill"
    assert pair.holder() == "op-b"
    storm.join()
    # 10 s after the storm: every live signal's pods at peak, every expired one's at baseline.
    wait_for(lambda: settled(pair), "live at peak and expired at baseline", timeout=10)
    print(f"SIGKILL storm: {storm.sent} entries; settled {time.monotonic() - storm.ended_at:.2f} s after it")
    wait_for(lambda: pending(pair) == 0, "no stream entry left unacknowledged", timeout=10)
    assert writes(b) > 0, "the new leader resized and reported"
    events = pair.cluster.core.list_namespaced_event(
        "heady-system", field_selector="involvedObject.name=op-b"
    ).items
    assert any(e.reason == "LeaderElected" and "op-a" in e.message for e in events)
    assert metric(b, "heady_leader") == 1.0


def test_a_paused_leader_writes_nothing_after_waking_and_fails_its_health(pair: Pair) -> None:
    a, b = start_both(pair)
    still_as_started(a, b)
    a.proc.send_signal(signal.SIGSTOP)  # type: ignore[union-attr]
    stopped = time.monotonic()
    storm = Storm(pair, seconds=LEASE + 3).start()  # attention the paused leader never sees
    wait_for(lambda: role(b) == "leader", "op-b leads", timeout=LEASE + 10, interval=0.05)
    print(f"\nSIGSTOP take-over: {time.monotonic() - stopped:.2f} s")
    while time.monotonic() - stopped < LEASE + 3:
        time.sleep(0.1)  # paused for longer than the lease
    woke = time.time()
    a.proc.send_signal(signal.SIGCONT)  # type: ignore[union-attr]
    storm.join()
    wait_for(lambda: role(a) == "fenced", "op-a knows it is fenced", timeout=5)
    after_wake = writes(a)
    wait_for(lambda: settled(pair), "the new leader settled the storm", timeout=30)
    time.sleep(2)  # the old leader had every chance to write its stale plan
    status, body = health(a)
    last = metric(a, "heady_api_last_write_timestamp_seconds")
    print(
        f"SIGSTOP: old leader's last write {woke - last:.2f} s before waking; writes after: {writes(a) - after_wake:g}"
    )
    assert last < woke, "the paused leader wrote after waking"
    assert writes(a) == after_wake
    assert status == 503 and body["role"] == "fenced", body
    assert health(b)[0] == 200
    assert metric(a, "heady_leader") == 0.0
    assert pair.holder() == "op-b"


def test_sigterm_hands_over_within_a_retry_period_and_each_entry_is_applied_once(pair: Pair) -> None:
    a, b = start_both(pair)
    storm = Storm(pair, seconds=10).start()
    wait_for(lambda: metric(a, "heady_ingest_acknowledged_total") > 0, "op-a consuming the storm", timeout=20)
    still_as_started(a, b)
    terminated = time.monotonic()
    a.proc.send_signal(signal.SIGTERM)  # type: ignore[union-attr]
    wait_for(lambda: role(b) == "leader", "op-b leads", timeout=10, interval=0.05)
    took = time.monotonic() - terminated
    print(f"\nSIGTERM hand-over: {took:.2f} s (retry period {RETRY:g} s)")
    # One retry period when the machine is quiet (0.2-1 s); a loaded one adds its request latency.
    assert took <= RETRY + 3, f"hand-over took {took:.1f} s"
    a.proc.wait(20)  # type: ignore[union-attr]
    storm.join()
    wait_for(lambda: pending(pair) == 0, "every entry acknowledged", timeout=10)
    match = re.findall(r"(\d+) stream entries acknowledged by this process", a.log_path.read_text())
    assert match, a.log()
    by_a = int(match[-1])
    by_b = int(metric(b, "heady_ingest_acknowledged_total"))
    print(f"SIGTERM exactly once: {storm.sent} sent, {by_a} by op-a + {by_b} by op-b")
    assert by_a + by_b == storm.sent, "an entry was applied twice or lost in the hand-over"
    wait_for(lambda: settled(pair), "live at peak and expired at baseline", timeout=10)


def test_two_shards_each_with_a_standby_touch_only_their_namespaces(
    cluster: Cluster, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    run = uuid.uuid4().hex[:5]
    namespaces = {shard: f"t-shard-{shard}-{run}" for shard in ("a", "b")}
    for shard, ns in namespaces.items():
        cluster.core.create_namespace(
            {"metadata": {"name": ns, "labels": {"heady.io/test": "e2e", f"heady.io/shard-{run}": shard}}}
        )
        request.addfinalizer(lambda ns=ns: cluster.core.delete_namespace(ns, propagation_policy="Background"))
        _setup(cluster, ns, "web", replicas=2, priority="medium", cooldownSeconds=0)
    ops: dict[str, list[OperatorProcess]] = {}
    try:
        for shard in namespaces:
            env = {  # the default lease settings: no take-over here
                "HEADY_SHARD_SELECTOR": f"heady.io/shard-{run}={shard}",
                "HEADY_LEADER_ELECTION": "true",
                "HEADY_LEADER_ELECTION_LEASE": f"e2e-shard-{shard}-{run}",
                "HEADY_STATUS_SETTLE_SECONDS": "0.2",
            }
            ops[shard] = []
            for replica in ("0", "1"):
                op = OperatorProcess(cluster, tmp_path, {**env, "HEADY_POD_NAME": f"shard-{shard}-{replica}"})
                ops[shard].append(op)  # first: stopped in `finally` even if it never gets healthy
                op.start()
        leaders: dict[str, OperatorProcess] = {}
        for shard, pair in ops.items():
            leaders[shard] = wait_for(lambda pair=pair: leader_of(pair), f"shard {shard} has a leader")
        for shard, ns in namespaces.items():
            wait_for(lambda ns=ns: _all_at(cluster, ns, "web", BASE, 2), f"shard {shard}'s pods at baseline")
            cluster.apply(
                {
                    "apiVersion": "heady.io/v1alpha1",
                    "kind": "AttentionSignal",
                    "metadata": {"name": "look", "namespace": ns},
                    "spec": {"services": ["web"], "ttlSeconds": 120},
                }
            )
        for shard, ns in namespaces.items():
            wait_for(
                lambda ns=ns: _all_at(cluster, ns, "web", PEAK, 2),
                f"shard {shard}'s pods at peak",
                timeout=15,
            )
        for shard, leader in leaders.items():
            other = namespaces["b" if shard == "a" else "a"]
            text = leader.metrics()
            assert f'heady_pods_managed{{namespace="{namespaces[shard]}",service="web"}} 2.0' in text
            assert f'namespace="{other}"' not in text, f"shard {shard} acted in {other}"
            standby = next(o for o in ops[shard] if o is not leader)
            assert role(standby) == "standby" and writes(standby) == 0
    finally:
        for pair in ops.values():
            for op in pair:
                op.stop()
