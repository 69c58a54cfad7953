"""The chart's alerts (charts/heady/alerts/heady.rules.yaml), tested with `promtool test rules`.

Each alert gets a synthetic history that must fire it exactly when the seeds' threshold and the
rule's `for` say, and one that must not. The synthetic heady_* series carry exactly the labels
the operator's real registry gives them (checked against a rendered registry), so a renamed
metric or label fails here too.
"""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.promtool import promtool, registry_samples, scraped
from tests.unit.test_dashboard_queries import exercise

REPO = Path(__file__).resolve().parents[2]
RULES = REPO / "charts" / "heady" / "alerts" / "heady.rules.yaml"
TARGET = {"job": "heady-operator", "namespace": "heady-system", "instance": "10.0.0.1:8080"}


@pytest.fixture(scope="module")
def label_keys() -> dict[str, set[frozenset[str]]]:
    """Label names of every heady_* series the real registry serves, as scraped."""
    exercise(1)
    keys: dict[str, set[frozenset[str]]] = {}
    for sample in registry_samples():
        keys.setdefault(sample.name, set()).add(frozenset(scraped(sample, "j", "n", "i")))
    return keys


class History:
    def __init__(self, label_keys: dict[str, set[frozenset[str]]]) -> None:
        self.label_keys = label_keys

    def series(
        self, name: str, values: str, target: dict[str, str] | None = None, **labels: str
    ) -> dict[str, str]:
        if name.startswith("heady_"):
            labels = {**(target or TARGET), **labels}
            assert frozenset(labels) in self.label_keys.get(name, set()), (
                f"{name}{sorted(labels)} is not a series the operator serves: {self.label_keys.get(name)}"
            )
        inner = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
        return {"series": f"{name}{{{inner}}}", "values": values}


def alert(name: str, severity: str, **labels: str) -> dict[str, Any]:
    return {"exp_labels": {"alertname": name, "severity": severity, **labels}}


def service(**extra: str) -> dict[str, str]:
    return {"exported_namespace": "demo", "service": "web", **extra}


def release(**extra: str) -> dict[str, str]:
    return {"namespace": "heady-system", "job": "heady-operator", **extra}


def stripped_rules(tmp: Path) -> Path:
    """The rules without annotations: the tests are about when alerts fire and with which labels;
    annotation templates are checked by `promtool check rules` and test_annotations_*."""
    rules = yaml.safe_load(RULES.read_text())
    for group in rules["groups"]:
        for rule in group["rules"]:
            rule.pop("annotations", None)
    path = tmp / "rules.yaml"
    path.write_text(yaml.safe_dump(rules))
    return path


def run(tmp: Path, groups: list[dict[str, Any]]) -> None:
    test = {"rule_files": [str(stripped_rules(tmp))], "evaluation_interval": "15s", "tests": groups}
    path = tmp / "alerts-test.yaml"
    path.write_text(yaml.safe_dump(test, sort_keys=False, width=1_000_000))
    result = subprocess.run(
        [promtool(), "test", "rules", str(path)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr


def group(series: list[dict[str, str]], *cases: tuple[str, str, list[dict[str, Any]]]) -> dict[str, Any]:
    return {
        "interval": "15s",
        "input_series": series,
        "alert_rule_test": [{"alertname": a, "eval_time": t, "exp_alerts": exp} for a, t, exp in cases],
    }


def test_rules_file_is_valid() -> None:
    result = subprocess.run(
        [promtool(), "check", "rules", str(RULES)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_alert_has_a_runbook_that_exists() -> None:
    rules = yaml.safe_load(RULES.read_text())
    names = []
    for group_ in rules["groups"]:
        for rule in group_["rules"]:
            names.append(rule["alert"])
            runbook = rule["annotations"]["runbook"]
            assert (REPO / runbook).is_file(), runbook
            assert rule["alert"] in (REPO / runbook).read_text(), (rule["alert"], runbook)
            assert rule["labels"]["severity"] in ("critical", "warning", "info")
            assert rule["annotations"]["summary"] and rule["annotations"]["description"]
    assert len(names) == len(set(names)) == 12


def test_service_health_alerts(label_keys: dict[str, set[frozenset[str]]], tmp_path: Path) -> None:
    h = History(label_keys)
    probe = "heady_health_probe_seconds"
    run(
        tmp_path,
        [
            # Down as soon as the operator says so (it already waited for 2 failures), and recovered.
            group(
                [h.series("heady_service_up", "1 1 1 1 0 0 0 0 1 1 1 1", **service())],
                ("HeadyServiceDown", "30s", []),
                ("HeadyServiceDown", "1m15s", [alert("HeadyServiceDown", "critical", **TARGET, **service())]),
                ("HeadyServiceDown", "2m30s", []),
            ),
            # p99 between 2 s and 5 s for more than 5 minutes; a fast service stays quiet.
            group(
                [
                    h.series(f"{probe}_bucket", "0+0x60", **service(result="success", le="1.0")),
                    h.series(f"{probe}_bucket", "0+0x60", **service(result="success", le="2.0")),
                    h.series(f"{probe}_bucket", "0+1x60", **service(result="success", le="5.0")),
                    h.series(f"{probe}_bucket", "0+1x60", **service(result="success", le="+Inf")),
                    h.series(
                        f"{probe}_bucket",
                        "0+1x60",
                        exported_namespace="demo",
                        service="fast",
                        result="success",
                        le="1.0",
                    ),
                    h.series(
                        f"{probe}_bucket",
                        "0+1x60",
                        exported_namespace="demo",
                        service="fast",
                        result="success",
                        le="+Inf",
                    ),
                ],
                ("HeadyServiceSlowResponses", "4m", []),
                (
                    "HeadyServiceSlowResponses",
                    "12m",
                    [alert("HeadyServiceSlowResponses", "warning", **release(**service()))],
                ),
            ),
            # 1 failure in 10 probes is 10 % > 5 %; 1 in 25 (4 %) is not.
            group(
                [
                    h.series(f"{probe}_count", "0+1x60", **service(result="failure")),
                    h.series(f"{probe}_count", "0+9x60", **service(result="success")),
                    h.series(
                        f"{probe}_count", "0+1x60", exported_namespace="demo", service="ok", result="failure"
                    ),
                    h.series(
                        f"{probe}_count", "0+24x60", exported_namespace="demo", service="ok", result="success"
                    ),
                ],
                ("HeadyServiceErrorRate", "4m", []),
                (
                    "HeadyServiceErrorRate",
                    "12m",
                    [alert("HeadyServiceErrorRate", "warning", **release(**service()))],
                ),
            ),
        ],
    )


def test_resource_alerts_only_where_heady_manages_pods(
    label_keys: dict[str, set[frozenset[str]]], tmp_path: Path
) -> None:
    h = History(label_keys)
    pod = {"pod": "web-1", "container": "app"}
    run(
        tmp_path,
        [
            group(
                [
                    h.series("heady_pods_managed", "4x60", **service()),
                    # 95 % of the limit in a managed namespace, 95 % in an unmanaged one, 80 % managed.
                    h.series("container_memory_working_set_bytes", "950x60", namespace="demo", **pod),
                    h.series("container_spec_memory_limit_bytes", "1000x60", namespace="demo", **pod),
                    h.series("container_memory_working_set_bytes", "950x60", namespace="elsewhere", **pod),
                    h.series("container_spec_memory_limit_bytes", "1000x60", namespace="elsewhere", **pod),
                    h.series(
                        "container_memory_working_set_bytes",
                        "800x60",
                        namespace="demo",
                        pod="web-2",
                        container="app",
                    ),
                    h.series(
                        "container_spec_memory_limit_bytes",
                        "1000x60",
                        namespace="demo",
                        pod="web-2",
                        container="app",
                    ),
                    # No limit: never a division by zero that fires.
                    h.series(
                        "container_memory_working_set_bytes",
                        "800x60",
                        namespace="demo",
                        pod="web-3",
                        container="app",
                    ),
                    h.series(
                        "container_spec_memory_limit_bytes",
                        "0x60",
                        namespace="demo",
                        pod="web-3",
                        container="app",
                    ),
                    # 0.9 cores of a 1-core limit; 0.5 of 1 core.
                    h.series("container_cpu_usage_seconds_total", "0+13.5x60", namespace="demo", **pod),
                    h.series("container_spec_cpu_quota", "100000x60", namespace="demo", **pod),
                    h.series("container_spec_cpu_period", "100000x60", namespace="demo", **pod),
                    h.series(
                        "container_cpu_usage_seconds_total",
                        "0+7.5x60",
                        namespace="demo",
                        pod="web-2",
                        container="app",
                    ),
                    h.series(
                        "container_spec_cpu_quota",
                        "100000x60",
                        namespace="demo",
                        pod="web-2",
                        container="app",
                    ),
                    h.series(
                        "container_spec_cpu_period",
                        "100000x60",
                        namespace="demo",
                        pod="web-2",
                        container="app",
                    ),
                ],
                ("HeadyPodMemoryHigh", "4m", []),
                (
                    "HeadyPodMemoryHigh",
                    "6m",
                    [alert("HeadyPodMemoryHigh", "warning", namespace="demo", **pod)],
                ),
                ("HeadyPodCPUHigh", "4m", []),
                ("HeadyPodCPUHigh", "12m", [alert("HeadyPodCPUHigh", "warning", namespace="demo", **pod)]),
            ),
        ],
    )


def test_queue_and_backlog_alerts(label_keys: dict[str, set[frozenset[str]]], tmp_path: Path) -> None:
    h = History(label_keys)
    run(
        tmp_path,
        [
            group(
                [
                    h.series("heady_ingest_backlog", "150x60"),
                    h.series("heady_ingest_lag_seconds", "45x60"),
                    h.series("heady_resize_queue_depth", "150x60", lane="escalation"),
                    h.series("heady_resize_queue_depth", "10x60", lane="background"),
                    h.series("heady_escalations_waiting", "2x60"),
                    h.series("heady_arena_queue_oldest_seconds", "4000x60"),
                ],
                ("HeadyAttentionStreamBacklog", "1m", []),
                (
                    "HeadyAttentionStreamBacklog",
                    "3m",
                    [alert("HeadyAttentionStreamBacklog", "warning", **TARGET)],
                ),
                ("HeadyAttentionStreamLag", "3m", [alert("HeadyAttentionStreamLag", "warning", **TARGET)]),
                (
                    "HeadyResizeQueueDeep",
                    "3m",
                    [alert("HeadyResizeQueueDeep", "warning", **release(lane="escalation"))],
                ),
                ("HeadyEscalationsWaitingTooLong", "9m", []),
                (
                    "HeadyEscalationsWaitingTooLong",
                    "11m",
                    [alert("HeadyEscalationsWaitingTooLong", "warning", **TARGET)],
                ),
                ("HeadyArenaQueueStuck", "6m", [alert("HeadyArenaQueueStuck", "info", **TARGET)]),
            ),
            # Below the thresholds: quiet.
            group(
                [
                    h.series("heady_ingest_backlog", "100x60"),
                    h.series("heady_ingest_lag_seconds", "30x60"),
                    h.series("heady_resize_queue_depth", "100x60", lane="escalation"),
                    h.series("heady_escalations_waiting", "0x60"),
                ],
                ("HeadyAttentionStreamBacklog", "10m", []),
                ("HeadyAttentionStreamLag", "10m", []),
                ("HeadyResizeQueueDeep", "10m", []),
                ("HeadyEscalationsWaitingTooLong", "14m", []),
            ),
        ],
    )


def test_leadership_alerts(label_keys: dict[str, set[frozenset[str]]], tmp_path: Path) -> None:
    h = History(label_keys)
    other = {**TARGET, "instance": "10.0.0.2:8080"}
    run(
        tmp_path,
        [
            # One leader and one standby: fine.
            group(
                [h.series("heady_leader", "1x60"), h.series("heady_leader", "0x60", target=other)],
                ("HeadyOperatorNotLeading", "10m", []),
                ("HeadyOperatorSplitBrain", "10m", []),
            ),
            # Nobody leads for 5 minutes.
            group(
                [h.series("heady_leader", "1 1 1 1 0x60"), h.series("heady_leader", "0x60", target=other)],
                ("HeadyOperatorNotLeading", "4m", []),
                (
                    "HeadyOperatorNotLeading",
                    "6m",
                    [alert("HeadyOperatorNotLeading", "critical", **release())],
                ),
            ),
            # Two leaders.
            group(
                [h.series("heady_leader", "1x60"), h.series("heady_leader", "1x60", target=other)],
                (
                    "HeadyOperatorSplitBrain",
                    "2m",
                    [alert("HeadyOperatorSplitBrain", "critical", **release())],
                ),
            ),
        ],
    )


def test_annotations_render_with_the_real_labels(
    label_keys: dict[str, set[frozenset[str]]], tmp_path: Path
) -> None:
    h = History(label_keys)
    test = {
        "rule_files": [str(RULES)],
        "evaluation_interval": "15s",
        "tests": [
            {
                "interval": "15s",
                "input_series": [h.series("heady_service_up", "0x10", **service())],
                "alert_rule_test": [
                    {
                        "alertname": "HeadyServiceDown",
                        "eval_time": "1m",
                        "exp_alerts": [
                            {
                                "exp_labels": {
                                    "alertname": "HeadyServiceDown",
                                    "severity": "critical",
                                    **TARGET,
                                    **service(),
                                },
                                "exp_annotations": {
                                    "summary": "HeadyService demo/web fails its health check",
                                    "description": "The health check of demo/web failed its failureThreshold of "
                                    "consecutive probes; see the service's Healthy condition.",
                                    "runbook": "docs/runbooks/heady-service-down.md",
                                },
                            }
                        ],
                    }
                ],
            }
        ],
    }
    path = tmp_path / "annotations-test.yaml"
    path.write_text(yaml.safe_dump(test, sort_keys=False, width=1_000_000))
    result = subprocess.run(
        [promtool(), "test", "rules", str(path)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr
