"""Every cluster call `kubectl heady` makes, with the official (sync) client.

Bodies come back as the API's own JSON (camelCase dicts), the same shape kubectl shows, so the
pure views read them without a conversion layer.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any
from urllib.parse import quote

import urllib3
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
    """The cluster as kubectl sees it: the kubeconfig's current (or --context) context.

    Requests go through the client's ApiClient (auth, TLS, proxies from the kubeconfig) by path,
    not through the generated CoreV1Api/AppsV1Api classes: importing those builds thousands of
    pydantic models, seconds of start-up for a command that makes three GETs.
    """

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

    def _request(
        self,
        method: str,
        path: str,
        query: dict[str, str] | None = None,
        body: Body | None = None,
        timeout: float | None = None,
    ) -> bytes:
        headers = {"Accept": "application/json"}
        if body is not None:
            headers["Content-Type"] = "application/json"
        verb, url, header_params, data, _ = self.api.param_serialize(
            method,
            path,
            query_params=list((query or {}).items()) or None,
            header_params=headers,
            body=body,
            auth_settings=["BearerToken"],
        )
        resp: Any = self.api.call_api(
            verb, url, header_params=header_params, body=data, _request_timeout=timeout
        )
        raw: bytes = resp.read()
        if not 200 <= resp.status < 300:
            raise ApiException(http_resp=resp)
        return raw

    def _get(self, path: str, **query: str) -> Body:
        data: Body = json.loads(self._request("GET", path, query))
        return data

    def _items(self, path: str, **query: str) -> list[Body]:
        return list(self._get(path, **query).get("items") or [])

    # ------------------------------------------------------------ heady's resources

    def _custom(self, plural: str, namespace: str | None) -> list[Body]:
        try:
            return self._items(_path(f"/apis/{GROUP}/{VERSION}", namespace, plural))
        except ApiException as exc:
            if exc.status == 404:
                raise MissingCRD(
                    f"the server doesn't have a resource type {plural!r} ({GROUP}/{VERSION}): "
                    "install heady's CRDs first (kubectl apply -f crds/, or the Helm chart)"
                ) from exc
            raise

    def services(self, namespace: str | None) -> list[Body]:
        return self._custom("headyservices", namespace)

    def service(self, namespace: str, name: str) -> Body:
        return self._get(_path(f"/apis/{GROUP}/{VERSION}", namespace, "headyservices", name))

    def signals(self, namespace: str) -> list[Body]:
        return self._custom("attentionsignals", namespace)

    def arenas(self, namespace: str | None) -> list[Body]:
        return self._custom("arenasessions", namespace)

    def create_signal(self, namespace: str, body: Body) -> Body:
        path = _path(f"/apis/{GROUP}/{VERSION}", namespace, "attentionsignals")
        created: Body = json.loads(self._request("POST", path, body=body))
        return created

    # ------------------------------------------------------------ workloads, pods, nodes

    def workloads(self, namespace: str | None) -> dict[tuple[str, str, str], Body]:
        out: dict[tuple[str, str, str], Body] = {}
        for kind, plural in (("Deployment", "deployments"), ("StatefulSet", "statefulsets")):
            for w in self._items(_path("/apis/apps/v1", namespace, plural)):
                out[(w["metadata"]["namespace"], kind, w["metadata"]["name"])] = w
        return out

    def workload(self, namespace: str, kind: str, name: str) -> Body | None:
        plural = "deployments" if kind == "Deployment" else "statefulsets"
        try:
            return self._get(_path("/apis/apps/v1", namespace, plural, name))
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise

    def pods(self, namespace: str | None) -> list[Body]:
        return self._items(_path("/api/v1", namespace, "pods"))

    def pods_on_node(self, node: str) -> list[Body]:
        return self._items("/api/v1/pods", fieldSelector=f"spec.nodeName={node}")

    def node(self, name: str) -> Body:
        return self._get(f"/api/v1/nodes/{quote(name, safe='')}")

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
                svc = self._get(_path("/api/v1", operator_ns, "services", operator_service))
            else:
                found = self._items(
                    _path("/api/v1", operator_ns, "services"), labelSelector=OPERATOR_SELECTOR
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
        path = _path("/api/v1", operator_ns, "services", target) + "/proxy/metrics"
        try:
            text = self._request("GET", path, timeout=METRICS_TIMEOUT_SECONDS).decode(
                "utf-8", errors="replace"
            )
        except ApiException as exc:
            return SavedMetric(
                source=source,
                reason=f"the apiserver proxy to service {operator_ns}/{target} answered {describe(exc)}",
            )
        except (OSError, urllib3.exceptions.HTTPError) as exc:
            return SavedMetric(
                source=source, reason=f"the apiserver proxy to service {operator_ns}/{target} failed: {exc}"
            )
        return parse_saved_metric(text, source)


def _path(prefix: str, namespace: str | None, plural: str, name: str | None = None) -> str:
    path = prefix if namespace is None else f"{prefix}/namespaces/{quote(namespace, safe='')}"
    path += f"/{plural}"
    return path if name is None else f"{path}/{quote(name, safe=':')}"
