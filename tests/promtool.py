"""promtool (Debian's `prometheus` package) as a test tool: series from the operator's real
registry in, PromQL evaluated by Prometheus's own engine out.

The operator's registry is rendered with generate_latest() and turned into promtool
`input_series` the way a Prometheus scrape would see it: the target labels `job`,
`namespace` and `instance` are attached, and a series' own clashing label (the namespace of
the object it is about) becomes `exported_namespace` (honor_labels: false, the default).
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from heady_operator.metrics import REGISTRY

SCRAPE_INTERVAL_SECONDS = 15
TARGET_LABELS = ("job", "namespace", "instance")


def promtool() -> str:
    found = shutil.which("promtool")
    if found is None:
        pytest.fail("promtool is missing: run hack/setup.sh (it installs Debian's prometheus package)")
    return found


@dataclass(frozen=True)
class Sample:
    name: str
    labels: tuple[tuple[str, str], ...]
    value: float


def registry_samples() -> list[Sample]:
    """Every sample /metrics serves right now (the `_created` timestamps left out)."""
    text = generate_latest(REGISTRY).decode()
    out = []
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.name.endswith("_created"):
                continue
            out.append(Sample(s.name, tuple(sorted(s.labels.items())), float(s.value)))
    return out


def scraped(sample: Sample, job: str, namespace: str, instance: str) -> dict[str, str]:
    labels = {}
    for key, value in sample.labels:
        labels[f"exported_{key}" if key in TARGET_LABELS else key] = value
    labels.update(job=job, namespace=namespace, instance=instance)
    return labels


def series_name(name: str, labels: dict[str, str]) -> str:
    inner = ",".join(f'{k}="{_escape(v)}"' for k, v in sorted(labels.items()))
    return f"{name}{{{inner}}}"


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _number(value: float) -> str:
    if value != value:
        return "NaN"
    if value in (float("inf"), float("-inf")):
        return "+Inf" if value > 0 else "-Inf"
    return repr(value)


def ramp(start: float, end: float, steps: int) -> str:
    """promtool values going linearly from start to end in `steps` scrape intervals."""
    return " ".join(_number(start + (end - start) * i / steps) for i in range(steps + 1))


@dataclass(frozen=True)
class Target:
    """One scraped operator: its target labels and how its values are scaled (two releases
    with different numbers show whether a query keeps them apart)."""

    job: str
    namespace: str
    instance: str
    scale: float = 1.0


def input_series(
    before: list[Sample], after: list[Sample], targets: Iterable[Target], steps: int
) -> list[dict[str, str]]:
    """Series ramping from the `before` snapshot to the `after` one over `steps` intervals."""
    start = {(s.name, s.labels): s.value for s in before}
    out = []
    for target in targets:
        for s in after:
            first = start.get(
                (s.name, s.labels),
                0.0 if s.name.endswith(("_total", "_count", "_sum", "_bucket")) else s.value,
            )
            labels = scraped(s, target.job, target.namespace, target.instance)
            out.append(
                {
                    "series": series_name(s.name, labels),
                    "values": ramp(first * target.scale, s.value * target.scale, steps),
                }
            )
    return out


@dataclass(frozen=True)
class Check:
    """An expression that must give exactly `{} 1` at `at`: a description says what failed."""

    description: str
    expr: str
    at: str


def non_empty(expr: str) -> str:
    """1 when expr has at least one sample that is a number (NaN != NaN drops NaNs)."""
    return f"count(({expr}) == ({expr})) > bool 0"


def equals(expr: str, value: float, tolerance: float = 1e-9) -> str:
    """1 when expr has samples and every one is within tolerance of value."""
    return f"min(abs(({expr}) - {value!r}) < bool {tolerance!r}) == 1 and {non_empty(expr)}"


def run_checks(tmp: Path, series: list[dict[str, str]], checks: list[Check]) -> None:
    """Run every check in one `promtool test rules`; fail naming the checks that failed."""
    test = {
        "rule_files": [],
        "evaluation_interval": f"{SCRAPE_INTERVAL_SECONDS}s",
        "tests": [
            {
                "interval": f"{SCRAPE_INTERVAL_SECONDS}s",
                "input_series": series,
                "promql_expr_test": [
                    {"expr": c.expr, "eval_time": c.at, "exp_samples": [{"labels": "{}", "value": 1}]}
                    for c in checks
                ],
            }
        ],
    }
    path = tmp / "promtool-test.yaml"
    path.write_text(yaml.safe_dump(test, sort_keys=False, width=1_000_000))
    result = subprocess.run(
        [promtool(), "test", "rules", str(path)], capture_output=True, text=True, check=False
    )
    if result.returncode != 0:
        output = result.stdout + result.stderr
        failed = [c.description for c in checks if c.expr in output.replace('\\"', '"')]
        pytest.fail(f"promtool test rules failed for {failed or 'see output'}:\n{output[-6000:]}")
