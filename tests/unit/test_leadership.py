"""Leader election with a fake clock and a fake Lease store: acquire, renew, expire, fence, release.

The store plays the apiserver's part (optimistic concurrency on resourceVersion); two electors
sharing one store are two replicas. Time only moves when a test moves it.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from heady_operator.kube.lease import LeaseConflict
from heady_operator.planning.leadership import Elector, LeaseRecord, Role, Step, Timings
from heady_operator.reconcile.leadership import Election

T0 = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)
TIMINGS = Timings(lease_duration=15, renew_deadline=10, retry_period=2)


class Clock:
    def __init__(self) -> None:
        self.mono = 100.0

    def monotonic(self) -> float:
        return self.mono

    def wall(self) -> datetime:
        return T0 + timedelta(seconds=self.mono)

    def advance(self, seconds: float) -> None:
        self.mono += seconds


class Store:
    """The apiserver's side: one Lease, replaced only at the version it was read at."""

    def __init__(self) -> None:
        self.record: LeaseRecord | None = None
        self.version = 0
        self.down = False
        self.writes: list[str] = []

    async def read(self) -> LeaseRecord | None:
        if self.down:
            raise OSError("connection refused")
        return self.record

    async def create(self, record: LeaseRecord) -> LeaseRecord:
        if self.down:
            raise OSError("connection refused")
        if self.record is not None:
            raise LeaseConflict("already exists")
        return self._store(record)

    async def replace(self, record: LeaseRecord) -> LeaseRecord:
        if self.down:
            raise OSError("connection refused")
        if self.record is None or record.resource_version != self.record.resource_version:
            raise LeaseConflict("the object has been modified")
        return self._store(record)

    def _store(self, record: LeaseRecord) -> LeaseRecord:
        self.version += 1
        self.record = replace(record, resource_version=str(self.version))
        self.writes.append(record.holder)
        return self.record


def replica(name: str, clock: Clock, store: Store, timings: Timings = TIMINGS) -> Election:
    return Election(Elector(name, timings, clock.monotonic), store, clock.wall)


def test_timings_must_leave_room_for_fencing() -> None:
    assert Timings().problem() is None
    assert "longer than the renew deadline" in str(Timings(10, 10, 2).problem())
    assert "retry" in str(Timings(15, 2, 2).problem())


async def test_first_replica_creates_the_lease_and_leads_the_second_waits() -> None:
    clock, store = Clock(), Store()
    a, b = replica("a", clock, store), replica("b", clock, store)
    await a.round()
    await b.round()
    assert a.elector.role is Role.LEADER and a.elector.may_write()
    assert b.elector.role is Role.STANDBY and not b.elector.may_write()
    assert store.record is not None and store.record.holder == "a"
    assert store.record.lease_duration_seconds == 15


async def test_leader_renews_and_stays_leader() -> None:
    clock, store = Clock(), Store()
    a, b = replica("a", clock, store), replica("b", clock, store)
    await a.round()
    for _ in range(20):  # 40 s of renewals every retry period
        clock.advance(2)
        await a.round()
        await b.round()
    assert a.elector.may_write() and b.elector.role is Role.STANDBY
    assert store.record is not None and store.record.transitions == 0


async def test_standby_takes_over_only_after_the_lease_duration_of_silence() -> None:
    clock, store = Clock(), Store()
    a, b = replica("a", clock, store), replica("b", clock, store)
    await a.round()
    await b.round()  # b first sees a's record now
    # a dies: nobody renews. b must wait the full lease duration from its own observation.
    clock.advance(14.9)
    await b.round()
    assert b.elector.role is Role.STANDBY
    clock.advance(0.2)
    await b.round()
    assert b.elector.role is Role.LEADER
    assert store.record is not None and store.record.holder == "b" and store.record.transitions == 1


async def test_a_leader_stops_writing_before_anyone_may_take_over() -> None:
    """The fencing invariant: the old leader's deadline always ends before the standby's wait does."""
    clock, store = Clock(), Store()
    a, b = replica("a", clock, store), replica("b", clock, store)
    await a.round()
    await b.round()
    store.down = True  # a partition: a cannot renew (b still reads nothing new either)
    clock.advance(9.9)
    assert a.elector.may_write()
    clock.advance(0.1)
    assert not a.elector.may_write()  # by its own clock, without any round running
    store.down = False
    clock.advance(4.9)  # b has seen no change for 14.8 s: still waiting
    await b.round()
    assert b.elector.role is Role.STANDBY
    clock.advance(0.2)
    await b.round()
    assert b.elector.may_write()
    await a.round()  # a wakes up: fenced, and it never leads again
    assert a.elector.role is Role.FENCED and not a.elector.may_write()
    clock.advance(100)
    await a.round()
    assert a.elector.role is Role.FENCED


async def test_a_paused_leader_finds_its_deadline_passed_on_waking() -> None:
    clock, store = Clock(), Store()
    a, b = replica("a", clock, store), replica("b", clock, store)
    await a.round()
    await b.round()
    clock.advance(30)  # SIGSTOP: a runs nothing for 30 s; b takes over meanwhile
    await b.round()
    assert b.elector.may_write()
    assert not a.elector.may_write()  # the first thing a asks on waking
    await a.round()
    assert a.elector.role is Role.FENCED
    assert store.record is not None and store.record.holder == "b"


async def test_two_standbys_racing_for_an_expired_lease_one_wins() -> None:
    clock, store = Clock(), Store()
    a, b, c = replica("a", clock, store), replica("b", clock, store), replica("c", clock, store)
    await a.round()
    await b.round()
    await c.round()
    clock.advance(16)
    # Both read the same expired record, then both write: the second write is a conflict.
    b.elector.observe(await store.read())
    c.elector.observe(await store.read())
    rb, rc = b.elector.decide(clock.wall()), c.elector.decide(clock.wall())
    assert rb.step is Step.ACQUIRE and rc.step is Step.ACQUIRE
    assert rb.record is not None and rc.record is not None
    b.elector.written(await store.replace(rb.record), clock.monotonic())
    with pytest.raises(LeaseConflict):
        await store.replace(rc.record)
    await c.round()
    assert b.elector.may_write() and c.elector.role is Role.STANDBY


async def test_release_hands_over_on_the_next_round() -> None:
    clock, store = Clock(), Store()
    a, b = replica("a", clock, store), replica("b", clock, store)
    await a.round()
    await b.round()
    clock.advance(1)
    assert await a.release()
    assert not a.elector.may_write()
    assert store.record is not None and store.record.holder == ""
    await b.round()  # no waiting for the lease duration
    assert b.elector.may_write()


async def test_release_by_a_standby_writes_nothing() -> None:
    clock, store = Clock(), Store()
    a, b = replica("a", clock, store), replica("b", clock, store)
    await a.round()
    await b.round()
    writes = list(store.writes)
    assert not await b.release()
    assert store.writes == writes


async def test_a_renewal_that_lands_after_the_deadline_fences() -> None:
    clock, store = Clock(), Store()
    a = replica("a", clock, store)
    await a.round()

    class Slow(Store):
        async def replace(self, record: LeaseRecord) -> LeaseRecord:
            clock.advance(11)  # the request hangs past the renew deadline, then succeeds
            return await store.replace(record)

        async def read(self) -> LeaseRecord | None:
            return await store.read()

    a.store = Slow()
    await a.round()
    assert a.elector.role is Role.FENCED


def test_standby_wakes_when_the_holders_lease_runs_out() -> None:
    clock = Clock()
    e = Elector("b", TIMINGS, clock.monotonic)
    e.observe(LeaseRecord("a", 15, T0, T0, 0, "1"))
    assert e.wait_seconds() == 2
    clock.advance(14)
    assert e.wait_seconds() == pytest.approx(1.01)


async def test_hooks_run_on_leading_and_on_fencing() -> None:
    clock, store = Clock(), Store()
    calls: list[str] = []

    async def leading() -> None:
        calls.append("leading")

    async def fenced() -> None:
        calls.append("fenced")

    a = Election(Elector("a", TIMINGS, clock.monotonic), store, clock.wall, leading, fenced)
    await a.round()
    clock.advance(2)
    await a.round()
    store.down = True
    clock.advance(10)
    await a.round()
    assert calls == ["leading", "fenced"]


class Steady:
    def stalled(self, limit: float) -> list[str]:
        return []


async def test_health_passes_for_a_standby_and_a_leader_and_fails_for_a_fenced_leader() -> None:
    from heady_operator.reconcile.health import Watchdog

    clock, store = Clock(), Store()
    a, b = replica("a", clock, store), replica("b", clock, store)
    await a.round()
    await b.round()
    leader, standby = Watchdog(Steady(), None, 5, a.elector), Watchdog(Steady(), None, 5, b.elector)
    assert (leader.problems(), leader.role()) == ([], "leader")
    assert (standby.problems(), standby.role()) == ([], "standby")
    clock.advance(30)  # a paused past its deadline: fenced before its election loop runs again
    assert leader.role() == "fenced"
    await a.round()
    assert leader.role() == "fenced"
    assert any("fenced leader" in p for p in leader.problems())
    assert Watchdog(Steady(), None, 5).role() is None  # no election: /healthz says nothing about it


def test_writes_are_counted_by_the_resource_they_name() -> None:
    from heady_operator.kube.client import resource_of

    base = "https://127.0.0.1:6443"
    assert resource_of(f"{base}/api/v1/namespaces/shop/pods/web-1/resize") == "pods/resize"
    assert resource_of(f"{base}/apis/coordination.k8s.io/v1/namespaces/heady-system/leases/heady") == "leases"
    assert (
        resource_of(f"{base}/apis/heady.io/v1alpha1/namespaces/a/headyservices/x/status")
        == "headyservices/status"
    )
    assert resource_of(f"{base}/api/v1/namespaces/x/events") == "events"
    assert resource_of(f"{base}/api/v1/nodes/n1?dryRun=All") == "nodes"


async def test_the_new_leader_knows_whom_it_took_over_from() -> None:
    clock, store = Clock(), Store()
    a, b = replica("a", clock, store), replica("b", clock, store)
    await a.round()
    await b.round()
    clock.advance(16)
    await b.round()
    assert b.elector.may_write() and b.elector.previous_holder == "a"
    assert a.elector.previous_holder == ""


async def test_release_wins_over_a_renewal_that_was_in_flight() -> None:
    clock, store = Clock(), Store()
    a, b = replica("a", clock, store), replica("b", clock, store)
    await a.round()
    await b.round()
    # The renewal lands after the elector last saw the Lease: its version is older than the store's.
    stale = a.elector.observed
    await a.round()
    a.elector.observed = stale
    assert await a.release()
    assert store.record is not None and store.record.holder == ""
    await b.round()
    assert b.elector.may_write()
