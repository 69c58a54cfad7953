"""Predictive pre-escalation: a first-order Markov model of where attention goes next.

Every time a user's attention moves from service A to service B, the A->B count grows. When
attention lands on A and one successor holds at least `threshold` of A's observed transitions
(with at least `min_observations` of them), B is pre-escalated with a short TTL. If the user's
attention then reaches B before that TTL ends, the prediction was a hit; otherwise a miss.

Pure (no I/O, `now` passed in); the model serialises to JSON for a ConfigMap so it survives
restarts.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

ServiceKey = tuple[str, str]


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
    hits: dict[str, int] = field(default_factory=dict)
    misses: dict[str, int] = field(default_factory=dict)
    last_predicted: dict[str, str] = field(default_factory=dict)  # from -> predicted target
    dirty: bool = False
    max_count: int = 10_000

    def observe(self, user: str, service: ServiceKey, now: datetime) -> str | None:
        """Record attention landing on `service`; returns "hit" when it had been predicted."""
        key = _k(service)
        outcome: str | None = None
        until = self.expected.pop((user, key), None)
        if until is not None and now <= until:
            self.hits[key] = self.hits.get(key, 0) + 1
            outcome = "hit"
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

    def expect(self, user: str, target: ServiceKey, until: datetime) -> None:
        self.expected[(user, _k(target))] = until

    def expire(self, now: datetime) -> list[str]:
        """Predictions whose window ended without the attention arriving are misses."""
        out = []
        for (user, key), until in list(self.expected.items()):
            if until < now:
                del self.expected[(user, key)]
                self.misses[key] = self.misses.get(key, 0) + 1
                out.append("miss")
                self.dirty = True
        return out

    def stats_for(self, service: ServiceKey) -> dict[str, Any]:
        key = _k(service)
        stats: dict[str, Any] = {"hits": self.hits.get(key, 0), "misses": self.misses.get(key, 0)}
        if key in self.last_predicted:
            stats["lastPredicted"] = self.last_predicted[key]
        return stats

    def probability(self, src: ServiceKey, dst: ServiceKey) -> float:
        row = self.counts.get(_k(src)) or {}
        total = sum(row.values())
        return row.get(_k(dst), 0) / total if total else 0.0

    def to_json(self) -> str:
        return json.dumps(
            {
                "counts": self.counts,
                "hits": self.hits,
                "misses": self.misses,
                "lastPredicted": self.last_predicted,
            },
            sort_keys=True,
        )

    @classmethod
    def from_json(cls, text: str) -> TransitionModel:
        data = json.loads(text) if text else {}
        return cls(
            counts={k: {kk: int(vv) for kk, vv in v.items()} for k, v in (data.get("counts") or {}).items()},
            hits={k: int(v) for k, v in (data.get("hits") or {}).items()},
            misses={k: int(v) for k, v in (data.get("misses") or {}).items()},
            last_predicted=dict(data.get("lastPredicted") or {}),
        )
