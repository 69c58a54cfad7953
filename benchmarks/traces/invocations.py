"""Per-minute invocation counts per function -> attention trace CSV.

    .venv/bin/python benchmarks/traces/invocations.py invocations_per_function.d01.csv -o trace.csv
    .venv/bin/python benchmarks/traces/invocations.py d01.csv d02.csv -o trace.csv --by function --top 40

The input is shaped like the public Azure Functions trace (invocations_per_function_md.anon.dNN.csv):
columns HashOwner, HashApp, HashFunction, Trigger, then 1..1440, the invocations in each minute of
the day. Several files are consecutive days (the second starts at 86400 s).

A service is an app (`--by app`, the default: an app is what gets deployed and sized) or a
function (`--by function`), named `app-<hash prefix>` / `fn-<hash prefix>`. A service has
attention in every minute with at least `--min-count` invocations; consecutive such minutes make
one row. Intensity is 1, or with `--intensity scaled` the minute's count over the service's
busiest minute (rows below the operator's attention threshold are then "not demand" in the
simulator's report). Invocations carry no user, so the rows have none: the operator learns
transitions only from attention with a user id, so prediction has no input on such a trace.

`--trigger http` keeps only HTTP-triggered functions (a timer or queue trigger is no one's attention).
`--top N` keeps the N services with the most invocations.
"""

from __future__ import annotations

import argparse
import csv
import math
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

sys.path.append(str(Path(__file__).resolve().parents[2]))  # appended: stdlib `operator` must win

from benchmarks.traces.tracefile import Row, dns_label, write_rows

MINUTES = 1440
KEYS = ("HashOwner", "HashApp", "HashFunction", "Trigger")


@dataclass
class Counts:
    """Invocations per minute of the whole trace (day d, minute m -> index d*1440 + m - 1)."""

    by_service: dict[str, list[int]]
    days: int
    functions: int = 0
    skipped_trigger: int = 0
    bad_cells: int = 0
    bad_examples: list[str] = field(default_factory=list)


def read_counts(files: Iterable[Path], by: str = "app", trigger: str | None = None) -> Counts:
    """Counts summed per service key: the app's hash, or app/function hashes."""
    paths = list(files)
    counts: dict[str, list[int]] = {}
    out = Counts(counts, len(paths))
    for day, path in enumerate(paths):
        with path.open(newline="") as fh:
            reader = csv.DictReader(fh)
            missing = [k for k in (*KEYS, "1", str(MINUTES)) if k not in (reader.fieldnames or [])]
            if missing:
                raise ValueError(
                    f"{path}: not a per-minute invocation file, missing column(s) {', '.join(missing)}"
                )
            for row in reader:
                if trigger and (row["Trigger"] or "").strip().lower() != trigger.lower():
                    out.skipped_trigger += 1
                    continue
                out.functions += 1
                key = row["HashApp"] if by == "app" else f"{row['HashApp']}/{row['HashFunction']}"
                series = counts.setdefault(key, [0] * (MINUTES * len(paths)))
                for m in range(1, MINUTES + 1):
                    raw = (row.get(str(m)) or "").strip()
                    if not raw:
                        continue
                    n = _count(raw)
                    if n is None:
                        # One bad cell costs that minute, not the file: counted and reported.
                        out.bad_cells += 1
                        if len(out.bad_examples) < 3:
                            out.bad_examples.append(
                                f"{path.name} line {reader.line_num} minute {m}: {raw[:20]!r}"
                            )
                        continue
                    series[day * MINUTES + m - 1] += n
    return out


def _count(raw: str) -> int | None:
    """An invocation count (a non-negative whole number, '3' or '3.0'), or None."""
    try:
        value = float(raw)
    except ValueError:
        return None
    if not math.isfinite(value) or value < 0 or value != int(value):
        return None
    return int(value)


def names(keys: Iterable[str], prefix: str) -> dict[str, str]:
    """A short DNS-label name per key: `prefix-` and the first 8 characters of its (app's or
    function's) hash, longer where two keys would share a name."""
    keys = sorted(keys)
    short = {k: dns_label(k.rsplit("/", 1)[-1], "x") for k in keys}
    for width in (8, 12, 16, 24, 40, 63 - len(prefix) - 1):
        taken = {k: f"{prefix}-{short[k][:width]}".rstrip("-") for k in keys}
        if len(set(taken.values())) == len(taken):
            return taken
    # Only identical labels are left (hashes differing in case or punctuation): number them.
    return {k: f"{prefix}-{i}" for i, k in enumerate(keys)}


def rows_of(
    counts: Mapping[str, list[int]],
    service_names: Mapping[str, str],
    min_count: int = 1,
    scaled: bool = False,
) -> list[Row]:
    rows: list[Row] = []
    for key, series in counts.items():
        busiest = max(series, default=0)
        if busiest < min_count:
            continue
        run_start: int | None = None
        run_level = 0.0
        for m, n in enumerate([*series, 0]):  # a trailing quiet minute closes the last run
            level = (round(n / busiest, 2) if scaled else 1.0) if n >= min_count else 0.0
            if run_start is not None and level != run_level:
                rows.append(Row(run_start * 60.0, service_names[key], run_level, (m - run_start) * 60.0))
                run_start = None
            if run_start is None and level > 0:
                run_start, run_level = m, level
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("files", type=Path, nargs="+", help="per-minute count CSVs, one per day, in order")
    parser.add_argument("-o", "--output", type=Path, required=True, help="trace CSV to write")
    parser.add_argument("--by", choices=("app", "function"), default="app", help="what a service is")
    parser.add_argument("--trigger", help="keep only functions with this trigger (e.g. http)")
    parser.add_argument("--min-count", type=int, default=1, help="invocations that make a minute attended")
    parser.add_argument("--intensity", choices=("one", "scaled"), default="one")
    parser.add_argument("--top", type=int, default=0, help="keep the N busiest services (0: all)")
    args = parser.parse_args(argv)
    if args.min_count < 1 or args.top < 0:
        parser.error("--min-count must be at least 1 and --top not negative")
    try:
        counts = read_counts(args.files, args.by, args.trigger)
    except ValueError as exc:
        print(exc, file=sys.stderr)
        return 1
    series = counts.by_service
    if args.top:
        busiest = sorted(series, key=lambda k: (-sum(series[k]), k))[: args.top]
        series = {k: series[k] for k in busiest}
    service_names = names(series, "app" if args.by == "app" else "fn")
    rows = rows_of(series, service_names, args.min_count, args.intensity == "scaled")
    if not rows:
        print("no attended minute in the input", file=sys.stderr)
        return 1
    write_rows(rows, args.output, users=False)
    if counts.bad_cells:
        print(
            f"{counts.bad_cells} cell(s) not a count (a non-negative whole number), left out: "
            + "; ".join(counts.bad_examples),
            file=sys.stderr,
        )
    print(
        f"{counts.functions} functions ({counts.skipped_trigger} skipped by trigger) over {counts.days} day(s): "
        f"{len({r.service for r in rows})} services -> {len(rows)} rows in {args.output}",
        file=sys.stderr,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
