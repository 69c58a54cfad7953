"""heady-sim: replay an attention trace under seven allocation policies and compare them.

    .venv/bin/python benchmarks/simulate.py                       # the full run (--suite, below)
    .venv/bin/python benchmarks/simulate.py --profile workday     # generated 8 h working day, one report
    .venv/bin/python benchmarks/simulate.py --profile browsing    # generated browsing day (sticky, many hosts)
    .venv/bin/python benchmarks/simulate.py --profile week        # five working days with users' daily habits
    .venv/bin/python benchmarks/simulate.py --profile invocations # seven days of anonymous invocations
    .venv/bin/python benchmarks/simulate.py --profile browsing --baseline-ratio 0.5
    .venv/bin/python benchmarks/simulate.py --profile workday --sweep   # saving vs SLA frontier, ratios 0.5..0.95
    .venv/bin/python benchmarks/simulate.py --suite               # both profiles: sweeps, reports at 0.9 and 0.5, summary
    .venv/bin/python benchmarks/simulate.py --trace my.csv        # a trace CSV (benchmarks/traces/README.md)
    .venv/bin/python benchmarks/simulate.py --quick               # 1 h, a few users, into a temp dir (seconds)

Policies, accounting and the modelling choices are described in benchmarks/simulation.py; the
trace format and converters from public logs in benchmarks/traces/README.md. Writes
benchmarks/results/simulate[-browsing or -<csv>][-r<ratio>].{json,md,png}, for a sweep
...-sweep.{json,md,png}, for the suite also simulate-summary.md; --quick writes to a fresh temp
dir (or --out).
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
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.append(str(Path(__file__).resolve().parents[1]))  # appended: stdlib `operator` must win

from benchmarks.simulation import (
    DEMAND_THRESHOLD,
    GIB,
    MEASURED_RESIZE_DELAY,
    POLICIES,
    SENSITIVITY_DELAYS_S,
    BrowsingShape,
    InvocationShape,
    Knobs,
    ResizeDelay,
    Run,
    SimService,
    Trace,
    TraceShape,
    WeekShape,
    attention_by_service,
    cause_label,
    generate_browsing_trace,
    generate_invocation_trace,
    generate_trace,
    generate_week_trace,
    length,
    load_trace_csv,
    merge,
    run_all,
    sweep_runs,
    total_cores,
    transitions,
    with_baseline_ratio,
    write_trace_csv,
)
from heady_operator.config import Settings
from heady_operator.planning.prediction import known_user

RESULTS = Path(__file__).resolve().parent / "results"
ORDER = list(POLICIES)
COLORS = {
    "always-peak": "#7f7f7f",
    "oracle": "#000000",
    "static-baseline": "#bcbd22",
    "heady-reactive": "#1f77b4",
    "heady-predictive": "#2ca02c",
    "heady-auto": "#17becf",
    "vpa-like": "#d62728",
    "keda-like": "#9467bd",
}
SWEEP_RATIOS = (0.5, 0.55, 0.6, 0.65, 0.7, 0.75, 0.8, 0.85, 0.9, 0.95)
HEADY = ("heady-reactive", "heady-predictive", "heady-auto")
# The targets (issue 16, "Measured"), checked in every report.
TARGET_SHARE_OF_ORACLE = 95.0
TARGET_SLA_PCT = 1.0
TARGET_PREDICTIVE_SLACK = 0.05


def say(msg: str) -> None:
    print(f"[sim {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def describe(trace: Trace) -> dict[str, Any]:
    attention = attention_by_service(trace)
    attended = sum(length(v) for v in attention.values())
    weak = [e for e in trace.events if e.intensity < DEMAND_THRESHOLD]
    weak_by_service: dict[str, list[tuple[float, float]]] = {}
    for e in weak:
        weak_by_service.setdefault(e.service, []).append((e.start, min(trace.duration, e.end)))
    ratios = sorted({s.baseline_ratio for s in trace.services})
    users = {e.user for e in trace.events if known_user(e.user)}
    spike = {u for u in users if u.startswith("spike")}
    longest = max(((e - s, name) for name, ivs in attention.items() for s, e in ivs), default=(0.0, ""))
    busiest = max(attention, key=lambda k: length(attention[k]), default="")
    info = {
        "name": trace.name,
        "duration_s": trace.duration,
        "services": len(trace.services),
        "pods": sum(s.replicas for s in trace.services),
        "users": len(users - spike),
        # Spike users appear once, in one burst on one service (generated working day only).
        "spike_users": len(spike),
        "events": len(trace.events),
        "events_without_user": sum(1 for e in trace.events if not known_user(e.user)),
        "user_transitions": transitions(trace),
        "peak_cores": sum(s.peak_cpu_m * s.replicas for s in trace.services) / 1000,
        "peak_memory_gib": round(sum(s.peak_memory * s.replicas for s in trace.services) / GIB, 1),
        "baseline_ratios": ratios,
        "attention_threshold": DEMAND_THRESHOLD,
        "attended_service_seconds": round(attended, 1),
        # Share of service-time with someone's attention: what bounds the savings of any reactive policy.
        "attention_duty_pct": round(100 * attended / (trace.duration * len(trace.services)), 1)
        if trace.services and trace.duration
        else 0.0,
        "busiest_service": busiest,
        "busiest_service_duty_pct": round(100 * length(attention.get(busiest, [])) / trace.duration, 1)
        if busiest and trace.duration
        else 0.0,
        "longest_attention_s": round(longest[0], 1),
        "longest_attention_service": longest[1],
        # Rows under the operator's attention threshold: the operator escalates nothing for them.
        "not_demand_rows": len(weak),
        "not_demand_service_seconds": round(sum(length(merge(v)) for v in weak_by_service.values()), 1),
    }
    if trace.load is not None:
        info["input"] = trace.load.as_dict()
    return info


def _r(value: Any, nd: int = 3) -> Any:
    if isinstance(value, float):
        return round(value, nd)
    if isinstance(value, dict):
        return {k: _r(v, nd) for k, v in value.items()}
    return value


def _pct(value: float | None, nd: int = 1) -> str:
    return "n/a" if value is None else f"{value:.{nd}f}%"


def _ratio_text(ratios: Sequence[float]) -> str:
    if len(ratios) == 1:
        return f"baseline = {100 * ratios[0]:g}% of peak"
    return f"baseline per service, {100 * min(ratios):g}-{100 * max(ratios):g}% of peak"


def targets(rows: dict[str, dict[str, Any]], trace: str = "") -> list[tuple[str, str, bool | None]]:
    """The issue's targets with the measured value and whether it is met (None: not measured)."""
    out: list[tuple[str, str, bool | None]] = []
    react = rows.get("heady-reactive")
    pred = rows.get("heady-predictive")
    if react:
        share = react.get("share_of_oracle_saving_pct")
        out.append(
            (
                f"heady-reactive saves >= {TARGET_SHARE_OF_ORACLE:g}% of the oracle's saving",
                _pct(share),
                None if share is None else share >= TARGET_SHARE_OF_ORACLE,
            )
        )
        out.append(
            (
                f"heady-reactive SLA violations <= {TARGET_SLA_PCT:g}%",
                f"{react['sla_violation_pct']:.2f}%",
                react["sla_violation_pct"] <= TARGET_SLA_PCT,
            )
        )
    for name in HEADY:
        r = rows.get(name)
        if r:
            idle_rest = r.get("violation_seconds_by_cause", {}).get("RestNothingWaiting", 0.0)
            out.append(
                (
                    f"{name}: no violation-seconds from rests while nothing waits",
                    f"{idle_rest:.0f} s",
                    idle_rest == 0,
                )
            )
    if react and pred:
        gap = pred["sla_violation_pct"] - react["sla_violation_pct"]
        out.append(
            (
                f"heady-predictive SLA % <= heady-reactive's + {TARGET_PREDICTIVE_SLACK:g} points",
                f"{pred['sla_violation_pct']:.2f}% vs {react['sla_violation_pct']:.2f}% ({gap:+.2f})",
                gap <= TARGET_PREDICTIVE_SLACK,
            )
        )
        if trace.startswith("generated("):
            # Its workflow chains are what a transition model can learn: there it has to pay.
            out.append(
                (
                    "heady-predictive SLA % < heady-reactive's (generated workday)",
                    f"{gap:+.2f} points",
                    gap < 0,
                )
            )
    return out


def _met(ok: bool | None) -> str:
    return "n/a" if ok is None else ("met" if ok else "**not met**")


def markdown(result: dict[str, Any]) -> str:
    tr, k, hs = result["trace"], result["knobs"], result["heady_settings"]
    rows = {r["policy"]: r for r in result["policies"]}
    ratios = tr["baseline_ratios"]
    cost = k["resize_cost_core_seconds"]
    floor = rows.get("static-baseline")
    best = rows.get("oracle")
    lines = [
        f"# heady-sim: allocation quality ({tr['name']}, {_ratio_text(ratios)}, {result['date']})",
        "",
        f"Trace: {tr['duration_s'] / 3600:.3g} h, {tr['services']} services / {tr['pods']} pods "
        f"(peak {tr['peak_cores']:g} cores, {tr['peak_memory_gib']:g} GiB), {tr['users']} users"
        + (f" (+{tr['spike_users']} in bursts)" if tr["spike_users"] else "")
        + f", {tr['events']} attention events; services had attention {tr['attention_duty_pct']}% of the time "
        f"({tr['attended_service_seconds']:.0f} service-seconds; the busiest, {tr['busiest_service']}, "
        f"{tr['busiest_service_duty_pct']}% of the trace; the longest stretch {tr['longest_attention_s'] / 3600:.1f} h "
        f"on {tr['longest_attention_service']}). {_ratio_text(ratios).capitalize()}.",
        "",
    ]
    lines += _input_section(tr)
    header = (
        "| policy | CPU core-h | CPU vs always-peak | CPU saving | share of oracle's saving | memory vs always-peak "
        "| SLA-violation s | SLA-violation % | resizes | resizes / pod-h |"
    )
    sep = "|---|---|---|---|---|---|---|---|---|---|"
    if cost:
        header += " CPU incl. resize cost |"
        sep += "---|"
    lines += [header, sep]
    for name in ORDER:
        r = rows.get(name)
        if r is None:
            continue
        line = (
            f"| {name} | {r['cpu_core_hours']:.1f} | {r['cpu_vs_always_peak_pct']:.2f}% | {r['cpu_saving_pct']:.2f}% "
            f"| {_pct(r.get('share_of_oracle_saving_pct'))} | {r['memory_vs_always_peak_pct']:.2f}% "
            f"| {r['sla_violation_seconds']:.0f} | {r['sla_violation_pct']:.2f}% | {r['resizes']} "
            f"| {r['resizes_per_pod_hour']:.2f} |"
        )
        if cost:
            line += f" {r['cpu_with_resize_cost_vs_always_peak_pct']:.2f}% |"
        lines.append(line)
    lines += [
        "",
        "SLA-violation seconds: service-seconds with attention (at or above the operator's attention threshold "
        f"{tr['attention_threshold']:g}) while at least one of the service's pods was below peak. oracle: peak "
        "exactly while attended, without delay: the most any policy can save without a violation. Resizes: pod "
        "resize requests (keda-like: pods started or stopped)"
        + (f"; each costs {cost:g} core-seconds in the last column." if cost else "."),
        "",
    ]
    lines += _prediction_section(rows, hs)
    lines += _cause_section(rows)
    lines += ["## Targets (issue 16)", "", "| target | measured | |", "|---|---|---|"]
    lines += [f"| {t} | {v} | {_met(ok)} |" for t, v, ok in targets(rows, str(tr.get("name", "")))]
    lines += [
        "",
        "## Model",
        "",
        f"- heady: the operator's ClusterState and IncrementalPlanner (no API) on a virtual clock, operator "
        f"defaults (attention threshold {hs['attention_threshold']}, max {hs['max_high_priority_escalations']} "
        "high-priority escalations, per-service cooldown and maxPeakSeconds from the trace's services); one node "
        f"with room for every pod at baseline plus {100 * k['node_room']:g}% of what all need at peak; a planned "
        f"resize takes effect after {_delay_text(k)}.",
        f"- vpa-like: every {k['vpa_period']:g} s, peak if any demand in the last {k['vpa_window']:g} s, "
        f"applied in place after {_delay_mean(k):.2g} s (the resize delay's mean).",
        f"- keda-like: poll every {k['keda_poll']:g} s, up on demand seen since the last poll (new capacity "
        f"after {k['scale_out_delay']:g} s), down after {k['keda_cooldown']:g} s without demand.",
        "- Demand = attention: a service needs peak exactly while someone attends to it.",
        "",
        "## The seeds' claims, measured",
        "",
    ]
    react = rows.get("heady-reactive")
    if react and floor and best:
        lines.append(
            f'- "40% cost reduction": heady-reactive reserves {react["cpu_vs_always_peak_pct"]:.1f}% of always-peak\'s '
            f"CPU, a {react['cpu_saving_pct']:.1f}% reduction. With {_ratio_text(ratios)} no policy can save more "
            f"than {floor['cpu_saving_pct']:.1f}% (static-baseline, which serves no attention at peak), and none "
            f"without violations more than {best['cpu_saving_pct']:.1f}% (the oracle); heady-reactive reaches "
            f"{_pct(react.get('share_of_oracle_saving_pct'))} of that."
        )
    if react and "heady-predictive" in rows:
        lines.append(
            f'- "2.3% SLA violations": heady-reactive {react["sla_violation_pct"]:.2f}%, '
            f"heady-predictive {rows['heady-predictive']['sla_violation_pct']:.2f}% of attention-seconds "
            f"(actuation delay {_delay_text(k)})."
        )
    lines += ['- "78.4% utilization": not measured; the simulator models reservations, not usage.', ""]
    if result.get("plot"):
        lines += [f"![policies]({result['plot']})", ""]
    return "\n".join(lines)


def _input_section(tr: dict[str, Any]) -> list[str]:
    lines = []
    inp = tr.get("input")
    if inp is not None:
        lines += ["## Input", ""]
        lines.append(
            f"- {inp['rows']} rows: {inp['accepted']} accepted, {inp['refused']} refused by the operator's own rules "
            "(AttentionEvent, a DNS-label service name, HeadyServiceSpec for per-service columns, time >= 0)"
        )
        for why, n in inp["refused_by_reason"].items():
            lines.append(f"  - {n} x {why}")
        for ex in inp["refused_examples"]:
            lines.append(f"  - e.g. {ex}")
        if inp["clipped_to_max_signal_seconds"]:
            lines.append(
                f"- {inp['clipped_to_max_signal_seconds']} rows longer than an AttentionSignal lasts were cut there, "
                "as the operator cuts them"
            )
        if inp["ignored_columns"]:
            lines.append(f"- ignored columns: {', '.join(inp['ignored_columns'])}")
        if not inp["user_column"]:
            lines.append(
                "- no user column: the rows carry no user, so the operator learns no transitions from them and "
                "prediction has no input (an invented single user would join unrelated rows into one path)"
            )
        elif inp["rows_without_user"]:
            lines.append(
                f"- {inp['rows_without_user']} rows without a user: no prediction input (the operator learns "
                "transitions only from attention with a user id)"
            )
    if tr["not_demand_rows"]:
        if not lines:
            lines += ["## Input", ""]
        lines.append(
            f"- not demand: {tr['not_demand_rows']} rows ({tr['not_demand_service_seconds']:.0f} service-seconds) "
            f"below the operator's attention threshold {tr['attention_threshold']:g}: heady escalates nothing for "
            "them, so no policy is scored on them"
        )
    return [*lines, ""] if lines else []


def _prediction_section(rows: dict[str, dict[str, Any]], hs: dict[str, Any]) -> list[str]:
    pred, react = rows.get("heady-predictive"), rows.get("heady-reactive")
    if not pred:
        return []
    p = pred.get("predictions") or {}
    prec, rec = pred.get("prediction_precision"), pred.get("prediction_recall")
    lines = [
        "## Prediction (heady-predictive)",
        "",
        f"- predictor signals issued: {p.get('issued', 0)} (re-issued on every new signal while the user stays)",
        f"- precision of the issued predictions: {p.get('hits', 0)} hits, {p.get('misses', 0)} misses -> "
        + (f"{prec:.2f}" if prec is not None else "n/a (no prediction decided)"),
        f"- shadow predictions (made while throttled, escalating nothing; scored so throttling can lift): "
        f"{p.get('shadow_hits', 0)} would-be hits, {p.get('shadow_misses', 0)} would-be misses",
        f"- recall: {p.get('hits', 0)} hits / {p.get('transitions', 0)} moves of a user to another service -> "
        + (f"{rec:.2f}" if rec is not None else "n/a (no user moved)"),
    ]
    if react:
        slot = ("HighPriorityLimit", "PredictionHeldSlot")
        by_p = pred.get("violation_seconds_by_cause", {})
        by_r = react.get("violation_seconds_by_cause", {})
        held = by_p.get("PredictionHeldSlot", 0.0)
        lines.append(
            f"- slot cost: real attention waited {sum(by_p.get(c, 0.0) for c in slot):.0f} s for a high-priority "
            f"slot or node room ({held:.0f} s of it while a prediction held one) vs {sum(by_r.get(c, 0.0) for c in slot):.0f} s "
            f"without prediction; CPU {pred['cpu_vs_always_peak_pct'] - react['cpu_vs_always_peak_pct']:+.2f} points "
            "of always-peak for pre-escalations; SLA violations "
            f"{pred['sla_violation_pct'] - react['sla_violation_pct']:+.2f} points"
        )
    if "predicted_peak_service_seconds" in p:
        lines.append(
            f"- held at peak on a prediction alone: {p['predicted_peak_service_seconds']:.0f} service-seconds "
            f"({p.get('hits', 0)} of the predicted moves came)"
        )
    lines += [
        f"- model settings (operator defaults): threshold {hs['prediction_threshold']}, "
        f"min observations {hs['prediction_min_observations']}, TTL {hs['prediction_ttl_seconds']} s; "
        "the model starts empty and learns during the trace.",
        "",
    ]
    return lines


def _cause_section(rows: dict[str, dict[str, Any]]) -> list[str]:
    present = [n for n in HEADY if n in rows]
    if not present:
        return []
    causes = sorted(
        {c for n in present for c in rows[n].get("violation_seconds_by_cause", {})}, key=cause_label
    )
    lines = ["## Where heady's SLA-violation seconds come from", ""]
    if not causes:
        return [*lines, "No violation-seconds.", ""]
    lines.append("| policy | " + " | ".join(cause_label(c) for c in causes) + " |")
    lines.append("|---|" + "---|" * len(causes))
    for n in present:
        by = rows[n].get("violation_seconds_by_cause", {})
        total = rows[n]["sla_violation_seconds"] or 1.0
        lines.append(
            f"| {n} | "
            + " | ".join(f"{by.get(c, 0):.0f} s ({100 * by.get(c, 0) / total:.0f}%)" for c in causes)
            + " |"
        )
    lines += [
        "",
        "actuation delay: peak granted, resize not yet in effect. high-priority limit: a third high/very_high "
        "service waited for one of the two slots. prediction held a slot: it waited while a predicted escalation "
        "held a slot (or node room). rest: the service rested after maxPeakSeconds at peak, split by whether any "
        "other service waited for a slot or node room then. node room: the node had no room for its peak. "
        "other: a planner reason as the planner names it.",
        "",
    ]
    return lines


def plot(trace: Trace, runs: list[Run], result: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = {r["policy"]: r for r in result["policies"]}
    order = [n for n in ORDER if n in rows]
    fig = plt.figure(figsize=(11, 12))
    grid = fig.add_gridspec(3, 2)
    # 1: reservation and violations side by side, axes from the data.
    xs = list(range(len(order)))
    ax = fig.add_subplot(grid[0, 0])
    cpu = [rows[n]["cpu_vs_always_peak_pct"] for n in order]
    low = min(cpu)
    bottom = max(0.0, low - 0.15 * (100 - low) - 1)
    ax.bar(xs, cpu, color=[COLORS[n] for n in order])
    span = 100 - bottom
    for x, v in zip(xs, cpu, strict=True):
        ax.text(x, v + 0.01 * span, f"{v:.1f}", ha="center", fontsize=8)
    ax.set_ylim(bottom, 100 + 0.08 * span)
    ax.set_xticks(xs, order, rotation=30, ha="right", fontsize=8)
    ax.set_ylabel("reserved CPU, % of always-peak")
    ax.set_title(f"Reservation ({_ratio_text(result['trace']['baseline_ratios'])})")
    ax = fig.add_subplot(grid[0, 1])
    viol = [rows[n]["sla_violation_pct"] for n in order]
    rest = [v for n, v in zip(order, viol, strict=True) if n != "static-baseline"]
    top = max(1.0, 1.25 * max(rest, default=1.0))
    ax.bar(xs, [min(v, top) for v in viol], color=[COLORS[n] for n in order])
    for x, v in zip(xs, viol, strict=True):
        ax.text(x, min(v, top) * 0.98 if v > top else v + top * 0.01, f"{v:.2f}", ha="center", fontsize=8)
    ax.set_ylim(0, top)
    ax.set_xticks(xs, order, rotation=30, ha="right", fontsize=8)
    ax.set_ylabel("% of attention-seconds below peak")
    clipped = [n for n, v in zip(order, viol, strict=True) if v > top]
    ax.set_title("SLA violations" + (f" ({', '.join(clipped)} clipped)" if clipped else ""))
    # 2: reserved cores over the trace.
    ax = fig.add_subplot(grid[1, :])
    res = 300.0 if trace.duration > 7200 else 60.0
    for run in runs:
        t, cores = total_cores(run, trace.duration, res)
        ax.step([x / 3600 for x in t], cores, where="post", label=run.policy, color=COLORS[run.policy])
    ax.set_xlabel("hours into the trace")
    ax.set_ylabel(f"reserved cores ({res:.0f} s average)")
    ax.legend(ncol=4, fontsize=8)
    ax.set_title("Reserved CPU over the trace")
    # 3: one service up close.
    ax = fig.add_subplot(grid[2, :])
    attention = attention_by_service(trace)
    svc = max(attention, key=lambda s: length(attention[s]))
    first = attention[svc][0][0] if attention[svc] else 0.0
    lo = max(0.0, first - 60)
    hi = min(trace.duration, lo + 1200)
    for s, e in attention[svc]:
        if e > lo and s < hi:
            ax.axvspan(max(s, lo) - lo, min(e, hi) - lo, color="orange", alpha=0.3, lw=0)
    pod = f"{svc}-0"
    for k, run in enumerate(runs):
        offset = k * 1.5
        xs2, ys = [], []
        for step in run.steps[pod]:
            if step.t > hi:
                break
            xs2.append(max(step.t, lo) - lo)
            ys.append(offset + (1 if step.peak else 0))
        xs2.append(hi - lo)
        ys.append(ys[-1])
        ax.step(xs2, ys, where="post", color=COLORS[run.policy])
        ax.text(hi - lo + 5, offset + 0.3, run.policy, fontsize=8, color=COLORS[run.policy])
    ax.set_yticks([])
    ax.set_xlim(0, (hi - lo) * 1.18)
    ax.set_xlabel(f"seconds from {lo:.0f} s; shaded: attention on {svc}; high = pod {pod} at peak")
    ax.set_title(f"One service up close: {svc}")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


# ---------------------------------------------------------------- sweep


def sweep_markdown(sweep: dict[str, Any]) -> str:
    tr = sweep["trace"]
    points = sweep["points"]
    policies = [n for n in ORDER if any(n in p["policies"] for p in points)]
    lines = [
        f"# heady-sim: saving vs SLA-violation frontier ({tr['name']}, {sweep['date']})",
        "",
        f"Every policy on the same trace with every service's baseline at each ratio of peak "
        f"({', '.join(format(p['ratio'], 'g') for p in points)}). Cells: CPU saving vs always-peak / SLA-violation % "
        "of attention-seconds. The oracle (peak exactly while attended) is the most that can be saved without a "
        "violation; the second-to-last column is heady-reactive's saving as a share of it. heady: the operator's "
        "planner was run at that ratio (simulated), or its level timeline from a simulated ratio was priced with "
        "this ratio's baselines (re-priced: done only when the node has room for every pod at peak, so the ratio "
        "cannot change a decision, and the simulated ratios' timelines agree step for step).",
        "",
        "| ratio | " + " | ".join(policies) + " | heady-reactive / oracle | heady |",
        "|---|" + "---|" * (len(policies) + 2),
    ]
    for p in points:
        cells = []
        for n in policies:
            r = p["policies"].get(n)
            cells.append("" if r is None else f"{r['cpu_saving_pct']:.1f}% / {r['sla_violation_pct']:.2f}%")
        share = p["policies"].get("heady-reactive", {}).get("share_of_oracle_saving_pct")
        lines.append(
            f"| {p['ratio']:g} | " + " | ".join(cells) + f" | {_pct(share)} | {p.get('heady', '')} |"
        )
    flat = [
        n
        for n in policies
        if n in points[0]["policies"]
        and max(p["policies"][n]["sla_violation_pct"] for p in points if n in p["policies"])
        - min(p["policies"][n]["sla_violation_pct"] for p in points if n in p["policies"])
        < 0.005
    ]
    if flat:
        lines += [
            "",
            f"SLA violations of {', '.join(flat)} do not change with the ratio (none of their decisions depends on "
            "it here), so their frontier lines are vertical: a lower ratio buys saving with deeper violations "
            "(a pod short of peak has ratio x peak), not with more of them.",
        ]
    lines += ["", f"![frontier]({sweep['plot']})", ""]
    return "\n".join(lines)


def sweep_plot(sweep: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    points = sweep["points"]
    policies = [n for n in ORDER if any(n in p["policies"] for p in points)]
    fig, axes = plt.subplots(1, 2, figsize=(13, 5.5))
    ax = axes[0]
    for n in policies:
        pts = [
            (p["policies"][n]["sla_violation_pct"], p["policies"][n]["cpu_saving_pct"], p["ratio"])
            for p in points
            if n in p["policies"]
        ]
        ax.plot([x for x, _, _ in pts], [y for _, y, _ in pts], "o-", color=COLORS[n], label=n, ms=4)
        for x, y, ratio in (pts[0], pts[-1]):
            ax.annotate(
                f"{ratio:g}", (x, y), textcoords="offset points", xytext=(4, 2), fontsize=7, color=COLORS[n]
            )
    # Violations span 0 (oracle, always-peak) to 100 (static-baseline): linear near 0, log beyond 1%.
    ax.set_xscale("symlog", linthresh=1.0)
    ax.set_xlim(-0.05, 150)
    ax.set_xlabel("SLA violations, % of attention-seconds (symlog)")
    ax.set_ylabel("CPU saving, % of always-peak")
    ax.set_title("Frontier: each line runs over baseline ratios (labels: first and last)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="upper center")
    ax = axes[1]
    ratios = [p["ratio"] for p in points]
    for n in policies:
        if n == "always-peak":
            continue
        ys = [p["policies"][n]["cpu_saving_pct"] if n in p["policies"] else None for p in points]
        ax.plot(ratios, ys, "o-", color=COLORS[n], label=n, ms=4)
    ax.set_xlabel("baseline ratio (baseline / peak)")
    ax.set_ylabel("CPU saving, % of always-peak")
    ax.set_title("Saving by baseline ratio")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


# ---------------------------------------------------------------- running


def settings_of_interest() -> dict[str, Any]:
    settings = Settings()
    return {
        k: getattr(settings, k)
        for k in (
            "attention_threshold",
            "max_high_priority_escalations",
            "prediction_threshold",
            "prediction_min_observations",
            "prediction_ttl_seconds",
        )
    }


def envelope(
    info: dict[str, Any], knobs: Knobs, quick: bool, results: list[dict[str, Any]]
) -> dict[str, Any]:
    return {
        "benchmark": "simulate",
        "quick": quick,
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "trace": info,
        "knobs": knobs_json(knobs),
        "heady_settings": settings_of_interest(),
        "policies": [_r(r) for r in results],
    }


def knobs_json(knobs: Knobs) -> dict[str, Any]:
    out = dict(knobs.__dict__)
    d = knobs.resize_delay
    out["resize_delay"] = {
        "p50_s": d.p50,
        "p99_s": d.p99,
        "mean_s": round(d.mean, 4),
        "source": d.source,
        "text": d.text(),
    }
    return out


def _delay_text(k: Mapping[str, Any]) -> str:
    d = k["resize_delay"]
    return str(d["text"]) if isinstance(d, Mapping) else f"{d:g} s"  # results written before the model


def _delay_mean(k: Mapping[str, Any]) -> float:
    d = k["resize_delay"]
    return float(d["mean_s"]) if isinstance(d, Mapping) else float(d)


def measure(trace: Trace, knobs: Knobs, quick: bool) -> tuple[list[Run], dict[str, Any]]:
    info = describe(trace)
    started = time.perf_counter()
    runs, results = run_all(trace, knobs)
    say(
        f"{trace.name} at {_ratio_text(info['baseline_ratios'])}: simulated in {time.perf_counter() - started:.1f} s"
    )
    return runs, envelope(info, knobs, quick, results)


def report(trace: Trace, knobs: Knobs, out: Path, stem: str, quick: bool) -> dict[str, Any]:
    runs, result = measure(trace, knobs, quick)
    result["plot"] = f"{stem}.png"
    (out / f"{stem}.json").write_text(json.dumps(result, indent=2) + "\n")
    plot(trace, runs, result, out / f"{stem}.png")
    (out / f"{stem}.md").write_text(markdown(result))
    return result


def sweep(
    trace: Trace,
    knobs: Knobs,
    ratios: Sequence[float],
    out: Path,
    stem: str,
    quick: bool,
    keep: Sequence[float] = (),
) -> dict[str, Any]:
    """Every policy at every ratio (simulation.sweep_runs: heady is simulated at the ratios in
    `keep`, or the first and last); a full report for each ratio in `keep` from the same runs."""
    started = time.perf_counter()
    swept = sweep_runs(trace, knobs, ratios, keep)
    say(f"{trace.name}: swept {len(ratios)} ratios in {time.perf_counter() - started:.1f} s")
    info = describe(trace)
    points = []
    for pt in swept:
        points.append(
            {"ratio": pt.ratio, "heady": pt.heady, "policies": {r["policy"]: _r(r) for r in pt.results}}
        )
        if any(abs(pt.ratio - k) < 1e-9 for k in keep):
            one = f"{stem}-r{round(100 * pt.ratio)}"
            result = envelope(describe(pt.trace), knobs, quick, pt.results)
            result["heady_runs"] = pt.heady
            result["plot"] = f"{one}.png"
            (out / f"{one}.json").write_text(json.dumps(result, indent=2) + "\n")
            plot(pt.trace, pt.runs, result, out / f"{one}.png")
            (out / f"{one}.md").write_text(markdown(result))
    data = {
        "benchmark": "simulate-sweep",
        "quick": quick,
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "trace": info,
        "knobs": knobs_json(knobs),
        "heady_settings": settings_of_interest(),
        "points": points,
        "plot": f"{stem}-sweep.png",
    }
    (out / f"{stem}-sweep.json").write_text(json.dumps(data, indent=2) + "\n")
    sweep_plot(data, out / f"{stem}-sweep.png")
    (out / f"{stem}-sweep.md").write_text(sweep_markdown(data))
    return data


def sensitivity(trace: Trace, knobs: Knobs, delays: Sequence[float]) -> list[dict[str, Any]]:
    """heady at constant actuation delays instead of the measured distribution: how much of its
    SLA rests on the delay model."""
    out = []
    for d in delays:
        k = dataclasses.replace(knobs, resize_delay=ResizeDelay.constant(d))
        _, results = run_all(trace, k, ("oracle", *HEADY[:2]))
        out.append({"delay_s": d, "policies": {r["policy"]: _r(r) for r in results}})
    return out


ROBUSTNESS_SEEDS = (1, 2, 3, 4, 5, 6, 7, 8)
ROBUSTNESS_NODE_ROOMS = (1.0, 0.6)


def robustness(trace: Trace, knobs: Knobs, rooms: Sequence[float]) -> list[dict[str, Any]]:
    """heady-predictive against heady-reactive on one trace at several node rooms (issue 16: never
    worse by more than TARGET_PREDICTIVE_SLACK points on any trace)."""
    out = []
    for room in rooms:
        _, results = run_all(trace, dataclasses.replace(knobs, node_room=room), HEADY[:2])
        p = {r["policy"]: r for r in results}
        react, pred = p["heady-reactive"], p["heady-predictive"]
        out.append(
            {
                "trace": trace.name,
                "node_room": room,
                "reactive_sla_pct": react["sla_violation_pct"],
                "predictive_sla_pct": pred["sla_violation_pct"],
                "gap_points": pred["sla_violation_pct"] - react["sla_violation_pct"],
                "precision": pred.get("prediction_precision"),
                "issued": (pred.get("predictions") or {}).get("issued", 0),
            }
        )
    return out


def _robustness_section(rows: Sequence[Mapping[str, Any]]) -> list[str]:
    worst = max(rows, key=lambda r: r["gap_points"])
    lines = [
        "## Prediction across seeds and node room",
        "",
        f"heady-predictive minus heady-reactive, SLA-violation points, on {len(rows)} runs (generated traces of "
        "several seeds, node room 1 = never short, 0.6 = room for 60% of the peak extra). Target: never above "
        f"+{TARGET_PREDICTIVE_SLACK:g}. Worst: {worst['gap_points']:+.3f} ({worst['trace']}, node room "
        f"{worst['node_room']:g}): {_met(worst['gap_points'] <= TARGET_PREDICTIVE_SLACK)}.",
        "",
        "| trace | node room | reactive SLA % | predictive SLA % | predictive - reactive | issued | precision |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        prec = r["precision"]
        lines.append(
            f"| {r['trace']} | {r['node_room']:g} | {r['reactive_sla_pct']:.3f}% | {r['predictive_sla_pct']:.3f}% "
            f"| {r['gap_points']:+.3f} | {r['issued']} | {'n/a' if prec is None else f'{prec:.2f}'} |"
        )
    return [*lines, ""]


def _sensitivity_section(rows: Sequence[tuple[str, float, list[dict[str, Any]]]]) -> list[str]:
    lines = [
        "## Sensitivity to the actuation delay",
        "",
        f"The rows above draw each resize's delay from a measured distribution ({MEASURED_RESIZE_DELAY.text()}). "
        "The same traces with a constant delay instead:",
        "",
        "| trace | ratio | delay | heady-reactive SLA % | heady-predictive SLA % | predictive - reactive, points "
        "| heady-reactive share of oracle's saving |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, ratio, points in rows:
        for pt in points:
            p = pt["policies"]
            react, pred = p["heady-reactive"], p["heady-predictive"]
            lines.append(
                f"| {name} | {ratio:g} | {pt['delay_s']:g} s | {react['sla_violation_pct']:.2f}% "
                f"| {pred['sla_violation_pct']:.2f}% | {pred['sla_violation_pct'] - react['sla_violation_pct']:+.2f} "
                f"| {_pct(react.get('share_of_oracle_saving_pct'))} |"
            )
    return [*lines, ""]


def suite_markdown(
    entries: list[tuple[str, float, dict[str, Any]]],
    date: str,
    delays: Sequence[tuple[str, float, list[dict[str, Any]]]] = (),
    spread: Sequence[Mapping[str, Any]] = (),
) -> str:
    """One table of what issue 16 asks to measure, for both profiles at both ratios."""
    lines = [
        f"# heady-sim: summary ({date})",
        "",
        "Per trace and baseline ratio: reserved CPU vs always-peak, SLA violations with their causes, churn, "
        "prediction precision/recall and slot cost. Details: the per-run reports and sweeps beside this file.",
        "",
        "| trace | ratio | policy | CPU vs always-peak | share of oracle's saving | SLA-violation % | causes (s) | resizes / pod-h "
        "| precision / recall |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for name, ratio, result in entries:
        rows = {r["policy"]: r for r in result["policies"]}
        for n in ("oracle", "static-baseline", *HEADY, "vpa-like", "keda-like"):
            r = rows.get(n)
            if r is None:
                continue
            by = r.get("violation_seconds_by_cause", {})
            causes = (
                ", ".join(f"{cause_label(c)} {v:.0f}" for c, v in sorted(by.items(), key=lambda x: -x[1]))
                or ""
            )
            pr = ""
            if r.get("predictions") is not None:
                prec, rec = r.get("prediction_precision"), r.get("prediction_recall")
                pr = f"{'n/a' if prec is None else f'{prec:.2f}'} / {'n/a' if rec is None else f'{rec:.2f}'}"
            lines.append(
                f"| {name} | {ratio:g} | {n} | {r['cpu_vs_always_peak_pct']:.2f}% | {_pct(r.get('share_of_oracle_saving_pct'))} "
                f"| {r['sla_violation_pct']:.2f}% | {causes} | {r['resizes_per_pod_hour']:.2f} | {pr} |"
            )
    lines += [
        "",
        "## Prediction: what it costs and earns",
        "",
        "| trace | ratio | issued | precision | recall | waited for a slot / room, s (predictive vs reactive) "
        "| of it while a prediction held one, s | held at peak on a prediction alone, service-s "
        "| CPU cost, points of always-peak | SLA change, points |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, ratio, result in entries:
        rows = {r["policy"]: r for r in result["policies"]}
        pred, react = rows.get("heady-predictive"), rows.get("heady-reactive")
        if not pred or not react:
            continue
        p = pred.get("predictions") or {}
        slot = ("HighPriorityLimit", "PredictionHeldSlot")
        by_p, by_r = pred.get("violation_seconds_by_cause", {}), react.get("violation_seconds_by_cause", {})
        prec, rec = pred.get("prediction_precision"), pred.get("prediction_recall")
        lines.append(
            f"| {name} | {ratio:g} | {p.get('issued', 0)} | {'n/a' if prec is None else f'{prec:.2f}'} "
            f"| {'n/a' if rec is None else f'{rec:.2f}'} "
            f"| {sum(by_p.get(c, 0.0) for c in slot):.0f} vs {sum(by_r.get(c, 0.0) for c in slot):.0f} "
            f"| {by_p.get('PredictionHeldSlot', 0.0):.0f} | {p.get('predicted_peak_service_seconds', 0):.0f} "
            f"| {pred['cpu_vs_always_peak_pct'] - react['cpu_vs_always_peak_pct']:+.2f} "
            f"| {pred['sla_violation_pct'] - react['sla_violation_pct']:+.2f} |"
        )
    lines += [
        "",
        "## Targets (issue 16)",
        "",
        "| trace | ratio | target | measured | |",
        "|---|---|---|---|---|",
    ]
    for name, ratio, result in entries:
        rows = {r["policy"]: r for r in result["policies"]}
        lines += [f"| {name} | {ratio:g} | {t} | {v} | {_met(ok)} |" for t, v, ok in targets(rows, name)]
    lines.append("")
    if delays:
        lines += _sensitivity_section(delays)
    if spread:
        lines += _robustness_section(spread)
    return "\n".join(lines)


def _resize_delay(text: str) -> ResizeDelay:
    if text.strip() == "measured":
        return MEASURED_RESIZE_DELAY
    try:
        parts = [float(x) for x in text.split(",")]
        if len(parts) == 1:
            return ResizeDelay.constant(parts[0])
        if len(parts) == 2:
            return ResizeDelay(parts[0], parts[1], "given on the command line")
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    raise argparse.ArgumentTypeError("expected seconds, P50,P99 in seconds, or 'measured'")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--quick", action="store_true", help="1 h, a few users, into a temp dir: a few seconds"
    )
    parser.add_argument("--trace", type=Path, help="a trace CSV (benchmarks/traces/README.md)")
    parser.add_argument(
        "--profile",
        choices=("workday", "browsing", "week", "invocations"),
        help="generated trace shape (one report); week and invocations span several days",
    )
    parser.add_argument(
        "--baseline-ratio",
        type=float,
        help="baseline / peak of every service without its own (CSV column baseline_ratio); default 0.9",
    )
    parser.add_argument(
        "--sweep",
        nargs="*",
        type=float,
        metavar="RATIO",
        help=f"run every policy at each baseline ratio (default {', '.join(map(str, SWEEP_RATIOS))}) and plot the frontier",
    )
    parser.add_argument(
        "--suite", action="store_true", help="both profiles: sweeps, reports at 0.9 and 0.5, a summary"
    )
    parser.add_argument(
        "--out", type=Path, help="where results go (default benchmarks/results; --quick: a temp dir)"
    )
    parser.add_argument("--default-cpu", type=int, default=1000, help="peak millicores of CSV services")
    parser.add_argument("--default-memory-mib", type=int, default=1024, help="peak MiB of CSV services")
    parser.add_argument("--default-replicas", type=int, default=1)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--hours", type=float, default=8.0)
    parser.add_argument("--users", type=int, default=16, help="workday: users; browsing: hosts / 10")
    parser.add_argument(
        "--spikes", type=int, default=TraceShape.spikes, help="bursts of many users on one service"
    )
    parser.add_argument("--write-trace", type=Path, help="save the generated trace as CSV")
    parser.add_argument(
        "--resize-delay",
        type=_resize_delay,
        default=MEASURED_RESIZE_DELAY,
        metavar="S | P50,P99 | measured",
        help="seconds from a planned resize to its effect: a constant, a log-normal by its p50 and p99, or "
        "(default) the distribution measured on a real kubelet (benchmarks/realnode_resize.py)",
    )
    parser.add_argument("--scale-out-delay", type=float, default=Knobs.scale_out_delay)
    parser.add_argument("--vpa-period", type=float, default=Knobs.vpa_period)
    parser.add_argument("--vpa-window", type=float, default=Knobs.vpa_window)
    parser.add_argument("--keda-poll", type=float, default=Knobs.keda_poll)
    parser.add_argument("--keda-cooldown", type=float, default=Knobs.keda_cooldown)
    parser.add_argument(
        "--resize-cost",
        type=float,
        default=0.0,
        help="core-seconds one resize costs (added to the CPU column)",
    )
    parser.add_argument(
        "--node-room",
        type=float,
        default=Knobs.node_room,
        help="heady's node: room for all pods at baseline plus this share of their peak extra (1: never short)",
    )
    args = parser.parse_args()
    if args.baseline_ratio is not None and not 0 < args.baseline_ratio <= 1:
        parser.error("--baseline-ratio must be in (0, 1], like spec.baselineRatio")
    if args.resize_cost < 0 or args.node_room < 0:
        parser.error("--resize-cost and --node-room must not be negative")
    if args.quick:
        args.hours, args.users, args.spikes = 1.0, 6, 1
    knobs = Knobs(
        args.resize_delay,
        args.scale_out_delay,
        args.vpa_period,
        args.vpa_window,
        args.keda_poll,
        args.keda_cooldown,
        args.resize_cost,
        args.node_room,
    )
    out = args.out or (Path(tempfile.mkdtemp(prefix="heady-sim-")) if args.quick else RESULTS)
    out.mkdir(parents=True, exist_ok=True)
    ratio = 0.9 if args.baseline_ratio is None else args.baseline_ratio
    # Profiles over several days (time-of-day recurrence has earlier days to learn from).
    multi_day = {
        "week": lambda: generate_week_trace(
            WeekShape(seed=args.seed, hours=args.hours, users=args.users, spikes=args.spikes)
        ),
        "invocations": lambda: generate_invocation_trace(InvocationShape(seed=args.seed)),
    }

    def generated(profile: str, seed: int | None = None) -> Trace:
        seed = args.seed if seed is None else seed
        if profile == "browsing":
            # --users scales the host count: a browsing day has many more hosts than a team has users.
            shape = BrowsingShape(seed=seed, hours=args.hours, hosts=10 * args.users)
            return with_baseline_ratio(generate_browsing_trace(shape), ratio)
        shape = TraceShape(seed=seed, hours=args.hours, users=args.users, spikes=args.spikes)
        return with_baseline_ratio(generate_trace(shape), ratio)

    single = (
        args.trace or args.profile or args.baseline_ratio is not None or args.sweep is not None or args.quick
    )
    if args.suite or not single:
        entries: list[tuple[str, float, dict[str, Any]]] = []
        delays: list[tuple[str, float, list[dict[str, Any]]]] = []
        ratios = SWEEP_RATIOS if not args.quick else (0.5, 0.9)
        for profile, stem in (("workday", "simulate"), ("browsing", "simulate-browsing")):
            trace = generated(profile)
            say(f"{profile}: {len(trace.events)} events, {len(trace.services)} services")
            sweep(trace, knobs, ratios, out, stem, args.quick, keep=(0.9, 0.5))
            at = with_baseline_ratio(trace, 0.9)
            delays.append(
                (
                    trace.name,
                    0.9,
                    sensitivity(at, knobs, SENSITIVITY_DELAYS_S[:1] if args.quick else SENSITIVITY_DELAYS_S),
                )
            )
            for r in (0.9, 0.5):
                entries.append(
                    (trace.name, r, json.loads((out / f"{stem}-r{round(100 * r)}.json").read_text()))
                )
        (out / "simulate-sensitivity.json").write_text(
            json.dumps([{"trace": n, "ratio": r, "points": p} for n, r, p in delays], indent=2) + "\n"
        )
        seeds = (args.seed,) if args.quick else ROBUSTNESS_SEEDS
        rooms = (1.0,) if args.quick else ROBUSTNESS_NODE_ROOMS
        spread = [
            row
            for profile in ("workday", "browsing")
            for seed in seeds
            for row in robustness(generated(profile, seed), knobs, rooms)
        ]
        (out / "simulate-robustness.json").write_text(json.dumps(spread, indent=2) + "\n")
        text = suite_markdown(entries, datetime.now(UTC).isoformat(timespec="seconds"), delays, spread)
        (out / "simulate-summary.md").write_text(text)
        print(text)
        say(f"results in {out}")
        return

    if args.trace:
        default = SimService(
            "default",
            args.default_cpu,
            args.default_memory_mib * 2**20,
            args.default_replicas,
            baseline_ratio=ratio,
        )
        try:
            trace = load_trace_csv(args.trace, default)
        except (OSError, ValueError) as exc:
            parser.exit(2, f"{exc}\n")
        stem = f"simulate-{args.trace.stem}"
    else:
        args.profile = args.profile or "workday"
        if args.profile in multi_day:
            trace = with_baseline_ratio(multi_day[args.profile](), ratio)
        else:
            trace = generated(args.profile)
        if args.write_trace:
            write_trace_csv(trace, args.write_trace)
        stem = "simulate" if args.profile == "workday" else f"simulate-{args.profile}"
    say(f"{len(trace.events)} events, {len(trace.services)} services, {trace.duration / 3600:.3g} h")
    if args.sweep is not None:
        data = sweep(trace, knobs, args.sweep or SWEEP_RATIOS, out, stem, args.quick)
        print(sweep_markdown(data))
    else:
        if args.baseline_ratio is not None and not args.trace:
            stem += f"-r{round(100 * ratio)}"
        print(markdown(report(trace, knobs, out, stem, args.quick)))
    say(f"results in {out}")


if __name__ == "__main__":
    main()
