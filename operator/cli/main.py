"""`kubectl-heady`: the entry point kubectl finds on PATH and runs as `kubectl heady ...`.

Exit status: 0 done, 1 an error (bad flags, a missing object, an API refusal); the message on
stderr starts with "error:" as kubectl's do.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import TextIO

import urllib3
from kubernetes.client.exceptions import ApiException

from heady_operator.cli import views
from heady_operator.cli.args import Options, UsageError, parse
from heady_operator.cli.kube import Kube, KubeconfigError, MissingCRD, describe
from heady_operator.cli.render import dump, human_duration, wants_colour
from heady_operator.config import Settings

# What the operator runs with unless its HEADY_* environment says otherwise; the CLI cannot see
# the operator's environment, so it labels these as defaults where it prints them.
_DEFAULTS = Settings.model_fields
MAX_HIGH = int(_DEFAULTS["max_high_priority_escalations"].default)
THRESHOLD = float(_DEFAULTS["attention_threshold"].default)
DEFAULT_TTL = int(_DEFAULTS["default_signal_ttl_seconds"].default)


class NotFound(RuntimeError):
    pass


def _namespace(kube: Kube, opts: Options) -> str | None:
    if opts.all_namespaces:
        return None
    return opts.namespace or kube.default_namespace


def _service(kube: Kube, namespace: str, name: str) -> dict[str, object]:
    try:
        return kube.service(namespace, name)
    except ApiException as exc:
        if exc.status == 404:
            raise NotFound(f'headyservices.heady.io "{name}" not found in namespace "{namespace}"') from exc
        raise


def focus(kube: Kube, opts: Options, out: TextIO, err: TextIO) -> int:
    ns = _namespace(kube, opts)
    assert ns is not None  # parse() refuses -A for focus
    for name in opts.services:
        _service(kube, ns, name)
    body = views.focus_signal(ns, opts.services, opts.intensity, opts.ttl_seconds, opts.user, opts.source)
    created = kube.create_signal(ns, body)
    name = created["metadata"]["name"]
    if opts.intensity < THRESHOLD:
        err.write(
            f"Warning: intensity {opts.intensity} is below the operator's escalation threshold "
            f"({THRESHOLD} by default): the signal is recorded but will not raise {', '.join(opts.services)}\n"
        )
    if opts.output in ("json", "yaml"):
        out.write(dump(created, opts.output))
    elif opts.output == "name":
        out.write(f"attentionsignal.heady.io/{name}\n")
    else:
        out.write(
            f"attentionsignal.heady.io/{name} created "
            f"(on {', '.join(opts.services)} for {human_duration(opts.ttl_seconds)}, intensity {opts.intensity:g})\n"
        )
    return 0


def top(kube: Kube, opts: Options, out: TextIO, err: TextIO) -> int:
    ns = _namespace(kube, opts)
    services = kube.services(ns)
    workloads = kube.workloads(ns) if services else {}
    pods = kube.pods(ns) if services else []
    metric = kube.saved_metric(opts.metrics_url, opts.operator_namespace, opts.operator_service)
    data = views.top_data(views.top_items(services, workloads, pods, metric, datetime.now(UTC)), metric)
    if opts.output in ("json", "yaml"):
        out.write(dump(data, opts.output))
        return 0
    if not data["items"]:
        err.write(f"No HeadyServices found{'' if ns is None else f' in {ns} namespace'}.\n")
        return 0
    out.write(views.render_top(data, opts.output == "wide", ns is None, wants_colour(out)))
    note = views.top_note(data)
    if opts.output == "wide" and note:
        err.write(note + "\n")
    return 0


def explain(kube: Kube, opts: Options, out: TextIO, err: TextIO) -> int:
    ns = _namespace(kube, opts)
    assert ns is not None
    name = opts.services[0]
    svc = _service(kube, ns, name)
    ref = svc.get("spec", {}).get("workload", {})  # type: ignore[attr-defined]
    workload = kube.workload(ns, ref.get("kind", "Deployment"), ref.get("name", ""))
    pods = views.pods_of(workload, kube.pods(ns))
    unreadable: dict[str, str] = {}
    try:
        everyone: list[dict[str, object]] | None = kube.services(None)
    except ApiException as exc:
        everyone = None
        unreadable["services"] = f"cannot list HeadyServices in all namespaces: {describe(exc)}"
    nodes: dict[str, dict[str, object]] = {}
    node_pods: dict[str, list[dict[str, object]]] = {}
    for node in sorted({p.get("spec", {}).get("nodeName") for p in pods} - {None, ""}):
        try:
            nodes[node] = kube.node(node)
            node_pods[node] = kube.pods_on_node(node)
        except ApiException as exc:
            unreadable[f"node/{node}"] = describe(exc)
    metric = kube.saved_metric(opts.metrics_url, opts.operator_namespace, opts.operator_service)
    now = datetime.now(UTC)
    data = views.explain_data(
        views.ExplainInput(
            service=svc,
            workload=workload,
            pods=pods,
            signals=kube.signals(ns),
            all_services=everyone,
            nodes=nodes,
            node_pods=node_pods,
            metric=metric,
            now=now,
            max_high=MAX_HIGH,
            threshold=THRESHOLD,
            default_ttl_seconds=DEFAULT_TTL,
            unreadable=unreadable,
        )
    )
    if opts.output in ("json", "yaml"):
        out.write(dump(data, opts.output))
    else:
        out.write(views.render_explain(data, wants_colour(out), now))
    return 0


def arenas(kube: Kube, opts: Options, out: TextIO, err: TextIO) -> int:
    ns = _namespace(kube, opts)
    items = views.arena_items(kube.arenas(ns), datetime.now(UTC))
    if opts.output in ("json", "yaml"):
        out.write(dump({"kind": "HeadyArenaQueue", "items": items}, opts.output))
        return 0
    if not items:
        err.write(f"No ArenaSessions found{'' if ns is None else f' in {ns} namespace'}.\n")
        return 0
    out.write(views.render_arenas(items, opts.output == "wide", ns is None, wants_colour(out)))
    return 0


COMMANDS: dict[str, Callable[[Kube, Options, TextIO, TextIO], int]] = {
    "focus": focus,
    "top": top,
    "explain": explain,
    "arenas": arenas,
}


def main(argv: Sequence[str] | None = None) -> int:
    try:
        opts = parse(sys.argv[1:] if argv is None else argv)
        kube = Kube(opts.kubeconfig, opts.context)
        return COMMANDS[opts.command](kube, opts, sys.stdout, sys.stderr)
    except (UsageError, KubeconfigError, MissingCRD, NotFound) as exc:
        print(f"error: {exc}", file=sys.stderr)
    except ApiException as exc:
        print(f"error: {describe(exc)}", file=sys.stderr)
    except (OSError, urllib3.exceptions.HTTPError) as exc:
        print(f"error: cannot reach the cluster: {exc}", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
