"""What every converter writes: a trace CSV as benchmarks/simulate.py reads it (README.md here).

Converters name services after things in their source (a URL path, a function's hash); a
service becomes a HeadyService, a Deployment and pods in the simulator, so its name must be a
DNS label, which `dns_label` makes of any text.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

COLUMNS = ("time", "service", "intensity", "duration", "user")
_NOT_LABEL = re.compile(r"[^a-z0-9]+")


@dataclass(frozen=True)
class Row:
    time: float  # seconds from the start of the trace
    service: str
    intensity: float
    duration: float  # seconds
    user: str = ""  # blank: nobody in particular (the operator learns no transitions from it)


def dns_label(text: str, fallback: str = "root") -> str:
    """`text` as a DNS label: lower case, runs of anything else as one '-', at most 63 characters."""
    label = _NOT_LABEL.sub("-", text.lower()).strip("-")[:63].rstrip("-")
    return label or fallback


def _num(x: float) -> str:
    """Millisecond precision without trailing zeros (`:g` would round 123456.5 to 123456)."""
    return f"{x:.3f}".rstrip("0").rstrip(".")


def write_rows(rows: Iterable[Row], path: Path, users: bool = True) -> int:
    """Write rows sorted by time; without `users` the user column is left out. Returns the count."""
    ordered = sorted(rows, key=lambda r: (r.time, r.service, r.user))
    with path.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(COLUMNS if users else COLUMNS[:-1])
        for r in ordered:
            cells = [_num(r.time), r.service, _num(r.intensity), _num(r.duration)]
            w.writerow([*cells, r.user] if users else cells)
    return len(ordered)
