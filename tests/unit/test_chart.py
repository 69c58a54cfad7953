"""The helm chart (charts/heady), rendered by the real helm binary; no cluster needed.

helm comes from hack/tools.sh (pinned, built from the Go module proxy). A missing helm is a
failure, not a skip: the chart is part of the product.
"""

from __future__ import annotations

import ast
import base64
import functools
import json
import os
import re
import subprocess
import tarfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "charts" / "heady"
CRDS = REPO / "crds"
VALUES = Path(__file__).resolve().parent / "chart_values"
RELEASE = "heady"
NAMESPACE = "heady-system"

Doc = dict[str, Any]

# Environment variables the chart sets that operator/config.py does not read (yet). Remove a name
# once Settings has the field; test_operator_env_matches_settings keeps this list honest.
NOT_YET_IN_SETTINGS: set[str] = set()

DASHBOARD_METRICS = [
    "heady_pods_at_peak",
    "heady_signal_to_resize_seconds_bucket",
    "heady_escalations_waiting",
    "heady_escalations_in_flight",
    "heady_resize_failures_total",
    "heady_arena_sessions",
    "heady_chaos_faults_injected_total",
    "heady_chaos_recovery_seconds_bucket",
    "heady_prediction_total",
    "heady_capacity_requests",
    "heady_capacity_peak_requests",
    "heady_ingest_available",
    "heady_ingest_lag_seconds",
    "heady_ingest_dead_letters_total",
    "heady_arena_queued",
    "heady_chaos_verdicts_total",
    "heady_chaos_active_faults",
    "process_cpu_seconds_total",
    "process_resident_memory_bytes",
    "heady_service_up",
]


@functools.cache
def helm_binary() -> Path:
    result = subprocess.run(
        [str(REPO / "hack" / "tools.sh"), "--bin-dir"], capture_output=True, text=True, check=False
    )
    lines = result.stdout.strip().splitlines()
    if result.returncode != 0 or not lines:
        pytest.fail(f"hack/tools.sh --bin-dir failed: {result.stderr}")
    helm = Path(lines[-1]) / "helm"
    if not (helm.is_file() and os.access(helm, os.X_OK)):
        pytest.fail(f"helm not found at {helm}: run hack/tools.sh to build it")
    return helm


def run_helm(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(helm_binary()), *args], capture_output=True, text=True, check=False)


@functools.cache
def _render(args: tuple[str, ...]) -> tuple[Doc, ...]:
    result = run_helm("template", RELEASE, str(CHART), "--namespace", NAMESPACE, *args)
    if result.returncode != 0:
        pytest.fail(f"helm template {' '.join(args)} failed:\n{result.stderr}")
    return tuple(doc for doc in yaml.safe_load_all(result.stdout) if doc)


def render(*sets: str, values: str | None = None, extra: tuple[str, ...] = ()) -> list[Doc]:
    """Renders the chart; ``sets`` are ``key=value`` for --set, ``values`` a file in chart_values/."""
    args: list[str] = []
    if values:
        args += ["--values", str(VALUES / values)]
    for item in sets:
        args += ["--set", item]
    return list(_render((*args, *extra)))


def find(docs: list[Doc], kind: str, name: str | None = None) -> list[Doc]:
    return [d for d in docs if d["kind"] == kind and (name is None or d["metadata"]["name"] == name)]


def one(docs: list[Doc], kind: str, name: str) -> Doc:
    found = find(docs, kind, name)
    assert len(found) == 1, f"expected one {kind}/{name}, found {len(found)}"
    return found[0]


def ids(docs: list[Doc]) -> set[tuple[str, str]]:
    return {(d["kind"], d["metadata"]["name"]) for d in docs}


def component(doc: Doc) -> str | None:
    labels: dict[str, str] = doc["metadata"].get("labels") or {}
    return labels.get("app.kubernetes.io/component")


def operator_container(docs: list[Doc]) -> Doc:
    deployment = one(docs, "Deployment", "heady-operator")
    containers: list[Doc] = deployment["spec"]["template"]["spec"]["containers"]
    return next(c for c in containers if c["name"] == "operator")


def env_of(container: Doc) -> dict[str, Doc]:
    return {e["name"]: e for e in container.get("env", [])}


def pod_specs(docs: list[Doc]) -> Iterator[tuple[str, Doc]]:
    for doc in docs:
        if doc["kind"] in {"Deployment", "StatefulSet", "DaemonSet", "Job"}:
            yield f"{doc['kind']}/{doc['metadata']['name']}", doc["spec"]["template"]["spec"]


def grants(role: Doc) -> dict[tuple[str, str], set[str]]:
    """(apiGroup, resource) -> verbs of an RBAC role."""
    out: dict[tuple[str, str], set[str]] = {}
    for rule in role["rules"]:
        for group in rule["apiGroups"]:
            for resource in rule["resources"]:
                out.setdefault((group, resource), set()).update(rule["verbs"])
    return out


# --- lint, kinds, toggles -------------------------------------------------------------------


@pytest.mark.parametrize("values", [None, "all-off.yaml", "external.yaml", "everything-on.yaml", "kwok.yaml"])
def test_helm_lint_strict(values: str | None) -> None:
    args = ["lint", "--strict", str(CHART)]
    if values:
        args += ["--values", str(VALUES / values)]
    result = run_helm(*args)
    assert result.returncode == 0, result.stdout + result.stderr


def test_default_render_has_expected_objects() -> None:
    expected = {
        ("Deployment", "heady-operator"),
        ("PodDisruptionBudget", "heady-operator"),
        ("ServiceAccount", "heady-operator"),
        ("ClusterRole", "heady-operator"),
        ("ClusterRoleBinding", "heady-operator"),
        ("Role", "heady-operator-tunnel"),
        ("RoleBinding", "heady-operator-tunnel"),
        ("Service", "heady-operator"),
        ("ServiceAccount", "heady-chaos"),
        ("ClusterRole", "heady-chaos"),
        ("ClusterRoleBinding", "heady-chaos"),
        ("StatefulSet", "heady-postgresql"),
        ("Service", "heady-postgresql"),
        ("Service", "heady-postgresql-hl"),
        ("Secret", "heady-postgresql"),
        ("ConfigMap", "heady-postgresql-initdb"),
        ("StatefulSet", "heady-redis"),
        ("Service", "heady-redis"),
        ("Deployment", "heady-cloudflared"),
        ("PodDisruptionBudget", "heady-cloudflared"),
        ("ConfigMap", "heady-cloudflared"),
        ("ConfigMap", "heady-dashboard"),
    }
    docs = render()
    assert ids(docs) == expected
    for doc in docs:
        if doc["kind"] not in {"ClusterRole", "ClusterRoleBinding"}:
            assert doc["metadata"]["namespace"] == NAMESPACE, doc["metadata"]["name"]


@pytest.mark.parametrize(
    ("toggle", "component_label"),
    [
        ("operator.enabled", "operator"),
        ("postgresql.enabled", "postgresql"),
        ("redis.enabled", "redis"),
        ("cloudflared.enabled", "cloudflared"),
        ("dashboard.enabled", "dashboard"),
        ("chaos.enabled", "chaos"),
    ],
)
def test_each_toggle_removes_its_objects(toggle: str, component_label: str) -> None:
    default = render()
    off = render(f"{toggle}=false")
    assert any(component(d) == component_label for d in default)
    assert not [d["metadata"]["name"] for d in off if component(d) == component_label]
    # Nothing else appears, and only the component's own objects (plus what exists for it) go.
    assert ids(off) < ids(default)
    gone = ids(default) - ids(off)
    allowed = {(d["kind"], d["metadata"]["name"]) for d in default if component(d) == component_label}
    if toggle == "cloudflared.enabled":  # the operator's permission to restart cloudflared
        allowed |= {("Role", "heady-operator-tunnel"), ("RoleBinding", "heady-operator-tunnel")}
    assert gone <= allowed


def test_all_toggles_off_renders_nothing_but_crds() -> None:
    assert render(values="all-off.yaml") == []
    with_crds = render(values="all-off.yaml", extra=("--include-crds",))
    assert {d["kind"] for d in with_crds} == {"CustomResourceDefinition"}


def test_service_monitor_is_off_by_default_and_scrapes_http() -> None:
    assert not find(render(), "ServiceMonitor")
    monitor = one(render("serviceMonitor.enabled=true"), "ServiceMonitor", "heady-operator")
    assert monitor["apiVersion"] == "monitoring.coreos.com/v1"
    assert monitor["spec"]["endpoints"][0]["port"] == "http"
    assert monitor["spec"]["endpoints"][0]["path"] == "/metrics"
    assert monitor["spec"]["namespaceSelector"]["matchNames"] == [NAMESPACE]


def test_prometheus_rule_follows_the_monitoring_api() -> None:
    """auto: only where the cluster serves PrometheusRule; the alerts are the tested rules file."""
    assert not find(render(), "PrometheusRule")
    api = ("--api-versions", "monitoring.coreos.com/v1/PrometheusRule")
    rule = one(render(extra=api), "PrometheusRule", "heady-operator")
    assert rule["apiVersion"] == "monitoring.coreos.com/v1"
    assert rule["metadata"]["namespace"] == NAMESPACE
    rules_file = yaml.safe_load((CHART / "alerts" / "heady.rules.yaml").read_text())
    assert rule["spec"]["groups"] == rules_file["groups"]
    assert not find(render("prometheusRule.enabled=false", extra=api), "PrometheusRule")
    forced = one(
        render(
            "prometheusRule.enabled=true",
            "prometheusRule.runbookBaseURL=https://git.example/heady/blob/main/",
        ),
        "PrometheusRule",
        "heady-operator",
    )
    down = next(r for g in forced["spec"]["groups"] for r in g["rules"] if r["alert"] == "HeadyServiceDown")
    assert (
        down["annotations"]["runbook_url"]
        == "https://git.example/heady/blob/main/docs/runbooks/heady-service-down.md"
    )
    assert not find(render("prometheusRule.enabled=true", "operator.enabled=false"), "PrometheusRule")


def test_metrics_service_has_scrape_annotations() -> None:
    service = one(render(), "Service", "heady-operator")
    assert service["spec"]["ports"] == [
        {"name": "http", "port": 8080, "targetPort": "http", "protocol": "TCP"}
    ]
    annotations = service["metadata"]["annotations"]
    assert annotations["prometheus.io/scrape"] == "true"
    assert annotations["prometheus.io/port"] == "8080"
    assert annotations["prometheus.io/path"] == "/metrics"


# --- operator Deployment ----------------------------------------------------------------------


def test_operator_runs_a_leader_and_a_standby_by_default() -> None:
    docs = render()
    deployment = one(docs, "Deployment", "heady-operator")
    assert deployment["spec"]["replicas"] == 2
    assert deployment["spec"]["strategy"] == {
        "type": "RollingUpdate",
        "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0},
    }
    container = operator_container(docs)
    assert container["image"] == "heady-operator:0.1.0"  # tag defaults to appVersion
    assert "args" not in container
    env = env_of(container)
    assert env["HEADY_LEADER_ELECTION"]["value"] == "true"
    assert env["HEADY_LEADER_ELECTION_LEASE"]["value"] == "heady-operator"
    assert [
        env[f"HEADY_LEADER_ELECTION_{k}_SECONDS"]["value"]
        for k in ("LEASE_DURATION", "RENEW_DEADLINE", "RETRY_PERIOD")
    ] == ["15", "10", "2"]
    assert env["HEADY_POD_NAME"]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.name"
    pod = deployment["spec"]["template"]["spec"]
    assert pod["serviceAccountName"] == "heady-operator"
    term = pod["affinity"]["podAntiAffinity"]["preferredDuringSchedulingIgnoredDuringExecution"][0]
    assert term["podAffinityTerm"]["topologyKey"] == "kubernetes.io/hostname"
    assert (
        term["podAffinityTerm"]["labelSelector"]["matchLabels"]
        == deployment["spec"]["selector"]["matchLabels"]
    )
    pdb = one(docs, "PodDisruptionBudget", "heady-operator")
    assert pdb["spec"] == {"minAvailable": 1, "selector": deployment["spec"]["selector"]}
    assert grants(one(docs, "ClusterRole", "heady-operator"))[("coordination.k8s.io", "leases")] == {
        "get",
        "create",
        "update",
    }


def test_a_single_replica_without_election_is_recreated_and_has_no_budget() -> None:
    docs = render("operator.replicas=1", "operator.leaderElection.enabled=false")
    deployment = one(docs, "Deployment", "heady-operator")
    assert deployment["spec"]["replicas"] == 1
    assert deployment["spec"]["strategy"] == {"type": "Recreate"}
    assert env_of(operator_container(docs))["HEADY_LEADER_ELECTION"]["value"] == "false"
    assert not find(docs, "PodDisruptionBudget", "heady-operator")


def test_operator_image_tag_can_be_overridden() -> None:
    container = operator_container(render("image.repository=registry.local/heady", "image.tag=dev"))
    assert container["image"] == "registry.local/heady:dev"
    assert env_of(container)["HEADY_CHAOS_IMAGE"]["value"] == "registry.local/heady:dev"


def test_shards_get_a_deployment_lease_budget_and_consumer_group_each() -> None:
    docs = render(values="shards.yaml")
    assert not find(docs, "Deployment", "heady-operator")
    for shard, selector in (("a", "heady.io/shard=a"), ("b", "heady.io/shard=b,tier=games")):
        name = f"heady-operator-{shard}"
        deployment = one(docs, "Deployment", name)
        assert deployment["spec"]["replicas"] == 2
        labels = deployment["spec"]["selector"]["matchLabels"]
        assert labels["heady.io/shard"] == shard
        assert deployment["spec"]["template"]["metadata"]["labels"]["heady.io/shard"] == shard
        (container,) = deployment["spec"]["template"]["spec"]["containers"]
        env = env_of(container)
        assert env["HEADY_LEADER_ELECTION_LEASE"]["value"] == name
        assert env["HEADY_SHARD_SELECTOR"]["value"] == selector
        assert env["HEADY_INGEST_GROUP"]["value"] == f"heady-operator-{shard}"
        pod = deployment["spec"]["template"]["spec"]
        term = pod["affinity"]["podAntiAffinity"]["preferredDuringSchedulingIgnoredDuringExecution"][0]
        assert term["podAffinityTerm"]["labelSelector"]["matchLabels"] == labels
        assert one(docs, "PodDisruptionBudget", name)["spec"]["selector"]["matchLabels"] == labels


def test_probes_and_port() -> None:
    container = operator_container(render())
    assert container["ports"] == [{"name": "http", "containerPort": 8080, "protocol": "TCP"}]
    for probe in ("livenessProbe", "readinessProbe"):
        assert container[probe]["httpGet"] == {"path": "/healthz", "port": "http"}


def test_operator_pod_security_is_restricted() -> None:
    pod = one(render(), "Deployment", "heady-operator")["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] == 10001
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    container = operator_container(render())
    security = container["securityContext"]
    assert security["readOnlyRootFilesystem"] is True
    assert security["allowPrivilegeEscalation"] is False
    assert security["capabilities"] == {"drop": ["ALL"]}
    assert {"name": "tmp", "mountPath": "/tmp"} in container["volumeMounts"]
    assert {"name": "tmp", "emptyDir": {"sizeLimit": "64Mi"}} in pod["volumes"]


@pytest.mark.parametrize("values", [None, "everything-on.yaml"])
def test_every_pod_meets_the_restricted_profile(values: str | None) -> None:
    for name, pod in pod_specs(render(values=values)):
        pod_context = pod.get("securityContext", {})
        assert pod_context.get("seccompProfile") == {"type": "RuntimeDefault"}, name
        for container in pod["containers"] + pod.get("initContainers", []):
            context = container["securityContext"]
            assert pod_context.get("runAsNonRoot") or context.get("runAsNonRoot"), name
            assert context["allowPrivilegeEscalation"] is False, name
            assert context["capabilities"]["drop"] == ["ALL"], name
            assert context["readOnlyRootFilesystem"] is True, name
            assert "resources" in container and container["resources"]["limits"]["memory"], name


def test_operator_env_with_bundled_services() -> None:
    env = env_of(operator_container(render()))
    assert (
        env["HEADY_POSTGRES_DSN"]["value"]
        == "postgresql://heady@heady-postgresql.heady-system.svc:5432/heady"
    )
    assert env["PGPASSWORD"]["valueFrom"]["secretKeyRef"] == {"name": "heady-postgresql", "key": "password"}
    assert env["HEADY_REDIS_URL"]["value"] == "redis://heady-redis.heady-system.svc:6379/0"
    assert env["HEADY_HTTP_PORT"]["value"] == "8080"
    assert env["HEADY_FORBIDDEN_HOSTNAME_SUFFIXES"]["value"] == "onrender.com"
    assert env["HEADY_CHAOS_SERVICE_ACCOUNT"]["value"] == "heady-chaos"
    assert env["HEADY_OPERATOR_NAMESPACE"]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.namespace"
    assert env["HEADY_NAMESPACES"]["value"] == ""
    assert "HEADY_INGEST_TOKEN" not in env
    assert "PGPASSWORD" not in env["HEADY_POSTGRES_DSN"]["value"]


def test_operator_env_points_at_external_services() -> None:
    docs = render(values="external.yaml")
    assert not find(docs, "StatefulSet")
    env = env_of(operator_container(docs))
    assert (
        env["HEADY_POSTGRES_DSN"]["value"]
        == "postgresql://app@db.example.internal:5433/memory?sslmode=require"
    )
    assert env["PGPASSWORD"]["valueFrom"]["secretKeyRef"] == {"name": "external-db", "key": "db-password"}
    assert env["HEADY_REDIS_URL"]["value"] == "redis://cache.example.internal:6380/2"

    from_secret = env_of(
        operator_container(
            render("redis.external.existingSecret=redis-url", values="external.yaml"),
        )
    )
    assert from_secret["HEADY_REDIS_URL"]["valueFrom"]["secretKeyRef"] == {"name": "redis-url", "key": "url"}


def test_no_postgres_at_all_leaves_the_dsn_empty() -> None:
    env = env_of(operator_container(render("postgresql.enabled=false")))
    assert env["HEADY_POSTGRES_DSN"]["value"] == ""
    assert "PGPASSWORD" not in env


def test_ingest_token_from_an_optional_existing_secret() -> None:
    env = env_of(operator_container(render("operator.ingestToken.existingSecret=heady-ingest")))
    assert env["HEADY_INGEST_TOKEN"]["valueFrom"]["secretKeyRef"] == {
        "name": "heady-ingest",
        "key": "token",
        "optional": True,
    }


def test_list_values_are_joined_with_commas() -> None:
    env = env_of(
        operator_container(
            render(
                "operator.watchNamespaces={apps,games}",
                "operator.forbiddenHostnameSuffixes={onrender.com,x.io}",
            )
        )
    )
    assert env["HEADY_NAMESPACES"]["value"] == "apps,games"
    assert env["HEADY_FORBIDDEN_HOSTNAME_SUFFIXES"]["value"] == "onrender.com,x.io"


def test_settings_become_heady_env_vars() -> None:
    settings = json.dumps({"attentionThreshold": 0.25, "rebalanceSeed": 1000000, "attentionStream": "a:b"})
    docs = render(extra=("--set-json", f"operator.settings={settings}"))
    env = env_of(operator_container(docs))
    assert env["HEADY_ATTENTION_THRESHOLD"]["value"] == "0.25"
    assert env["HEADY_REBALANCE_SEED"]["value"] == "1000000"
    assert env["HEADY_ATTENTION_STREAM"]["value"] == "a:b"


def _settings_fields() -> set[str]:
    """Field names of Settings in operator/config.py, read without importing it."""
    tree = ast.parse((REPO / "operator" / "config.py").read_text())
    settings = next(n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == "Settings")
    return {
        n.target.id
        for n in settings.body
        if isinstance(n, ast.AnnAssign) and isinstance(n.target, ast.Name) and n.target.id != "model_config"
    }


def test_operator_env_matches_settings() -> None:
    fields = _settings_fields()
    env = env_of(operator_container(render(values="everything-on.yaml")))
    heady = {name for name in env if name.startswith("HEADY_")}
    unknown = {name for name in heady if name.removeprefix("HEADY_").lower() not in fields}
    assert unknown == NOT_YET_IN_SETTINGS
    schema = json.loads((CHART / "values.schema.json").read_text())
    settings_keys = schema["properties"]["operator"]["properties"]["settings"]["properties"]
    for key in settings_keys:
        snake = re.sub(r"(?<!^)(?=[A-Z])", "_", key).lower()
        assert snake in fields, f"operator.settings.{key} is no field of Settings"
        assert f"HEADY_{snake.upper()}" not in heady, f"operator.settings.{key} is already set by the chart"


# --- RBAC -------------------------------------------------------------------------------------


@pytest.mark.parametrize("values", [None, "everything-on.yaml"])
def test_no_rbac_rule_uses_wildcards(values: str | None) -> None:
    roles = [d for d in render(values=values) if d["kind"] in {"ClusterRole", "Role"}]
    assert roles
    for role in roles:
        for rule in role["rules"]:
            for field in ("verbs", "resources", "apiGroups"):
                assert all("*" not in item for item in rule.get(field, [])), (role["metadata"]["name"], rule)


def test_operator_cluster_role_grants_what_it_needs() -> None:
    granted = grants(one(render(), "ClusterRole", "heady-operator"))
    expected: dict[tuple[str, str], set[str]] = {
        ("", "pods"): {"get", "list", "watch"},
        ("", "pods/resize"): {"patch"},
        ("", "nodes"): {"get", "list", "watch", "patch"},
        ("", "events"): {"create", "patch"},
        ("events.k8s.io", "events"): {"create", "patch"},
        ("", "configmaps"): {"get", "list", "watch", "create", "patch", "update"},
        ("", "namespaces"): {"get", "list", "watch"},
        ("batch", "jobs"): {"get", "list", "watch", "create", "delete"},
        ("", "persistentvolumeclaims"): {"get", "list", "watch", "create", "delete", "patch"},
        ("networking.k8s.io", "networkpolicies"): {"get", "list", "watch", "create", "delete"},
        ("coordination.k8s.io", "leases"): {"get", "create", "update"},
        ("apiextensions.k8s.io", "customresourcedefinitions"): {"get", "list", "watch"},
        ("metrics.k8s.io", "pods"): {"get", "list"},
        ("metrics.k8s.io", "nodes"): {"get", "list"},
        ("autoscaling.k8s.io", "verticalpodautoscalers"): {"get", "list", "watch"},  # spec.peakFrom
    }
    for kind in ("headyservices", "attentionsignals", "arenasessions"):
        expected[("heady.io", kind)] = {"get", "list", "watch", "patch", "update"}
        expected[("heady.io", f"{kind}/status")] = {"get", "patch", "update"}
    expected[("heady.io", "attentionsignals")].add("delete")
    for kind in ("deployments", "statefulsets", "replicasets"):
        expected[("apps", kind)] = {"get", "list", "watch"}
    assert granted == expected


def test_operator_may_patch_only_the_cloudflared_deployment() -> None:
    role = one(render(), "Role", "heady-operator-tunnel")
    assert role["rules"] == [
        {
            "apiGroups": ["apps"],
            "resources": ["deployments"],
            "resourceNames": ["heady-cloudflared"],
            "verbs": ["patch"],
        }
    ]
    binding = one(render(), "RoleBinding", "heady-operator-tunnel")
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": "heady-operator", "namespace": NAMESPACE}
    ]


def test_chaos_identity() -> None:
    docs = render()
    granted = grants(one(docs, "ClusterRole", "heady-chaos"))
    assert granted == {
        ("", "pods"): {"get", "list", "watch", "delete"},
        ("", "pods/eviction"): {"create"},
        ("", "nodes"): {"get", "list", "watch", "patch"},
        ("networking.k8s.io", "networkpolicies"): {"get", "list", "create", "delete", "patch"},
        ("heady.io", "headyservices"): {"get", "list"},
        ("apps", "deployments"): {"get", "list"},
        ("apps", "statefulsets"): {"get", "list"},
        ("", "namespaces"): {"get"},
    }
    binding = one(docs, "ClusterRoleBinding", "heady-chaos")
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "heady-chaos", "namespace": NAMESPACE}]
    assert (
        env_of(operator_container(render("chaos.enabled=false")))["HEADY_CHAOS_ENABLED"]["value"] == "false"
    )


# --- CRDs -------------------------------------------------------------------------------------


def test_chart_crds_are_a_symlink_to_the_repository_crds() -> None:
    link = CHART / "crds"
    assert link.is_symlink()
    assert os.readlink(link) == "../../crds"
    assert link.resolve() == CRDS.resolve()


def _name(doc: Doc) -> str:
    return str(doc["metadata"]["name"])


def test_rendered_crds_equal_the_files_in_crds() -> None:
    rendered = [d for d in render(extra=("--include-crds",)) if d["kind"] == "CustomResourceDefinition"]
    on_disk = [yaml.safe_load(p.read_text()) for p in sorted(CRDS.glob("*.yaml"))]
    assert sorted(rendered, key=_name) == sorted(on_disk, key=_name)
    assert not find(render(), "CustomResourceDefinition")  # only with --include-crds


def test_packaged_chart_holds_the_crd_files_byte_for_byte(tmp_path: Path) -> None:
    result = run_helm("package", str(CHART), "--destination", str(tmp_path))
    assert result.returncode == 0, result.stderr
    (archive,) = tmp_path.glob("heady-*.tgz")
    packaged: dict[str, bytes] = {}
    with tarfile.open(archive) as tar:
        for member in tar.getmembers():
            content = tar.extractfile(member) if Path(member.name).parent.name == "crds" else None
            if content is not None:
                packaged[Path(member.name).name] = content.read()
    assert packaged == {p.name: p.read_bytes() for p in CRDS.glob("*.yaml")}


# --- Postgres, Redis --------------------------------------------------------------------------


def test_postgres_password_secret_survives_upgrades() -> None:
    template = (CHART / "templates" / "postgresql" / "secret.yaml").read_text()
    assert re.search(r'lookup "v1" "Secret" \.Release\.Namespace', template)
    assert "randAlphaNum" in template
    secret = one(render(), "Secret", "heady-postgresql")
    assert secret["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep"
    password = base64.b64decode(secret["data"]["password"]).decode()
    assert re.fullmatch(r"[A-Za-z0-9]{32}", password)
    # An existing Secret replaces the generated one.
    docs = render("postgresql.auth.existingSecret=my-db", "postgresql.auth.passwordKey=pw")
    assert not find(docs, "Secret")
    env = env_of(operator_container(docs))
    assert env["PGPASSWORD"]["valueFrom"]["secretKeyRef"] == {"name": "my-db", "key": "pw"}


def test_postgres_statefulset() -> None:
    docs = render("postgresql.persistence.size=20Gi")
    sts = one(docs, "StatefulSet", "heady-postgresql")
    pod = sts["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert container["image"] == "pgvector/pgvector:pg16"
    assert pod["securityContext"]["runAsUser"] == 999
    assert pod["securityContext"]["fsGroup"] == 999
    (claim,) = sts["spec"]["volumeClaimTemplates"]
    assert claim["spec"]["resources"]["requests"]["storage"] == "20Gi"
    mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
    assert mounts["/docker-entrypoint-initdb.d"] == "initdb"
    assert mounts["/var/lib/postgresql/data"] == "data"
    initdb = one(docs, "ConfigMap", "heady-postgresql-initdb")
    assert "CREATE EXTENSION IF NOT EXISTS vector;" in "".join(initdb["data"].values())
    assert {"name": "initdb", "configMap": {"name": "heady-postgresql-initdb"}} in pod["volumes"]


def test_postgres_without_persistence_uses_an_empty_dir() -> None:
    sts = one(render("postgresql.persistence.enabled=false"), "StatefulSet", "heady-postgresql")
    assert "volumeClaimTemplates" not in sts["spec"]
    assert {"name": "data", "emptyDir": {}} in sts["spec"]["template"]["spec"]["volumes"]


def test_redis_args_and_persistence() -> None:
    sts = one(render(), "StatefulSet", "heady-redis")
    (container,) = sts["spec"]["template"]["spec"]["containers"]
    assert container["image"] == "redis:7-alpine"
    args = container["args"]
    assert args[args.index("--maxmemory") + 1] == "2gb"
    # The safe policy for a queue (docs/attention-ingest.md): never evict the attention stream.
    assert args[args.index("--maxmemory-policy") + 1] == "noeviction"
    assert args[args.index("--appendonly") + 1] == "no"
    assert "volumeClaimTemplates" not in sts["spec"]

    persistent = one(
        render("redis.persistence.enabled=true", "redis.maxmemoryPolicy=volatile-lru"),
        "StatefulSet",
        "heady-redis",
    )
    (container,) = persistent["spec"]["template"]["spec"]["containers"]
    args = container["args"]
    assert args[args.index("--appendonly") + 1] == "yes"
    assert args[args.index("--maxmemory-policy") + 1] == "volatile-lru"
    assert persistent["spec"]["volumeClaimTemplates"][0]["metadata"]["name"] == "data"
    assert "volumes" not in persistent["spec"]["template"]["spec"]


# --- schema -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("setting", "message"),
    [
        ("operator.replicas=-1", "at '/operator/replicas': minimum: got -1, want 0"),
        ("redis.maxmemoryPolicy=bogus", "at '/redis/maxmemoryPolicy': value must be one of"),
        ("operator.logLevel=LOUD", "at '/operator/logLevel': value must be one of"),
        ("operator.replicaz=1", "additional properties 'replicaz' not allowed"),
        ("operator.settings.attentionTreshold=1", "additional properties 'attentionTreshold' not allowed"),
        ("image.pullPolicy=Sometimes", "at '/image/pullPolicy'"),
        ("redis.maxmemory=lots", "at '/redis/maxmemory'"),
        (
            "operator.replicas=2,operator.leaderElection.enabled=false",
            "operator.replicas=2 needs operator.leaderElection.enabled=true",
        ),
        (
            "operator.leaderElection.leaseDurationSeconds=10",
            "leaseDurationSeconds must be longer than renewDeadlineSeconds",
        ),
    ],
)
def test_bad_values_are_rejected_with_a_readable_message(setting: str, message: str) -> None:
    result = run_helm("template", RELEASE, str(CHART), "--set", setting)
    assert result.returncode != 0
    assert message in result.stderr, result.stderr


def test_schema_is_strict() -> None:
    schema = json.loads((CHART / "values.schema.json").read_text())

    def walk(node: Doc, path: str) -> Iterator[str]:
        if (
            node.get("type") == "object"
            and "properties" in node
            and node.get("additionalProperties") is not False
        ):
            yield path
        for key, child in node.get("properties", {}).items():
            yield from walk(child, f"{path}.{key}")

    assert list(walk(schema, "")) == []


# --- cloudflared ------------------------------------------------------------------------------


def test_cloudflared_configmap_starts_with_only_the_catch_all() -> None:
    docs = render()
    configmap = one(docs, "ConfigMap", "heady-cloudflared")
    config = yaml.safe_load(configmap["data"]["config.yaml"])
    assert config["ingress"] == [{"service": "http_status:404"}]
    # Created once, outside the release: the operator owns the data after install.
    assert configmap["metadata"]["annotations"]["helm.sh/hook"] == "pre-install,pre-upgrade"
    template = (CHART / "templates" / "cloudflared" / "configmap.yaml").read_text()
    assert 'lookup "v1" "ConfigMap"' in template
    renamed = render("cloudflared.configMapName=tunnel-config")
    assert find(renamed, "ConfigMap", "tunnel-config")
    assert env_of(operator_container(renamed))["HEADY_TUNNEL_CONFIGMAP"]["value"] == "tunnel-config"


def test_cloudflared_deployment() -> None:
    docs = render()
    deployment = one(docs, "Deployment", "heady-cloudflared")
    assert deployment["spec"]["selector"]["matchLabels"] == {
        "app.kubernetes.io/name": "heady",
        "app.kubernetes.io/instance": RELEASE,
        "app.kubernetes.io/component": "cloudflared",
    }
    pod = deployment["spec"]["template"]
    # The operator owns heady.io/config-hash; the chart must never set (and so reset) it.
    assert "heady.io/config-hash" not in (pod["metadata"].get("annotations") or {})
    (container,) = pod["spec"]["containers"]
    assert container["args"][:2] == ["tunnel", "--no-autoupdate"]
    assert container["args"][-1] == "run"
    assert "/etc/cloudflared/config.yaml" in container["args"]
    assert env_of(container)["TUNNEL_TOKEN"]["valueFrom"]["secretKeyRef"] == {
        "name": "heady-tunnel-token",
        "key": "token",
    }
    assert {
        "name": "config",
        "configMap": {"name": "heady-cloudflared", "items": [{"key": "config.yaml", "path": "config.yaml"}]},
    } in pod["spec"]["volumes"]
    env = env_of(operator_container(docs))
    assert env["HEADY_TUNNEL_DEPLOYMENT"]["value"] == "heady-cloudflared"
    assert env["HEADY_TUNNEL_CONFIGMAP"]["value"] == "heady-cloudflared"
    disabled = env_of(operator_container(render("cloudflared.enabled=false")))
    assert disabled["HEADY_TUNNEL_DEPLOYMENT"]["value"] == ""


# --- dashboard --------------------------------------------------------------------------------


def test_dashboard_configmap() -> None:
    configmap = one(render(), "ConfigMap", "heady-dashboard")
    assert configmap["metadata"]["labels"]["grafana_dashboard"] == "1"
    dashboard = json.loads(configmap["data"]["heady.json"])
    assert dashboard == json.loads((CHART / "dashboards" / "heady.json").read_text())
    exprs = " ".join(target["expr"] for panel in dashboard["panels"] for target in panel.get("targets", []))
    for metric in DASHBOARD_METRICS:
        assert metric in exprs, metric
    for label in ("reason", "condition", "kind", "outcome"):
        assert f"by ({label})" in exprs, label
    panel_ids = [panel["id"] for panel in dashboard["panels"]]
    assert len(panel_ids) == len(set(panel_ids))


# --- documentation ----------------------------------------------------------------------------


KEY_LINE = re.compile(r"^(?P<indent>\s*)(?P<key>[A-Za-z][\w-]*):(?P<rest>.*)$")


def _documented_values() -> list[tuple[str, bool, bool]]:
    """(dotted key, has its own '# --' comment, is a leaf) for every key of values.yaml."""
    lines = (CHART / "values.yaml").read_text().splitlines()
    keys: list[tuple[int, str, str, bool]] = []  # indent, key, rest of the line, documented
    for number, line in enumerate(lines):
        match = KEY_LINE.match(line)
        if match:
            previous = lines[number - 1].strip() if number else ""
            keys.append(
                (len(match["indent"]), match["key"], match["rest"].strip(), previous.startswith("# -- "))
            )
    out: list[tuple[str, bool, bool]] = []
    stack: list[tuple[int, str]] = []
    for index, (indent, key, rest, documented) in enumerate(keys):
        while stack and stack[-1][0] >= indent:
            stack.pop()
        stack.append((indent, key))
        next_indent = keys[index + 1][0] if index + 1 < len(keys) else 0
        leaf = bool(rest) or next_indent <= indent
        out.append((".".join(k for _, k in stack), documented, leaf))
    return out


def test_every_value_is_documented_in_values_yaml_and_readme() -> None:
    entries = _documented_values()
    documented = {key for key, doc, _ in entries if doc}
    readme = (CHART / "README.md").read_text()
    for key, _, leaf in entries:
        if not leaf:
            continue
        parts = key.split(".")
        assert any(".".join(parts[:i]) in documented for i in range(1, len(parts) + 1)), (
            f"{key} has no '# --' comment"
        )
    for key in documented:
        assert f"| `{key}` |" in readme, f"{key} is missing from the README values table"


def test_access_settings_reach_the_operator() -> None:
    env = env_of(operator_container(render()))
    # Secure by default: no public hostnames, no API token (render only).
    assert env["HEADY_ACCESS_ALLOW_PUBLIC_SERVICES"]["value"] == "false"
    assert env["HEADY_ACCESS_CONFIGMAP"]["value"] == "heady-access"
    assert "HEADY_ACCESS_API_TOKEN" not in env
    env = env_of(operator_container(render(values="everything-on.yaml")))
    assert env["HEADY_ACCESS_API_TOKEN"]["valueFrom"]["secretKeyRef"] == {
        "name": "cloudflare-access",
        "key": "token",
    }
    assert env["HEADY_ACCESS_TEAM_NAME"]["value"] == "heady"
    assert env["HEADY_ACCESS_ACCOUNT_ID"]["value"] == "0123456789abcdef0123456789abcdef"
    assert env["HEADY_ACCESS_ALLOW_PUBLIC_SERVICES"]["value"] == "true"
    bad = run_helm("template", RELEASE, str(CHART), "--set", "access.accountId=not-hex")
    assert bad.returncode != 0 and "accountId" in bad.stderr


def test_shards_with_the_tunnel_are_refused_with_a_reason() -> None:
    # Each shard would write the one tunnel's rules with only its own hostnames.
    result = run_helm(
        "template",
        RELEASE,
        str(CHART),
        "--namespace",
        NAMESPACE,
        "--values",
        str(VALUES / "shards.yaml"),
        "--set",
        "cloudflared.enabled=true",
    )
    assert result.returncode != 0
    assert "operator.shards with cloudflared.enabled" in result.stderr
