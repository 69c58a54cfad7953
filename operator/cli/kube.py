"""Every cluster call `kubectl heady` makes, with the official (sync) client.

Bodies come back as the API's own JSON (camelCase dicts), the same shape kubectl shows, so the
pure views read them without a conversion layer.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any

from kubernetes import client, config
from kubernetes.client.exceptions import ApiException
from kubernetes.config.config_exception import ConfigException

from heady_operator.cli.views import SavedMetric, parse_saved_metric
from heady_operator.models.common import GROUP, VERSION

Body = dict[str, Any]
OPERATOR_SELECTOR = "app.kubernetes.io/component=operator,app.kubernetes.io/part-of=heady"
METRICS_TIMEOUT_SECONDS = 5


class MissingCRD(RuntimeError):
    """heady's CRDs are not in this cluster."""


class KubeconfigError(RuntimeError):
    """No usable kubeconfig or context; the message is the loader's, with what was tried."""


def describe(exc: ApiException) -> str:
    """The apiserver's own message (a Status body) when there is one, as kubectl prints it."""
    try:
        body = json.loads(exc.body or "")
        if isinstance(body, dict) and body.get("message"):
            return str(body["message"])
    except ValueError:
        pass
    return f"{exc.status} {exc.reason}"


class Kube:
    def __init__(self, kubeconfig: str | None, context: str | None) -> None:
        try:
            self.api: client.ApiClient = config.new_client_from_config(  # type: ignore[no-untyped-call]
                config_file=kubeconfig, context=context
            )
            contexts, active = config.list_kube_config_contexts(config_file=kubeconfig)  # type: ignore[no-untyped-call]
        except (ConfigException, OSError, TypeError) as exc:
            where = kubeconfig or "$KUBECONFIG or ~/.kube/config"
            raise KubeconfigError(f"cannot load the kubeconfig ({where}): {exc}") from exc
        chosen = next((c for c in contexts if c.get("name") == context), None) if context else active
        self.default_namespace: str = ((chosen or {}).get("context") or {}).get("namespace") or "default"
        self.core = client.CoreV1Api(self.api)
        self.apps = client.AppsV1Api(self.api)
        self.custom = client.CustomObjectsApi(self.api)

    @staticmethod
    def _raw(method: Any, *args: Any, **kwargs: Any) -> Body:
        resp = method(*args, _preload_content=False, **kwargs)
        data: Body = json.loads(resp.data)
        return data

    def _items(self, namespaced: Any, cluster: Any, namespace: str | None, **kwargs: Any) -> list[Body]:
        if namespace is None:
            return list(self._raw(cluster, **kwargs).get("items") or [])
        return list(self._raw(namespaced, namespace, **kwargs).get("items") or [])

    # ------------------------------------------------------------ heady's resources

    def _custom(self, plural: str, namespace: str | None) -> list[Body]:
        out: Any
        try:
            if namespace is None:
                out = self.custom.list_cluster_custom_object(GROUP, VERSION, plural)
            else:
                out = self.custom.list_namespaced_custom_object(GROUP, VERSION, namespace, plural)
        except ApiException as exc:
            if exc.status == 404:
                raise MissingCRD(
                    f"the server doesn't have a resource type {plural!r} ({GROUP}/{VERSION}): "
                    "install heady's CRDs first (kubectl apply -f crds/, or the Helm chart)"
                ) from exc
            raise
        items: list[Body] = out.get("items") or []
        return items

    def services(self, namespace: str | None) -> list[Body]:
        return self._custom("headyservices", namespace)

    def service(self, namespace: str, name: str) -> Body:
        body: Any = self.custom.get_namespaced_custom_object(GROUP, VERSION, namespace, "headyservices", name)
        return dict(body)

    def signals(self, namespace: str) -> list[Body]:
        return self._custom("attentionsignals", namespace)

    def arenas(self, namespace: str | None) -> list[Body]:
        return self._custom("arenasessions", namespace)

    def create_signal(self, namespace: str, body: Body) -> Body:
        created: Any = self.custom.create_namespaced_custom_object(
            GROUP, VERSION, namespace, "attentionsignals", body
        )
        return dict(created)

    # ------------------------------------------------------------ workloads, pods, nodes

    def workloads(self, namespace: str | None) -> dict[tuple[str, str, str], Body]:
        out: dict[tuple[str, str, str], Body] = {}
        for kind, ns_call, all_call in (
            (
                "Deployment",
                self.apps.list_namespaced_deployment,
                self.apps.list_deployment_for_all_namespaces,
            ),
            (
                "StatefulSet",
                self.apps.list_namespaced_stateful_set,
                self.apps.list_stateful_set_for_all_namespaces,
            ),
        ):
            for w in self._items(ns_call, all_call, namespace):
                out[(w["metadata"]["namespace"], kind, w["metadata"]["name"])] = w
        return out

    def workload(self, namespace: str, kind: str, name: str) -> Body | None:
        read = (
            self.apps.read_namespaced_deployment
            if kind == "Deployment"
            else self.apps.read_namespaced_stateful_set
        )
        try:
            return self._raw(read, name, namespace)
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise

    def pods(self, namespace: str | None) -> list[Body]:
        return self._items(self.core.list_namespaced_pod, self.core.list_pod_for_all_namespaces, namespace)

    def pods_on_node(self, node: str) -> list[Body]:
        return self._items(
            None, self.core.list_pod_for_all_namespaces, None, field_selector=f"spec.nodeName={node}"
        )

    def node(self, name: str) -> Body:
        return self._raw(self.core.read_node, name)

    # ------------------------------------------------------------ the operator's metrics

    def saved_metric(
        self, metrics_url: str | None, operator_ns: str, operator_service: str | None
    ) -> SavedMetric:
        """heady_capacity_saved_ratio from --metrics-url, else through the apiserver's service
        proxy to the operator's Service; when neither answers, the reason instead of an error."""
        if metrics_url:
            try:
                with urllib.request.urlopen(metrics_url, timeout=METRICS_TIMEOUT_SECONDS) as resp:
                    text = resp.read().decode("utf-8", errors="replace")
            except (urllib.error.URLError, OSError, ValueError) as exc:
                return SavedMetric(source=metrics_url, reason=f"cannot read {metrics_url}: {exc}")
            return parse_saved_metric(text, metrics_url)
        try:
            if operator_service:
                svc = self._raw(self.core.read_namespaced_service, operator_service, operator_ns)
            else:
                found = (
                    self._raw(
                        self.core.list_namespaced_service, operator_ns, label_selector=OPERATOR_SELECTOR
                    ).get("items")
                    or []
                )
                if not found:
                    return SavedMetric(
                        reason=f"no operator Service labelled {OPERATOR_SELECTOR} in namespace {operator_ns} "
                        "(pass --metrics-url or --operator-namespace)"
                    )
                svc = found[0]
        except ApiException as exc:
            return SavedMetric(reason=f"cannot find the operator Service in {operator_ns}: {describe(exc)}")
        name = svc["metadata"]["name"]
        ports = (svc.get("spec") or {}).get("ports") or []
        port = next((p for p in ports if p.get("name") == "http"), ports[0] if ports else None)
        target = f"{name}:{port.get('name') or port.get('port')}" if port else name
        source = f"service {operator_ns}/{target} (apiserver proxy)"
        try:
            proxied: Any = self.core.connect_get_namespaced_service_proxy_with_path(
                target,
                operator_ns,
                "metrics",
                _preload_content=False,
                _request_timeout=METRICS_TIMEOUT_SECONDS,
            )
            text = proxied.data.decode("utf-8", errors="replace")
        except ApiException as exc:
            return SavedMetric(
                source=source, reason=f"the apiserver proxy to {source} answered {describe(exc)}"
            )
        except OSError as exc:  # urllib3 timeouts and refused connections
            return SavedMetric(source=source, reason=f"the apiserver proxy to {source} failed: {exc}")
        return parse_saved_metric(text, source)
