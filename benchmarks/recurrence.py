"""Does time-of-day recurrence pay? heady with and without it on generated traces.

    .venv/bin/python benchmarks/recurrence.py                 # workday, browsing, week, invocations
    .venv/bin/python benchmarks/recurrence.py --profile week  # one profile
    .venv/bin/python benchmarks/recurrence.py --quick         # two short days, into a temp dir (seconds)

Per profile, at one baseline ratio (0.9): heady-reactive, heady-predictive with the transition
model only (HEADY_PREDICTION_RECURRENCE=false) and heady-recurrence (the same plus time-of-day
recurrence, planning/recurrence.py), each on the operator's own ClusterState and planner on the
simulator's virtual clock (benchmarks/simulation.py). The ceiling is measured in the same run:
the oracle (peak exactly while attended) and always-peak, so each row says its share of the
oracle's saving. heady-recurrence-user learns each user's habits on each service instead of each
service's. Writes benchmarks/results/recurrence.{json,md}.

Profiles: `workday` and `browsing` are simulate.py's single days (recurrence has no earlier day
to learn from there: it must cost nothing); `week` is five working days of the workday with
users' daily habits (simulation.WeekShape); `invocations` is four days of anonymous per-minute
invocations, some apps scheduled at fixed times of day (simulation.InvocationShape).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.append(str(Path(__file__).resolve().parents[1]))  # appended: stdlib `operator` must win

from benchmarks.simulation import (
    MEASURED_RESIZE_DELAY,
    BrowsingShape,
    InvocationShape,
    Run,
    Trace,
    TraceShape,
    WeekShape,
    account,
    always_peak,
    compare,
    generate_browsing_trace,
    generate_invocation_trace,
    generate_trace,
    generate_week_trace,
    oracle,
    run_heady,
    with_baseline_ratio,
)
from heady_operator.config import Settings

RESULTS = Path(__file__).resolve().parent / "results"
PROFILES = ("workday", "browsing", "week", "invocations")
VARIANTS = ("heady-reactive", "heady-predictive", "heady-recurrence", "heady-recurrence-user")
SLACK = 0.05  # issue 16: predictive never worse than reactive by more than this (SLA points)


def say(msg: str) -> None:
    print(f"[recurrence {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def traces(quick: bool) -> dict[str, Callable[[], Trace]]:
    if quick:
        return {
            "workday": lambda: generate_trace(TraceShape(hours=1.0, users=6, spikes=1)),
            "week": lambda: generate_week_trace(WeekShape(days=4, hours=1.0, users=6, spikes=1)),
        }
    return {
        "workday": lambda: generate_trace(TraceShape()),
        "browsing": lambda: generate_browsing_trace(BrowsingShape()),
        "week": lambda: generate_week_trace(WeekShape()),
        "invocations": lambda: generate_invocation_trace(InvocationShape()),
    }


def variant(trace: Trace, name: str, delay: float | None, **settings: Any) -> Run:
    """One heady variant; `delay` None: the simulator's own default actuation delay."""
    predictive = name != "heady-reactive"
    settings["prediction_recurrence"] = name.startswith("heady-recurrence")
    if name == "heady-recurrence-user":
        settings["recurrence_by"] = "user"
    if delay is None:
        run = run_heady(trace, predictive, **settings)
    else:
        run = run_heady(trace, predictive, delay, **settings)
    return dataclasses.replace(run, policy=name)


def measure(trace: Trace, settings: dict[str, Any], delay: float | None) -> list[dict[str, Any]]:
    runs = [always_peak(trace), oracle(trace)]
    for name in VARIANTS:
        started = time.perf_counter()
        runs.append(variant(trace, name, delay, **settings))
        say(f"{trace.name}: {name} in {time.perf_counter() - started:.1f} s")
    return compare([account(trace, r) for r in runs])


def row(profile: str, r: dict[str, Any]) -> str:
    p = r.get("predictions") or {}
    prec = r.get("prediction_precision")
    return (
        f"| {profile} | {r['policy']} | {r['sla_violation_pct']:.3f}% | {r['sla_violation_seconds']:.0f} "
        f"| {r['cpu_vs_always_peak_pct']:.2f}% | {r['share_of_oracle_saving_pct']:.1f}% "
        f"| {p.get('issued', '') if p else ''} | {'' if not p else ('n/a' if prec is None else f'{prec:.2f}')} "
        f"| {p.get('predicted_peak_service_seconds', '') if p else ''} | {r['resizes_per_pod_hour']:.2f} |"
    )


def markdown(data: dict[str, Any]) -> str:
    s = data["settings"]
    lines = [
        f"# Time-of-day recurrence: does it pay? ({data['date']})",
        "",
        f"Baseline ratio {data['ratio']:g}, actuation delay "
        + (
            f"{data['resize_delay_s']:g} s"
            if data["resize_delay_s"] is not None
            else f"drawn per resize from the real-kubelet measurement ({MEASURED_RESIZE_DELAY.text()})"
        )
        + f". heady-predictive: the transition model only; heady-recurrence: "
        f"the same plus time-of-day recurrence (bucket {s['recurrence_bucket_seconds']} s, at least "
        f"{s['recurrence_min_days']} of the last {s['recurrence_days']} observed days, spread "
        f"{s['recurrence_spread_buckets']} bucket(s), lift {s['recurrence_min_lift']:g}, lead "
        f"{s['recurrence_lead_seconds']:g} s) of each service; heady-recurrence-user: of each user on each "
        "service instead (HEADY_RECURRENCE_BY=user). "
        "Precision: hits / (hits + misses) of every prediction decided (both models share it).",
        "",
        "| trace | policy | SLA-violation % | SLA-violation s | CPU vs always-peak | share of oracle's saving "
        "| predictions issued | precision | held at peak on a prediction alone, service-s | resizes / pod-h |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for profile, entry in data["profiles"].items():
        for r in entry["policies"]:
            if r["policy"] in VARIANTS:
                lines.append(row(profile, r))
    lines += ["", "## The issue's rule", "", "| trace | check | measured | |", "|---|---|---|---|"]
    for profile, entry in data["profiles"].items():
        rows = {r["policy"]: r for r in entry["policies"]}
        react = rows["heady-reactive"]["sla_violation_pct"]
        for name in VARIANTS[1:]:
            gap = rows[name]["sla_violation_pct"] - react
            ok = gap <= SLACK
            lines.append(
                f"| {profile} | {name} SLA % <= heady-reactive's + {SLACK:g} | {gap:+.3f} points "
                f"| {'met' if ok else '**not met**'} |"
            )
    lines += [
        "",
        "## What each model buys",
        "",
        "SLA-violation seconds saved and CPU core-hours spent by adding the transition model to "
        "heady-reactive, and by adding recurrence to heady-predictive.",
        "",
        "| trace | added | SLA-violation s saved | CPU core-h spent | core-seconds per violation-second saved |",
        "|---|---|---|---|---|",
    ]
    for profile, entry in data["profiles"].items():
        rows = {r["policy"]: r for r in entry["policies"]}
        for added, base, name in (
            ("transition model", "heady-reactive", "heady-predictive"),
            ("recurrence", "heady-predictive", "heady-recurrence"),
            ("recurrence per user", "heady-predictive", "heady-recurrence-user"),
        ):
            saved = rows[base]["sla_violation_seconds"] - rows[name]["sla_violation_seconds"]
            spent = rows[name]["cpu_core_seconds"] - rows[base]["cpu_core_seconds"]
            per = f"{spent / saved:.0f}" if saved > 0 else "n/a (nothing saved)"
            lines.append(f"| {profile} | {added} | {saved:.0f} | {spent / 3600:.2f} | {per} |")
    lines.append("")
    for profile, entry in data["profiles"].items():
        t = entry["trace"]
        lines.append(
            f"- {profile}: {t['name']}, {t['hours']:.3g} h, {t['services']} services, {t['events']} events, "
            f"{t['users']} users"
        )
    lines.append("")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="short traces into a temp dir: seconds")
    parser.add_argument("--profile", choices=PROFILES, action="append", help="only these (repeatable)")
    parser.add_argument("--baseline-ratio", type=float, default=0.9)
    parser.add_argument(
        "--resize-delay",
        type=float,
        help="seconds from a planned resize to its effect (default: the simulator's)",
    )
    parser.add_argument("--out", type=Path, help="where results go (default benchmarks/results)")
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="FIELD=VALUE",
        help="an operator setting for every heady run, e.g. recurrence_min_days=2",
    )
    args = parser.parse_args()
    if not 0 < args.baseline_ratio <= 1:
        parser.error("--baseline-ratio must be in (0, 1]")
    overrides: dict[str, Any] = {}
    for item in args.set:
        field, _, value = item.partition("=")
        overrides[field] = value
    try:
        cfg = Settings(**overrides)
    except ValueError as exc:
        parser.error(str(exc))
    settings = {k: getattr(cfg, k) for k in overrides}
    out = args.out or (Path(tempfile.mkdtemp(prefix="heady-recurrence-")) if args.quick else RESULTS)
    out.mkdir(parents=True, exist_ok=True)
    available = traces(args.quick)
    chosen = [p for p in (args.profile or PROFILES) if p in available]
    data: dict[str, Any] = {
        "benchmark": "recurrence",
        "quick": args.quick,
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "ratio": args.baseline_ratio,
        "resize_delay_s": args.resize_delay,
        "settings": {
            k: getattr(cfg, k)
            for k in Settings.model_fields
            if k.startswith("recurrence_") or k.startswith("prediction_")
        },
        "profiles": {},
    }
    for profile in chosen:
        trace = with_baseline_ratio(available[profile](), args.baseline_ratio)
        say(f"{profile}: {len(trace.events)} events, {trace.duration / 3600:.3g} h")
        results = measure(trace, settings, args.resize_delay)
        data["profiles"][profile] = {
            "trace": {
                "name": trace.name,
                "hours": trace.duration / 3600,
                "services": len(trace.services),
                "events": len(trace.events),
                "users": len({e.user for e in trace.events if e.user}),
            },
            "policies": results,
        }
    stem = "recurrence" if not args.profile else "recurrence-" + "-".join(chosen)
    if args.resize_delay is not None:
        stem += f"-delay{args.resize_delay:g}"
    (out / f"{stem}.json").write_text(json.dumps(data, indent=2, default=str) + "\n")
    text = markdown(data)
    (out / f"{stem}.md").write_text(text)
    print(text)
    say(f"results in {out}")


if __name__ == "__main__":
    main()
