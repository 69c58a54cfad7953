"""Predictive pre-escalation: a first-order Markov model of where attention goes next.

Every time a user's attention moves from service A to service B, the A->B count grows. When
attention lands on A and one successor holds at least `threshold` of A's observed transitions
(with at least `min_observations` of them), B is pre-escalated with a short TTL. If the user's
attention then reaches B before that TTL ends, the prediction was a hit; otherwise a miss.

Only attention with a user (or session) id is learned from: a move is a move of one user, and
signals without a user would join unrelated people's clicks into one "anonymous" path that
predicts nothing (docs/attention-ingest.md promises they do not train the model).

Predictions have to earn their place. Each predicted service keeps an online precision
(hits / (hits + misses) over its recent outcomes, older ones halved away); below a minimum
precision, after enough outcomes, its predictions are *throttled*: they are still made and
scored (shadow predictions: `expect` without a signal) but escalate nothing, and they resume
as soon as the shadow score says they would pay.

The same model learns when each service's attention comes back (`attend`): the revisit
intervals (from the end of one attention episode to the start of the next, users' attention
only), its duty cycle (attention-seconds per observed second) and the number of episodes.
`cooldown_from_revisits` sizes a cooldown from them (planning/recommend.py uses the same numbers).

Pure (no I/O, `now` passed in); the model serialises to JSON for a ConfigMap so it survives
restarts. Reading it back never raises: entries that are not what `to_json` writes are dropped.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from heady_operator.planning.recurrence import Recurrence

ServiceKey = tuple[str, str]
# The version `to_json` writes. Models without it were written by operators that also learned
# from signals without a user; their transition counts cannot be told apart and are dropped.
FORMAT_VERSION = 2


def known_user(user: str | None) -> bool:
    """Whether attention of this user may train the model (a non-blank user/session id)."""
    return bool(user and user.strip())


def _k(key: ServiceKey) -> str:
    return f"{key[0]}/{key[1]}"


def _unk(text: str) -> ServiceKey:
    ns, _, name = text.partition("/")
    return (ns, name)


@dataclass
class TransitionModel:
    counts: dict[str, dict[str, int]] = field(default_factory=dict)
    last: dict[str, str] = field(default_factory=dict)  # user -> service key of their last attention
    expected: dict[tuple[str, str], datetime] = field(default_factory=dict)  # (user, service) -> until
    # Outcomes of issued predictions (those that escalated) per predicted service; shadow ones
    # (made while throttled, escalating nothing) apart: only the issued cost capacity.
    hits: dict[str, int] = field(default_factory=dict)
    misses: dict[str, int] = field(default_factory=dict)
    shadow_hits: dict[str, int] = field(default_factory=dict)
    shadow_misses: dict[str, int] = field(default_factory=dict)
    shadowed: set[tuple[str, str]] = field(default_factory=set)  # expected entries that are shadow
    last_predicted: dict[str, str] = field(default_factory=dict)  # from -> predicted target
    # Recent [hits, misses] per predicted service, halved past `window`: the online precision.
    recent: dict[str, list[int]] = field(default_factory=dict)
    # Revisit intervals (seconds, the last `max_revisits`), episodes, attention-seconds and the
    # first time each service's attention was seen (its duty cycle's denominator).
    revisits: dict[str, list[float]] = field(default_factory=dict)
    episodes: dict[str, int] = field(default_factory=dict)
    attended: dict[str, float] = field(default_factory=dict)
    observed_since: dict[str, datetime] = field(default_factory=dict)
    busy_until: dict[str, datetime] = field(default_factory=dict)  # end of the current episode (not saved)
    # Time-of-day recurrence (planning/recurrence.py), saved in the same JSON under "recurrence".
    recurrence: Recurrence = field(default_factory=Recurrence)
    dirty: bool = False
    max_count: int = 10_000
    window: int = 50
    max_revisits: int = 64  # per service, saved in the ConfigMap (1 MiB): a sample, not a log

    def observe(self, user: str | None, service: ServiceKey, now: datetime) -> str | None:
        """Record attention landing on `service`; returns "hit" when it had been predicted.

        Attention without a user is ignored (None): it trains nothing and scores nothing.
        """
        if user is None or not known_user(user):
            return None
        key = _k(service)
        outcome: str | None = None
        until = self.expected.pop((user, key), None)
        shadow = (user, key) in self.shadowed
        self.shadowed.discard((user, key))
        if until is not None and now <= until:
            tally = self.shadow_hits if shadow else self.hits
            tally[key] = tally.get(key, 0) + 1
            self._score(key, 0)
            outcome = "shadow_hit" if shadow else "hit"
        prev = self.last.get(user)
        if prev is not None and prev != key:
            row = self.counts.setdefault(prev, {})
            row[key] = row.get(key, 0) + 1
            if sum(row.values()) > self.max_count:
                # Halve old evidence so the model follows changing habits.
                self.counts[prev] = {k: v // 2 for k, v in row.items() if v // 2}
        self.last[user] = key
        self.dirty = True
        return outcome

    def predict(
        self, service: ServiceKey, threshold: float, min_observations: int
    ) -> tuple[ServiceKey, float] | None:
        row = self.counts.get(_k(service))
        if not row:
            return None
        total = sum(row.values())
        if total < min_observations:
            return None
        target, count = max(row.items(), key=lambda kv: (kv[1], kv[0]))
        probability = count / total
        if probability < threshold:
            return None
        self.last_predicted[_k(service)] = target
        return _unk(target), probability

    def expect(self, user: str | None, target: ServiceKey, until: datetime, shadow: bool = False) -> None:
        """A prediction that `user` attends to `target` by `until`; `shadow`: made but not issued."""
        # Without a user the prediction can never be confirmed: it would only count as a miss.
        if user is None or not known_user(user):
            return
        entry = (user, _k(target))
        self.expected[entry] = until
        if shadow:
            self.shadowed.add(entry)
        else:
            self.shadowed.discard(entry)  # issued now: it costs capacity, so it counts as issued

    def expire(self, now: datetime) -> list[str]:
        """Predictions whose window ended without the attention arriving are misses."""
        out = []
        for (user, key), until in list(self.expected.items()):
            if until < now:
                del self.expected[(user, key)]
                shadow = (user, key) in self.shadowed
                self.shadowed.discard((user, key))
                tally = self.shadow_misses if shadow else self.misses
                tally[key] = tally.get(key, 0) + 1
                self._score(key, 1)
                out.append("shadow_miss" if shadow else "miss")
                self.dirty = True
        return out

    def score(self, service: ServiceKey, hit: bool, shadow: bool = False) -> None:
        """The outcome of a prediction made elsewhere (the recurrence), into the same precision.

        `shadow`: it was made while throttled, escalating nothing (counted like `expect`'s)."""
        key = _k(service)
        if shadow:
            counter = self.shadow_hits if hit else self.shadow_misses
        else:
            counter = self.hits if hit else self.misses
        counter[key] = counter.get(key, 0) + 1
        self._score(key, 0 if hit else 1)
        self.dirty = True

    def _score(self, key: str, index: int) -> None:
        row = self.recent.setdefault(key, [0, 0])
        row[index] += 1
        if row[0] + row[1] > self.window:
            # Old outcomes fade, so a service whose predictions start paying is resumed.
            row[0], row[1] = row[0] // 2, row[1] // 2

    def precision(self, service: ServiceKey) -> tuple[float | None, int]:
        """Recent hits / (hits + misses) of predictions of this service, and how many outcomes."""
        hits, misses = self.recent.get(_k(service), (0, 0))
        total = hits + misses
        return (hits / total if total else None), total

    def throttled(self, service: ServiceKey, min_precision: float, min_outcomes: int) -> bool:
        """Whether predictions of this service do not pay: scored in the shadow, never escalated."""
        precision, total = self.precision(service)
        return precision is not None and total >= min_outcomes and precision < min_precision

    def stats_for(
        self, service: ServiceKey, min_precision: float = 0.0, min_outcomes: int = 1
    ) -> dict[str, Any]:
        key = _k(service)
        stats: dict[str, Any] = {"hits": self.hits.get(key, 0), "misses": self.misses.get(key, 0)}
        if key in self.shadow_hits or key in self.shadow_misses:
            stats["shadowHits"] = self.shadow_hits.get(key, 0)
            stats["shadowMisses"] = self.shadow_misses.get(key, 0)
        if key in self.last_predicted:
            stats["lastPredicted"] = self.last_predicted[key]
        precision, _ = self.precision(service)
        if precision is not None:
            stats["precision"] = round(precision, 3)
            stats["throttled"] = self.throttled(service, min_precision, min_outcomes)
        return stats

    # ------------------------------------------------------------------ revisits and duty cycle

    def attend(self, service: ServiceKey, start: datetime, end: datetime) -> float | None:
        """A user's attention on `service` from `start` to `end`; the revisit interval it ends, if any.

        Overlapping or touching attention extends the current episode (a UI's heartbeats are one
        visit); attention after a gap starts a new one and records the gap."""
        if end <= start:
            return None
        key = _k(service)
        self.observed_since.setdefault(key, start)
        busy = self.busy_until.get(key)
        gap: float | None = None
        if busy is None or start > busy:
            if busy is not None:
                gap = (start - busy).total_seconds()
                row = self.revisits.setdefault(key, [])
                row.append(round(gap, 1))
                del row[: -self.max_revisits]
            self.episodes[key] = self.episodes.get(key, 0) + 1
            self.attended[key] = self.attended.get(key, 0.0) + (end - start).total_seconds()
            self.busy_until[key] = end
        elif end > busy:
            self.attended[key] = self.attended.get(key, 0.0) + (end - busy).total_seconds()
            self.busy_until[key] = end
        self.dirty = True
        return gap

    def history(self, service: ServiceKey, now: datetime) -> History:
        key = _k(service)
        since = self.observed_since.get(key)
        observed = max(0.0, (now - since).total_seconds()) if since is not None else 0.0
        return History(
            tuple(self.revisits.get(key, ())),
            self.episodes.get(key, 0),
            # Attention planned beyond `now` is not observed yet.
            max(0.0, self.attended.get(key, 0.0) - max(0.0, _seconds(self.busy_until.get(key), now))),
            observed,
        )

    def probability(self, src: ServiceKey, dst: ServiceKey) -> float:
        row = self.counts.get(_k(src)) or {}
        total = sum(row.values())
        return row.get(_k(dst), 0) / total if total else 0.0

    def to_json(self) -> str:
        return json.dumps(
            {
                "version": FORMAT_VERSION,
                "counts": self.counts,
                "hits": self.hits,
                "misses": self.misses,
                "shadowHits": self.shadow_hits,
                "shadowMisses": self.shadow_misses,
                "lastPredicted": self.last_predicted,
                "recent": self.recent,
                "revisits": self.revisits,
                "episodes": self.episodes,
                "attended": self.attended,
                "observedSince": {k: v.isoformat() for k, v in self.observed_since.items()},
                # Absent until something was learned: a model from before it reads back unchanged.
                **({"recurrence": self.recurrence.to_data()} if self.recurrence.habits else {}),
            },
            sort_keys=True,
        )

    @classmethod
    def from_json(cls, text: str) -> TransitionModel:
        """The model `to_json` wrote; never raises. Unreadable parts are dropped, not trusted.

        A model written before FORMAT_VERSION 2 may hold transitions of anonymous attention
        mixed into its counts: they are dropped (prediction relearns them within minutes), and
        the model is marked dirty so the cleaned one is saved (as when anything else was dropped).
        """
        try:
            data = json.loads(text) if text else {}
        except (ValueError, RecursionError):
            return cls(dirty=True)
        if not isinstance(data, dict):
            return cls(dirty=True)
        current = data.get("version") == FORMAT_VERSION
        model = cls(
            counts={
                src: row
                for src, raw in _mapping(data.get("counts")).items()
                if _is_key(src) and (row := {dst: n for dst, n in _counts(raw).items() if _is_key(dst)})
            }
            if current
            else {},
            hits={k: n for k, n in _counts(data.get("hits")).items() if _is_key(k)},
            misses={k: n for k, n in _counts(data.get("misses")).items() if _is_key(k)},
            shadow_hits={k: n for k, n in _counts(data.get("shadowHits")).items() if _is_key(k)},
            shadow_misses={k: n for k, n in _counts(data.get("shadowMisses")).items() if _is_key(k)},
            last_predicted={
                k: v
                for k, v in _mapping(data.get("lastPredicted")).items()
                if _is_key(k) and isinstance(v, str) and _is_key(v)
            },
            recent={
                k: [v[0], v[1]]
                for k, v in _mapping(data.get("recent")).items()
                if _is_key(k)
                and isinstance(v, list)
                and len(v) == 2
                and all(type(n) is int and 0 <= n <= 2**53 for n in v)
            },
            revisits={
                k: [float(x) for x in v]
                for k, v in _mapping(data.get("revisits")).items()
                if _is_key(k) and isinstance(v, list) and all(_seconds_ok(x) for x in v)
            },
            episodes={k: n for k, n in _counts(data.get("episodes")).items() if _is_key(k)},
            attended={
                k: float(v)
                for k, v in _mapping(data.get("attended")).items()
                if _is_key(k) and _seconds_ok(v)
            },
            observed_since={
                k: t
                for k, v in _mapping(data.get("observedSince")).items()
                if _is_key(k) and (t := _time(v)) is not None
            },
            recurrence=Recurrence.from_data(data.get("recurrence")),
        )
        # Saved again when anything was dropped, so the ConfigMap holds only what is trusted.
        model.dirty = json.loads(model.to_json()) != data
        return model


@dataclass(frozen=True)
class History:
    """What a service's attention looked like: the numbers recommendations are made of."""

    revisits: tuple[float, ...]  # seconds from the end of one episode to the start of the next
    episodes: int
    attended_seconds: float
    observed_seconds: float

    @property
    def duty_cycle(self) -> float | None:
        if self.observed_seconds <= 0:
            return None
        return min(1.0, self.attended_seconds / self.observed_seconds)


def cooldown_from_revisits(
    revisits: tuple[float, ...] | list[float], wait_cost: float, lo: int, hi: int
) -> int:
    """The cooldown that costs least over these revisits, within [lo, hi].

    Holding peak through a revisit of g seconds costs g (peak-seconds of the extra over baseline);
    a revisit that outlasts cooldown c costs c held in vain plus `wait_cost`: the user comes back
    to a relaxed service and waits for its resize (the price of that wait, in the same
    peak-seconds). The cooldown minimises sum(min(g, c)) + wait_cost x #(g > c): it covers short,
    frequent returns and lets long absences go."""
    gaps = sorted(g for g in revisits if g >= 0)
    if not gaps:
        return lo
    n = len(gaps)
    best_c, best = float(lo), math.inf
    prefix = 0.0  # sum of the gaps <= c
    i = 0
    for c in sorted({float(lo), float(hi), *(g for g in gaps if lo <= g <= hi)}):
        while i < n and gaps[i] <= c:
            prefix += gaps[i]
            i += 1
        cost = prefix + (n - i) * (c + wait_cost)
        if cost < best - 1e-9:
            best_c, best = c, cost
    return max(lo, min(hi, math.ceil(best_c)))


def _seconds(until: datetime | None, now: datetime) -> float:
    return 0.0 if until is None else (until - now).total_seconds()


def _seconds_ok(value: Any) -> bool:
    return type(value) in (int, float) and math.isfinite(value) and 0 <= value <= 10**9


def _time(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    return parsed if parsed.tzinfo is not None else None


def _mapping(value: Any) -> dict[str, Any]:
    return {k: v for k, v in value.items() if isinstance(k, str)} if isinstance(value, dict) else {}


def _counts(value: Any) -> dict[str, int]:
    """Non-negative integer counts; anything else (floats, strings, huge numbers) is dropped."""
    return {k: v for k, v in _mapping(value).items() if type(v) is int and 0 <= v <= 2**53}


def _is_key(text: str) -> bool:
    """A `namespace/name` service key as `_k` writes it."""
    ns, sep, name = text.partition("/")
    return bool(sep and ns and name)
