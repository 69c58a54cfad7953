"""The minimal reference controller heady's escalation core is measured against (issue 12).

It does the least a controller can do and still be correct for the attention benchmark: a raw
pod watch and a raw AttentionSignal watch of one namespace feed a slim in-memory index (pods by
their `app` label, each with its CPU/memory requests and resourceVersion); a service named by a
live signal has its pods PATCHed (pods/resize) to the peak requests, every other pod to the
baseline ones. No status writes, no Events, no kopf, no planner: the numbers given on the
command line are the two levels. A pod has at most one PATCH in flight and the last target wins.

It runs as its own process, as the operator does, started by benchmarks/attention_latency.py:

    python benchmarks/reference_controller.py --kubeconfig K --namespace NS \\
        --peak '{"cpu": "19m", "memory": "64Mi"}' --baseline '{"cpu": "18m", "memory": "57Mi"}'

It prints "ready" on stdout once both initial lists are indexed. Only the standard library and
kubernetes_asyncio (for the kubeconfig and the connection pool) are used.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import signal
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from kubernetes_asyncio import client as aclient
from kubernetes_asyncio import config as aconfig

log = logging.getLogger("reference")
Requests = tuple[str | None, str | None]  # (cpu, memory) as the API server spells them
DEFAULT_TTL_S = 60.0  # the CRD's default when a signal has neither expiresAt nor ttlSeconds


@dataclass
class PodRec:
    app: str
    container: str
    requests: Requests
    running: bool
    rv: int


def _rv(meta: dict[str, Any]) -> int:
    # Treating resourceVersion as a number is not promised by the API, but holds for etcd and
    # lets a late watch event (older than a PATCH response we already applied) be dropped.
    try:
        return int(meta.get("resourceVersion") or 0)
    except ValueError:
        return 0


def _parse_time(value: str) -> float:
    return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()


class Reference:
    def __init__(
        self,
        api: aclient.ApiClient,
        namespace: str,
        peak: dict[str, str],
        baseline: dict[str, str],
        concurrency: int,
    ) -> None:
        self.core = aclient.CoreV1Api(api)
        self.custom = aclient.CustomObjectsApi(api)
        self.namespace = namespace
        self.levels = {
            True: (peak.get("cpu"), peak.get("memory")),
            False: (baseline.get("cpu"), baseline.get("memory")),
        }
        self.pods: dict[str, PodRec] = {}
        self.by_app: dict[str, set[str]] = {}
        self.signals: dict[str, tuple[tuple[str, ...], float]] = {}  # name -> (services, expires)
        self.inflight: set[str] = set()
        self.sem = asyncio.Semaphore(concurrency)
        self.tasks: set[asyncio.Task[None]] = set()
        self.patches = 0
        self.failures = 0

    # ---------------------------------------------------------------- index

    def on_pod(self, kind: str, pod: dict[str, Any]) -> None:
        meta = pod.get("metadata") or {}
        name = meta.get("name", "")
        old = self.pods.get(name)
        if kind == "DELETED":
            if old is not None:
                del self.pods[name]
                self.by_app.get(old.app, set()).discard(name)
            return
        rv = _rv(meta)
        if old is not None and rv <= old.rv:
            return  # older than what a PATCH response already told us
        app = (meta.get("labels") or {}).get("app")
        if not app:
            return
        container = ((pod.get("spec") or {}).get("containers") or [{}])[0]
        req = (container.get("resources") or {}).get("requests") or {}
        rec = PodRec(
            app,
            container.get("name", ""),
            (req.get("cpu"), req.get("memory")),
            (pod.get("status") or {}).get("phase") == "Running",
            rv,
        )
        self.pods[name] = rec
        if old is not None and old.app != app:
            self.by_app.get(old.app, set()).discard(name)
        self.by_app.setdefault(app, set()).add(name)
        self.reconcile_pod(name)

    def on_signal(self, kind: str, obj: dict[str, Any]) -> None:
        meta = obj.get("metadata") or {}
        name = meta.get("name", "")
        old = self.signals.pop(name, None)
        touched = set(old[0]) if old else set()
        if kind != "DELETED":
            spec = obj.get("spec") or {}
            services = tuple(spec.get("services") or ())
            if spec.get("expiresAt"):
                expires = _parse_time(spec["expiresAt"])
            else:
                created = _parse_time(meta.get("creationTimestamp") or datetime.now().isoformat())
                expires = created + float(spec.get("ttlSeconds") or DEFAULT_TTL_S)
            left = expires - time.time()
            if left > 0:
                self.signals[name] = (services, expires)
                touched |= set(services)
                # One timer per signal: the services relax when it ends.
                asyncio.get_running_loop().call_later(left, self.expire, name, expires)
        for app in touched:
            self.reconcile_app(app)

    def expire(self, name: str, expires: float) -> None:
        cur = self.signals.get(name)
        if cur is None or cur[1] != expires:
            return
        del self.signals[name]
        for app in cur[0]:
            self.reconcile_app(app)

    def wanted_at_peak(self, app: str) -> bool:
        now = time.time()
        return any(app in services and expires > now for services, expires in self.signals.values())

    # ---------------------------------------------------------------- actuation

    def reconcile_app(self, app: str) -> None:
        for name in list(self.by_app.get(app, ())):
            self.reconcile_pod(name)

    def reconcile_pod(self, name: str) -> None:
        rec = self.pods.get(name)
        if rec is None or not rec.running:
            return
        if name in self.inflight:
            return  # looked at again when its PATCH returns: the last target wins
        target = self.levels[self.wanted_at_peak(rec.app)]
        if rec.requests == target:
            return
        self.inflight.add(name)
        task = asyncio.create_task(self.resize(name, rec.container, target))
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def resize(self, name: str, container: str, target: Requests) -> None:
        requests = {k: v for k, v in zip(("cpu", "memory"), target, strict=True) if v is not None}
        body = {"spec": {"containers": [{"name": container, "resources": {"requests": requests}}]}}
        retry = False
        try:
            async with self.sem:
                resp: Any = await self.core.patch_namespaced_pod_resize(
                    name, self.namespace, body, _preload_content=False
                )
                data = json.loads(await resp.read())
            self.patches += 1
        except Exception as exc:  # the next event or the retry below tries again
            self.failures += 1
            log.warning("resize of %s failed: %s", name, exc)
            retry = True
        else:
            self.on_pod("MODIFIED", data)
        finally:
            self.inflight.discard(name)
        if retry:
            await asyncio.sleep(0.5)
        self.reconcile_pod(name)

    # ---------------------------------------------------------------- watches

    async def watch(
        self,
        lister: Callable[..., Awaitable[Any]],
        args: tuple[Any, ...],
        handle: Callable[[str, dict[str, Any]], None],
        ready: asyncio.Event,
    ) -> None:
        while True:
            resp: Any = await lister(*args, _preload_content=False)
            data = json.loads(await resp.read())
            if "resourceVersion" not in (data.get("metadata") or {}):
                log.warning("list failed (%s), again in 1 s: %s", resp.status, str(data)[:300])
                await asyncio.sleep(1)
                continue
            for item in data.get("items", []):
                handle("ADDED", item)
            ready.set()
            rv = data["metadata"]["resourceVersion"]
            gone = False
            while not gone:
                resp = await lister(
                    *args,
                    watch=True,
                    resource_version=rv,
                    allow_watch_bookmarks=True,
                    timeout_seconds=300,
                    _preload_content=False,
                    _request_timeout=330,
                )
                async for line in resp.content:
                    if not line.strip():
                        continue
                    event = json.loads(line)
                    kind, obj = event["type"], event["object"]
                    if kind == "ERROR":
                        log.warning("watch error, listing again: %s", str(obj)[:300])
                        gone = True  # 410 Gone: list again
                        break
                    rv = (obj.get("metadata") or {}).get("resourceVersion", rv)
                    if kind != "BOOKMARK":
                        handle(kind, obj)
                resp.release()

    async def run(self) -> None:
        pods_ready, signals_ready = asyncio.Event(), asyncio.Event()
        watches = [
            asyncio.create_task(
                self.watch(self.core.list_namespaced_pod, (self.namespace,), self.on_pod, pods_ready)
            ),
            asyncio.create_task(
                self.watch(
                    self.custom.list_namespaced_custom_object,
                    ("heady.io", "v1alpha1", self.namespace, "attentionsignals"),
                    self.on_signal,
                    signals_ready,
                )
            ),
        ]
        await pods_ready.wait()
        await signals_ready.wait()
        print("ready", flush=True)
        done, _ = await asyncio.wait(watches, return_when=asyncio.FIRST_EXCEPTION)
        for task in done:
            task.result()


async def amain(args: argparse.Namespace) -> None:
    await aconfig.load_kube_config(config_file=args.kubeconfig)
    conf = aclient.Configuration.get_default_copy()
    conf.connection_pool_maxsize = args.concurrency + 4
    api = aclient.ApiClient(conf)
    ref = Reference(api, args.namespace, json.loads(args.peak), json.loads(args.baseline), args.concurrency)
    main = asyncio.create_task(ref.run())
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    stopper = asyncio.create_task(stop.wait())
    await asyncio.wait([main, stopper], return_when=asyncio.FIRST_COMPLETED)
    main.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await main
    await api.close()
    log.warning("stopped: %d resizes, %d failures", ref.patches, ref.failures)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--kubeconfig", required=True)
    parser.add_argument("--namespace", required=True)
    parser.add_argument("--peak", required=True, help='JSON requests, e.g. {"cpu": "19m", "memory": "64Mi"}')
    parser.add_argument("--baseline", required=True, help="JSON requests at baseline")
    parser.add_argument("--concurrency", type=int, default=16, help="resize PATCHes in flight at most")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr, format="%(asctime)s %(name)s: %(message)s")
    asyncio.run(amain(args))


if __name__ == "__main__":
    main()
