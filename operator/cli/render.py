"""Tables, colour and durations the way kubectl prints them. Pure: data in, text out."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TextIO

import yaml

# SGR codes; only these few so the output stays readable on any palette.
STYLES = {
    "bold": "1",
    "dim": "2",
    "red": "31",
    "green": "32",
    "yellow": "33",
    "blue": "34",
    "magenta": "35",
    "cyan": "36",
}


@dataclass(frozen=True)
class Cell:
    text: str
    style: str | None = None


CellLike = Cell | str


def paint(text: str, style: str | None, colour: bool) -> str:
    if not colour or not style or not text:
        return text
    codes = ";".join(STYLES[s] for s in style.split("+"))
    return f"\x1b[{codes}m{text}\x1b[0m"


def wants_colour(stream: TextIO, environ: Mapping[str, str] = os.environ) -> bool:
    """Colour only on a terminal, never with NO_COLOR set (no-color.org) or TERM=dumb."""
    if environ.get("NO_COLOR"):
        return False
    if environ.get("TERM", "") == "dumb":
        return False
    isatty = getattr(stream, "isatty", None)
    return bool(isatty and isatty())


def table(headers: Sequence[str], rows: Sequence[Sequence[CellLike]], colour: bool) -> str:
    """kubectl's layout: upper-case headers, columns three spaces apart, last column unpadded.

    Widths are measured on the plain text so escape codes never shift a column.
    """
    cells = [[c if isinstance(c, Cell) else Cell(c) for c in row] for row in rows]
    widths = [len(h) for h in headers]
    for row in cells:
        for i, c in enumerate(row):
            widths[i] = max(widths[i], len(c.text))
    lines = []
    head = [h.upper().ljust(widths[i]) if i < len(headers) - 1 else h.upper() for i, h in enumerate(headers)]
    lines.append("   ".join(head).rstrip())
    for row in cells:
        parts = []
        for i, c in enumerate(row):
            pad = "" if i == len(row) - 1 else " " * (widths[i] - len(c.text))
            parts.append(paint(c.text, c.style, colour) + pad)
        lines.append("   ".join(parts).rstrip())
    return "\n".join(lines) + "\n"


def human_duration(seconds: float) -> str:
    """kubectl's short durations (as in the AGE column): 45s, 3m20s, 25m, 5h10m, 3d."""
    if seconds < 0:
        return "0s"
    s = int(seconds)
    if s < 120:
        return f"{s}s"
    m = s // 60
    if m < 10:
        return f"{m}m{s % 60}s" if s % 60 else f"{m}m"
    if m < 180:
        return f"{m}m"
    h = m // 60
    if h < 8:
        return f"{h}h{m % 60}m" if m % 60 else f"{h}h"
    if h < 48:
        return f"{h}h"
    d = h // 24
    if d < 8:
        return f"{d}d{h % 24}h" if h % 24 else f"{d}d"
    return f"{d}d"


def percent(ratio: float | None) -> str:
    return "n/a" if ratio is None else f"{ratio * 100:.0f}%"


def dump(data: Any, output: str) -> str:
    if output == "json":
        return json.dumps(data, indent=2, sort_keys=False) + "\n"
    return str(yaml.safe_dump(data, sort_keys=False, default_flow_style=False))
