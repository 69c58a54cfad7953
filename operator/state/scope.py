"""Which namespaces are this operator's: every one, or a shard's (a label selector on namespaces).

A shard sees every node and every pod (node capacity counts all of them, whoever manages
them) but acts only for HeadyServices, AttentionSignals and ingested attention in its own
namespaces. Namespaces join and leave as their labels change; the state replays or drops
what it holds of them (state/cluster.py).
"""

from __future__ import annotations


def parse_selector(text: str) -> dict[str, str]:
    """`heady.io/shard=a,tier=games` -> the labels a namespace must carry (equality only)."""
    out: dict[str, str] = {}
    for part in (p.strip() for p in text.split(",")):
        if not part:
            continue
        key, sep, value = part.partition("=")
        value = value.removeprefix("=")  # key==value, as kubectl accepts it
        if not sep or not key.strip() or "!" in key:
            raise ValueError(f"shard selector {text!r}: {part!r} is not key=value")
        out[key.strip()] = value.strip()
    return out


class Scope:
    """All namespaces (no selector), or those whose labels match the selector."""

    def __init__(self, selector: dict[str, str] | None = None) -> None:
        self.selector = selector or None
        self._members: set[str] = set()

    @property
    def sharded(self) -> bool:
        return self.selector is not None

    def __contains__(self, namespace: object) -> bool:
        return self.selector is None or namespace in self._members

    def matches(self, labels: dict[str, str]) -> bool:
        return self.selector is None or all(labels.get(k) == v for k, v in self.selector.items())

    def update(self, namespace: str, labels: dict[str, str] | None) -> bool | None:
        """A namespace as last seen (None: deleted). True: it joined, False: it left, None: no change."""
        if self.selector is None:
            return None
        was = namespace in self._members
        now = labels is not None and self.matches(labels)
        if now == was:
            return None
        if now:
            self._members.add(namespace)
        else:
            self._members.discard(namespace)
        return now

    @property
    def namespaces(self) -> frozenset[str]:
        return frozenset(self._members)
