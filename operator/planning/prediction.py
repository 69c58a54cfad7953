"""Predictive pre-escalation: a first-order Markov model of where attention goes next.

Every time a user's attention moves from service A to service B, the A->B count grows. When
attention lands on A and one successor holds at least `threshold` of A's observed transitions
(with at least `min_observations` of them), B is pre-escalated with a short TTL. If the user's
attention then reaches B before that TTL ends, the prediction was a hit; otherwise a miss.

Only attention with a user (or session) id is learned from: a move is a move of one user, and
signals without a user would join unrelated people's clicks into one "anonymous" path that
predicts nothing (docs/attention-ingest.md promises they do not train the model).

Pure (no I/O, `now` passed in); the model serialises to JSON for a ConfigMap so it survives
restarts. Reading it back never raises: entries that are not what `to_json` writes are dropped.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

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
    hits: dict[str, int] = field(default_factory=dict)
    misses: dict[str, int] = field(default_factory=dict)
    last_predicted: dict[str, str] = field(default_factory=dict)  # from -> predicted target
    dirty: bool = False
    max_count: int = 10_000

    def observe(self, user: str | None, service: ServiceKey, now: datetime) -> str | None:
        """Record attention landing on `service`; returns "hit" when it had been predicted.

        Attention without a user is ignored (None): it trains nothing and scores nothing.
        """
        if user is None or not known_user(user):
            return None
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

    def expect(self, user: str | None, target: ServiceKey, until: datetime) -> None:
        # Without a user the prediction can never be confirmed: it would only count as a miss.
        if user is None or not known_user(user):
            return
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
                "version": FORMAT_VERSION,
                "counts": self.counts,
                "hits": self.hits,
                "misses": self.misses,
                "lastPredicted": self.last_predicted,
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
            last_predicted={
                k: v
                for k, v in _mapping(data.get("lastPredicted")).items()
                if _is_key(k) and isinstance(v, str) and _is_key(v)
            },
        )
        # Saved again when anything was dropped, so the ConfigMap holds only what is trusted.
        model.dirty = json.loads(model.to_json()) != data
        return model


def _mapping(value: Any) -> dict[str, Any]:
    return {k: v for k, v in value.items() if isinstance(k, str)} if isinstance(value, dict) else {}


def _counts(value: Any) -> dict[str, int]:
    """Non-negative integer counts; anything else (floats, strings, huge numbers) is dropped."""
    return {k: v for k, v in _mapping(value).items() if type(v) is int and 0 <= v <= 2**53}


def _is_key(text: str) -> bool:
    """A `namespace/name` service key as `_k` writes it."""
    ns, sep, name = text.partition("/")
    return bool(sep and ns and name)
