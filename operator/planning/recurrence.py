"""Time-of-day recurrence: services that are attended around the same time, day after day.

The transition model (prediction.py) learns where a user goes *next*; it needs a user and a
move. Real multi-day traffic carries another signal it cannot use: a service is opened around
09:00 every working day, a batch of functions fires at 02:00 every night, a team looks at the
reports after lunch. Anonymous traffic (serverless invocations, logs without a session) has no
user at all, so the transition model gets no input from it, while this model does.

Per service, the day is cut into buckets (`bucket_seconds`, UTC). For each of the last
`max_days` days the model remembers whether the service had attention that day at all (an
*observed* day) and in which buckets an attention *episode started* (attention after a gap;
heartbeats of one visit are one episode). A bucket *qualifies* when an episode started in it
(or within `spread` buckets of it, so a habit with a few minutes of jitter still counts) on at
least `k` of the service's last `n` observed days before today. Days the service saw no
attention (weekends, an operator outage) are not held against the habit.

When the bucket `lead` seconds ahead qualifies and the service is not attended, the operator
pre-escalates it from now to the bucket's end (cluster.py issues it as a PREDICTOR signal, so it
never holds a slot or node room real attention needs). Consecutive qualifying buckets extend the
same prediction. It is a hit when an attention episode on the service starts inside its window,
a miss otherwise; the outcomes feed the same per-service online precision as the transition
model's, and are throttled by it the same way (`shadow`: scored, escalating nothing).

A habit's key is a service (`ns/name`: anyone's attention) or one user on one service
(`ns/name@<hash of the user>`, `user_key`: the user id itself is never saved); the operator
chooses which it predicts from (HEADY_RECURRENCE_BY). Outcomes are always judged per service.

Pure (no I/O, times passed in). The masks serialise into the transition model's ConfigMap JSON
(`to_data`/`from_data`), bounded to `max_entries` (service, bucket) entries; reading back never
raises and drops what is not what `to_data` writes.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

DAY = 86_400
# (service, bucket) entries saved at most: about 13 bytes each in the ConfigMap's JSON (1 MiB),
# so the recurrence takes at most ~0.25 MiB of it whatever the number of services.
MAX_ENTRIES = 20_000
MAX_DAYS = 60  # masks are Python ints, but a day's bit must stay a sane JSON number


@dataclass
class Habit:
    """One service's days: bit i of each mask stands for day `day - i` (UTC days since the epoch)."""

    day: int
    seen: int = 0  # attention at all that day
    starts: dict[int, int] = field(default_factory=dict)  # bucket -> days an episode started in it

    def aligned(self, today: int, bits: int) -> tuple[int, dict[int, int]]:
        """Masks shifted so that bit i stands for `today - i` (days past `bits` fall off)."""
        shift = today - self.day
        if shift <= 0:
            return self.seen, self.starts
        keep = (1 << bits) - 1
        return (self.seen << shift) & keep, {b: (m << shift) & keep for b, m in self.starts.items()}


@dataclass(frozen=True)
class Judge:
    """When a bucket qualifies: an episode started within `spread` buckets of it on at least `k` of
    the service's last `n` observed days, at `lift` times the share of its average bucket."""

    k: int = 3
    n: int = 14
    spread: int = 1
    lift: float = 1.0


@dataclass(frozen=True)
class Due:
    """A pre-escalation the recurrence asks for: `service` until `until`, with this share of days."""

    service: str
    until: datetime
    share: float


@dataclass
class Expectation:
    start: datetime
    until: datetime
    shadow: bool  # scored but not issued (its service's predictions are throttled)


@dataclass
class Recurrence:
    bucket_seconds: int = 300
    max_days: int = 14
    habits: dict[str, Habit] = field(default_factory=dict)
    # Not saved: the end of each service's current attention episode, the predictions waiting for
    # their outcome, and the qualifying buckets per day (valid for the whole day: today's own
    # attention counts from tomorrow on).
    busy_until: dict[str, datetime] = field(default_factory=dict)
    pending: dict[str, Expectation] = field(default_factory=dict)
    _index: dict[tuple[int, Judge], dict[int, dict[str, float]]] = field(default_factory=dict)
    dirty: bool = False
    max_entries: int = MAX_ENTRIES

    @property
    def per_day(self) -> int:
        return DAY // self.bucket_seconds

    def configure(self, bucket_seconds: int, max_days: int) -> None:
        """Use these settings; what was learned with another bucket size cannot be mapped and goes."""
        if DAY % bucket_seconds or not 1 <= max_days <= MAX_DAYS:
            raise ValueError(f"bucket {bucket_seconds} s must divide a day, days in 1..{MAX_DAYS}")
        if bucket_seconds != self.bucket_seconds:
            self.habits.clear()
            self.dirty = True
        if max_days < self.max_days:
            keep = (1 << max_days) - 1
            for h in self.habits.values():
                h.seen &= keep
                h.starts = {b: m & keep for b, m in h.starts.items() if m & keep}
            self.dirty = True
        self.bucket_seconds, self.max_days = bucket_seconds, max_days
        self._index.clear()

    # ------------------------------------------------------------------ learning

    def slot(self, at: datetime) -> tuple[int, int]:
        """(UTC day number, bucket of that day) of a moment."""
        seconds = math.floor(at.timestamp())
        return seconds // DAY, (seconds % DAY) // self.bucket_seconds

    def observe(self, service: str, start: datetime, end: datetime) -> bool:
        """Real attention on `service` from `start` to `end`; whether it started a new episode."""
        if end <= start:
            return False
        busy = self.busy_until.get(service)
        started = busy is None or start > busy
        if busy is None or end > busy:
            self.busy_until[service] = end
        day, bucket = self.slot(start)
        habit = self.habits.get(service)
        if habit is None:
            habit = self.habits[service] = Habit(day)
        if day > habit.day:
            habit.seen, habit.starts = habit.aligned(day, self.max_days)
            habit.day = day
        age = habit.day - day
        if age >= self.max_days:
            return started
        bit = 1 << age
        before = (habit.seen, habit.starts.get(bucket, 0))
        habit.seen |= bit
        if started:
            habit.starts[bucket] = habit.starts.get(bucket, 0) | bit
        if before != (habit.seen, habit.starts.get(bucket, 0)):
            self.dirty = True
            if age:
                self._index.clear()  # a late signal changed a past day: re-judge the buckets
        return started

    def attended(self, service: str, now: datetime) -> bool:
        busy = self.busy_until.get(service)
        return busy is not None and busy >= now

    # ------------------------------------------------------------------ judging

    def counts(self, habit: Habit, today: int, n: int, spread: int) -> tuple[int, dict[int, int]]:
        """The service's last `n` observed days before `today`, and per bucket on how many of them
        an episode started within `spread` buckets of it (buckets with none are left out)."""
        seen, starts = habit.aligned(today, self.max_days)
        seen >>= 1  # bit j: today - 1 - j (today itself is still going on)
        window = 0
        while seen and window.bit_count() < n:
            low = seen & -seen
            window |= low
            seen ^= low
        out: dict[int, int] = {}
        for b in {b + d for b in starts for d in range(-spread, spread + 1) if 0 <= b + d < self.per_day}:
            hit = 0
            for near in range(max(0, b - spread), min(self.per_day, b + spread + 1)):
                hit |= starts.get(near, 0)
            if count := ((hit >> 1) & window).bit_count():
                out[b] = count
        return window.bit_count(), out

    def qualifying(self, day: int, judge: Judge) -> dict[int, dict[str, float]]:
        """bucket -> {service: share of days} of the buckets that qualify on `day` (cached per day).

        A bucket qualifies on at least `judge.k` of the service's last `judge.n` observed days, and
        at `judge.lift` times the share of an average bucket of the same service: a service used
        all day long starts episodes in most buckets, which is no habit of any time of day."""
        key = (day, judge)
        found = self._index.get(key)
        if found is not None:
            return found
        out: dict[int, dict[str, float]] = {}
        k = min(judge.k, judge.n)
        for service, habit in self.habits.items():
            days, counts = self.counts(habit, day, judge.n, judge.spread)
            if days < k:
                continue
            base = sum(counts.values()) / (days * self.per_day)
            for b, count in counts.items():
                share = count / days
                if count >= k and share >= judge.lift * base:
                    out.setdefault(b, {})[service] = share
        if len(self._index) >= 2:
            self._index.pop(min(self._index, key=lambda kv: kv[0]))
        self._index[key] = out
        return out

    def due(self, now: datetime, lead: float, judge: Judge) -> list[Due]:
        """The services whose prediction window holds `now`: a qualifying bucket starts within
        `lead` seconds (or has started and not ended). One per service, until its last such bucket."""
        first = math.floor(now.timestamp()) // self.bucket_seconds
        last = math.floor(now.timestamp() + lead) // self.bucket_seconds
        out: dict[str, Due] = {}
        for a in range(first, last + 1):
            day, bucket = divmod(a, self.per_day)
            until = _at((a + 1) * self.bucket_seconds)
            for service, share in self.qualifying(day, judge).get(bucket, {}).items():
                prev = out.get(service)
                out[service] = Due(service, until, max(share, prev.share if prev else 0.0))
        return sorted(out.values(), key=lambda d: d.service)

    def next_due(self, now: datetime, lead: float, judge: Judge) -> datetime:
        """When the next prediction window opens after `now` (at the latest, the next day's first
        bucket's: a day's qualifying buckets are judged once it has begun)."""
        size = self.bucket_seconds
        a = math.floor(now.timestamp() + lead) // size + 1
        day = a // self.per_day
        while a // self.per_day == day:
            if self.qualifying(day, judge).get(a % self.per_day):
                break
            a += 1
        return _at(a * size - lead)

    # ------------------------------------------------------------------ outcomes

    def expect(self, service: str, now: datetime, until: datetime, shadow: bool) -> bool:
        """Wait for attention on `service` until `until`; False when it extends a prediction already
        waiting (one habit, one outcome, however many buckets it spans)."""
        current = self.pending.get(service)
        if current is not None and now <= current.until:
            current.until = max(current.until, until)
            return False
        self.pending[service] = Expectation(now, until, shadow)
        return True

    def confirm(self, service: str, at: datetime) -> Expectation | None:
        """An attention episode on `service` started at `at`: the prediction it confirms, if any."""
        current = self.pending.get(service)
        if current is None or not current.start <= at <= current.until:
            return None
        del self.pending[service]
        return current

    def expire(self, now: datetime) -> list[tuple[str, Expectation]]:
        """Predictions whose window ended without the attention: misses."""
        out = [(s, e) for s, e in self.pending.items() if e.until < now]
        for service, _ in out:
            del self.pending[service]
        return out

    # ------------------------------------------------------------------ the ConfigMap

    def to_data(self) -> dict[str, Any]:
        """The masks, most recently attended services first, at most `max_entries` buckets in all."""
        services: dict[str, Any] = {}
        budget = self.max_entries
        for name, h in sorted(self.habits.items(), key=lambda kv: (-kv[1].day, kv[0])):
            if not h.seen:
                continue
            if len(h.starts) > budget:
                break
            budget -= len(h.starts)
            services[name] = {
                "day": h.day,
                "seen": h.seen,
                "starts": {str(b): m for b, m in sorted(h.starts.items()) if m},
            }
        return {"bucketSeconds": self.bucket_seconds, "maxDays": self.max_days, "services": services}

    @classmethod
    def from_data(cls, value: Any) -> Recurrence:
        """What `to_data` wrote; never raises. Anything else is dropped (and the result is dirty)."""
        if not isinstance(value, dict):
            return cls(dirty=value is not None)
        bucket, days = value.get("bucketSeconds"), value.get("maxDays")
        if not (type(bucket) is int and 60 <= bucket <= DAY and DAY % bucket == 0):
            return cls(dirty=True)
        if not (type(days) is int and 1 <= days <= MAX_DAYS):
            return cls(dirty=True)
        model = cls(bucket_seconds=bucket, max_days=days)
        limit = 1 << days
        raw = value.get("services")
        for name, entry in raw.items() if isinstance(raw, dict) else ():
            if not (isinstance(name, str) and _is_key(name) and isinstance(entry, dict)):
                continue
            day, seen, starts = entry.get("day"), entry.get("seen"), entry.get("starts")
            if not (type(day) is int and 0 <= day <= 10**6 and type(seen) is int and 0 < seen < limit):
                continue
            if not isinstance(starts, dict):
                continue
            kept = {
                int(b): m
                for b, m in starts.items()
                if isinstance(b, str)
                and b.isascii()
                and b.isdigit()
                and int(b) < model.per_day
                and str(int(b)) == b
                and type(m) is int
                and 0 < m < limit
            }
            model.habits[name] = Habit(day, seen, kept)
        model.dirty = model.to_data() != value
        return model


def user_key(service: str, user: str) -> str:
    """The habit key of one user on one service: the user only as a hash, never the id itself."""
    digest = hashlib.blake2b(user.encode(), digest_size=6).hexdigest()
    return f"{service}@{digest}"


def target_of(key: str) -> str:
    """The service a habit key is about (names and namespaces are DNS labels: no '@')."""
    return key.partition("@")[0]


def _at(seconds: float) -> datetime:
    return datetime(1970, 1, 1, tzinfo=UTC) + timedelta(seconds=seconds)


def _is_key(text: str) -> bool:
    """A `namespace/name` service key (prediction._k writes them)."""
    ns, sep, name = text.partition("/")
    return bool(sep and ns and name)
