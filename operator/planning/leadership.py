"""Leader election on a Lease, as a pure state machine with an injected monotonic clock.

The semantics are client-go's (k8s.io/client-go/tools/leaderelection), which users know from
every controller manager:

- A replica that does not hold the Lease may take it only when the holder is empty or the
  record has not changed for `lease_duration` seconds *of its own clock*, counted from when it
  first saw that record (clocks of different hosts are never compared).
- The holder renews every `retry_period`. A renewal that does not succeed within
  `renew_deadline` of the last successful one ends its leadership.

On top of that, fencing: the holder may write only until `renew_deadline` after the moment it
*sent* its last successful renewal. Another replica saw that renewal after it was sent, and waits
`lease_duration` (> `renew_deadline`) from then: so the old leader has stopped writing before
anyone else may start, whatever stopped it (a partition, a long GC, SIGSTOP). The check is a
comparison with the monotonic clock, right before each write: a process that wakes from a pause
finds its deadline passed before it can send anything.

A leader that lost the Lease this way is FENCED for the rest of its life: its memory of what it
wrote may be stale, so it never leads again; /healthz fails and the kubelet restarts it as a
fresh standby (client-go's controllers exit for the same reason).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime
from enum import StrEnum
from typing import Protocol


class Role(StrEnum):
    STANDBY = "standby"  # campaigning: keeps its caches warm, writes nothing
    LEADER = "leader"  # holds the Lease and its fencing deadline has not passed
    FENCED = "fenced"  # held the Lease and could not renew in time (or gave it up): never writes again


@dataclass(frozen=True)
class Timings:
    lease_duration: float = 15.0
    renew_deadline: float = 10.0
    retry_period: float = 2.0

    def problem(self) -> str | None:
        """Why these settings cannot fence safely (client-go refuses the same), or None."""
        if self.lease_duration <= self.renew_deadline:
            return (
                f"the lease duration ({self.lease_duration:g} s) must be longer than the renew deadline "
                f"({self.renew_deadline:g} s), or a new leader could start before the old one stops"
            )
        if self.renew_deadline <= self.retry_period * 1.2:
            return (
                f"the renew deadline ({self.renew_deadline:g} s) must be longer than 1.2 x the retry "
                f"period ({self.retry_period:g} s), or one slow renewal would end the leadership"
            )
        return None


@dataclass(frozen=True)
class LeaseRecord:
    """The fields of a coordination.k8s.io/v1 Lease that election reads and writes."""

    holder: str = ""
    lease_duration_seconds: int = 15
    acquire_time: datetime | None = None
    renew_time: datetime | None = None
    transitions: int = 0
    resource_version: str = ""

    def same_as(self, other: LeaseRecord | None) -> bool:
        """Whether nothing changed (client-go compares the records without the object's version)."""
        return other is not None and replace(self, resource_version="") == replace(other, resource_version="")


class Gate(Protocol):
    """Asked right before every write to the cluster (or to the stream's consumer group)."""

    def may_write(self) -> bool: ...


class Always:
    """No election (a single replica, unit tests): always allowed."""

    def may_write(self) -> bool:
        return True


ALWAYS = Always()


class Step(StrEnum):
    WAIT = "wait"  # someone else holds a live Lease
    CREATE = "create"  # there is no Lease yet
    ACQUIRE = "acquire"  # the Lease is free or expired: take it
    RENEW = "renew"  # we hold it: renew it


@dataclass(frozen=True)
class Decision:
    step: Step
    record: LeaseRecord | None = None  # what to write (for every step but WAIT)


class Elector:
    """One replica's view of the election; the loop around it does the Lease I/O."""

    def __init__(
        self, identity: str, timings: Timings, monotonic: Callable[[], float] = time.monotonic
    ) -> None:
        self.identity = identity
        self.timings = timings
        self.monotonic = monotonic
        self.role = Role.STANDBY
        self.observed: LeaseRecord | None = None
        self.observed_at = monotonic()
        self.valid_until = float("-inf")  # the fencing deadline while leading
        self.leader_since: float | None = None
        self.fenced_reason = ""
        self.previous_holder = ""  # the last other replica seen holding the Lease

    # ------------------------------------------------------------------ the gate

    def may_write(self) -> bool:
        return self.role is Role.LEADER and self.monotonic() < self.valid_until

    @property
    def holder(self) -> str:
        return self.observed.holder if self.observed is not None else ""

    # ------------------------------------------------------------------ one round

    def observe(self, record: LeaseRecord | None) -> None:
        """The Lease as just read (None: there is none)."""
        if record is None or not record.same_as(self.observed):
            self.observed_at = self.monotonic()
        if record is not None and record.holder and record.holder != self.identity:
            self.previous_holder = record.holder
        self.observed = record

    def decide(self, now: datetime) -> Decision:
        """What to write this round, from the last observed record; `now` is the wall clock for the record."""
        if self.role is Role.FENCED:
            return Decision(Step.WAIT)
        seconds = math.ceil(self.timings.lease_duration)
        rec = self.observed
        if rec is None:
            return Decision(
                Step.CREATE, LeaseRecord(self.identity, seconds, now, now, 0, resource_version="")
            )
        if rec.holder == self.identity:
            return Decision(Step.RENEW, replace(rec, renew_time=now, lease_duration_seconds=seconds))
        # The holder's own duration, as client-go: it is what the holder's fencing was set against.
        if rec.holder and self.monotonic() < self.observed_at + rec.lease_duration_seconds:
            return Decision(Step.WAIT)
        return Decision(
            Step.ACQUIRE,
            replace(
                rec,
                holder=self.identity,
                lease_duration_seconds=seconds,
                acquire_time=now,
                renew_time=now,
                transitions=rec.transitions + 1,
            ),
        )

    def written(self, record: LeaseRecord, sent_at: float) -> bool:
        """The write of `record` (sent at monotonic `sent_at`) succeeded; True when this starts a leadership."""
        self.observed = record
        self.observed_at = sent_at
        if self.role is Role.FENCED:
            return False
        started = self.role is not Role.LEADER
        # Late success: the deadline already passed while the request was out. Others may
        # have seen us as expired, so this leadership is not trusted (check() fences it).
        self.valid_until = sent_at + self.timings.renew_deadline
        self.role = Role.LEADER
        if started:
            self.leader_since = sent_at
        return started

    def check(self) -> bool:
        """Fence a leader whose deadline passed; True when this call fenced it."""
        if self.role is Role.LEADER and self.monotonic() >= self.valid_until:
            self.fence("could not renew the Lease within the renew deadline")
            return True
        return False

    def lost(self, holder: str) -> bool:
        """The Lease is held by someone else although we led: fence now. True when this fenced us."""
        if self.role is Role.LEADER:
            self.fence(f"the Lease is held by {holder or 'nobody'}")
            return True
        return False

    def fence(self, reason: str) -> None:
        self.role = Role.FENCED
        self.valid_until = float("-inf")
        self.fenced_reason = reason

    def release_record(self, now: datetime) -> LeaseRecord | None:
        """client-go's ReleaseOnCancel: the record that hands the Lease over at once, or None if not ours.

        The caller fences first: nothing is written after the release is sent.
        """
        rec = self.observed
        if rec is None or rec.holder != self.identity:
            return None
        return replace(rec, holder="", lease_duration_seconds=1, renew_time=now, acquire_time=now)

    def wait_seconds(self) -> float:
        """Until the next round: the retry period, or sooner when a foreign Lease expires before it."""
        period = self.timings.retry_period
        if self.role is Role.STANDBY and self.observed is not None and self.observed.holder:
            expires = self.observed_at + self.observed.lease_duration_seconds - self.monotonic()
            if 0 < expires < period:
                return expires + 0.01
        return period


__all__ = [
    "ALWAYS",
    "Always",
    "Decision",
    "Elector",
    "Gate",
    "LeaseRecord",
    "Role",
    "Step",
    "Timings",
]
