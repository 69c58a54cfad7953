"""The operator's HTTP server: /healthz, /metrics and the attention ingest endpoint.

POST /v1/attention takes one event or a list (fields: docs/attention-ingest.md) and answers
202 once it is queued (durably, when Redis is configured), 400 with the reason for bad input,
401 without the bearer token when one is configured, 429 when overloaded (retry after the
Retry-After seconds), 503 when Redis is configured but down.
"""

from __future__ import annotations

import json
from typing import Protocol

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from heady_operator import metrics as m
from heady_operator.config import Settings
from heady_operator.ingest import AttentionIntake, Refused
from heady_operator.metrics import REGISTRY


class Health(Protocol):
    def problems(self) -> list[str]: ...


HEALTH: web.AppKey[Health] = web.AppKey("health", Health)
INTAKE: web.AppKey[AttentionIntake] = web.AppKey("intake", AttentionIntake)


async def healthz(request: web.Request) -> web.Response:
    problems = request.app[HEALTH].problems()
    # The ingest's availability is reported, not judged: AttentionSignal objects work without Redis.
    ingest = request.app[INTAKE].state
    if not problems:
        return web.json_response({"status": "ok", "ingest": ingest})
    return web.json_response({"status": "stalled", "ingest": ingest, "problems": problems}, status=503)


async def metrics(_: web.Request) -> web.Response:
    return web.Response(body=generate_latest(REGISTRY), headers={"Content-Type": CONTENT_TYPE_LATEST})


async def post_attention(request: web.Request) -> web.Response:
    intake = request.app[INTAKE]
    if not intake.authorized(request.headers.get("Authorization")):
        m.INGEST_EVENTS.labels("http", "unauthorized").inc()
        return _error(
            401, "a bearer token is required (Authorization: Bearer <token>)", {"WWW-Authenticate": "Bearer"}
        )
    try:
        payload = json.loads(await request.read())
    except ValueError as exc:
        m.INGEST_EVENTS.labels("http", "invalid").inc()
        return _error(400, f"the body is not JSON: {exc}")
    try:
        accepted = await intake.submit(payload)
    except Refused as exc:
        headers = {"Retry-After": str(exc.retry_after)} if exc.retry_after else None
        return _error(exc.status, exc.message, headers)
    return web.json_response(
        {"accepted": len(accepted.ids), "ids": accepted.ids, "durable": accepted.durable}, status=202
    )


def _error(status: int, message: str, headers: dict[str, str] | None = None) -> web.Response:
    return web.json_response({"error": message}, status=status, headers=headers)


def build_app(health: Health, intake: AttentionIntake) -> web.Application:
    app = web.Application(client_max_size=64 * 1024)
    app[HEALTH] = health
    app[INTAKE] = intake
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/metrics", metrics)
    app.router.add_post("/v1/attention", post_attention)
    return app


async def start(cfg: Settings, health: Health, intake: AttentionIntake) -> web.AppRunner:
    runner = web.AppRunner(build_app(health, intake), access_log=None)
    await runner.setup()
    try:
        await web.TCPSite(runner, cfg.http_host, cfg.http_port).start()
    except BaseException:
        await runner.cleanup()  # nothing half-started stays bound to the port
        raise
    return runner
