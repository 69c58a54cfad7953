"""The operator's HTTP server: /healthz, /metrics and the attention ingest endpoint.

POST /v1/attention takes one event or a list (fields: docs/attention-ingest.md) and answers
202 once it is queued (durably, when Redis is configured), 400 with the reason for bad input,
401 without the bearer token when one is configured, 413 for a body over 64 KiB, 415 unless the
body is declared `application/json`, 429 when overloaded (retry after the Retry-After seconds),
503 when Redis is configured but down. Every answer is JSON with an `error` message when it is
not 202; an unexpected exception is a 500 with its message, logged and counted
(heady_ingest_events_total{path="http",outcome="failed"}), never a dropped connection.
"""

from __future__ import annotations

import json
import logging
from typing import Protocol

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from heady_operator import metrics as m
from heady_operator.config import Settings
from heady_operator.ingest import AttentionIntake, Refused
from heady_operator.metrics import REGISTRY

log = logging.getLogger(__name__)

# The largest request body taken (aiohttp's client_max_size in build_app): 100 events fit.
MAX_BODY_BYTES = 64 * 1024


class Health(Protocol):
    def problems(self) -> list[str]: ...


HEALTH: web.AppKey[Health] = web.AppKey("health", Health)
INTAKE: web.AppKey[AttentionIntake] = web.AppKey("intake", AttentionIntake)


async def healthz(request: web.Request) -> web.Response:
    health = request.app[HEALTH]
    problems = health.problems()
    # The ingest's availability is reported, not judged: AttentionSignal objects work without Redis.
    ingest = request.app[INTAKE].state
    body: dict[str, object] = {"status": "ok" if not problems else "stalled"}
    role = getattr(health, "role", lambda: None)()
    if role is not None:
        # leader, standby or fenced (leader election); a standby is healthy, a fenced leader is not.
        body["role"] = role
    body["ingest"] = ingest
    if not problems:
        return web.json_response(body)
    return web.json_response({**body, "problems": problems}, status=503)


async def metrics(_: web.Request) -> web.Response:
    return web.Response(body=generate_latest(REGISTRY), headers={"Content-Type": CONTENT_TYPE_LATEST})


async def post_attention(request: web.Request) -> web.Response:
    try:
        return await _post_attention(request)
    except web.HTTPException:
        raise
    except Exception as exc:  # one request's bug must never take the endpoint down
        log.exception("POST /v1/attention failed")
        m.INGEST_EVENTS.labels("http", "failed").inc()
        return _error(500, f"the operator failed to take this request ({type(exc).__name__}: {exc})")


async def _post_attention(request: web.Request) -> web.Response:
    intake = request.app[INTAKE]
    if not intake.authorized(request.headers.get("Authorization")):
        m.INGEST_EVENTS.labels("http", "unauthorized").inc()
        return _error(
            401, "a bearer token is required (Authorization: Bearer <token>)", {"WWW-Authenticate": "Bearer"}
        )
    problem = _media_type_problem(request)
    if problem is not None:
        m.INGEST_EVENTS.labels("http", "invalid").inc()
        return _error(415, problem)
    too_large = f"the body is larger than {MAX_BODY_BYTES} bytes; send fewer events per request"
    if request.content_length is not None and request.content_length > MAX_BODY_BYTES:
        m.INGEST_EVENTS.labels("http", "invalid").inc()
        return _error(413, too_large)
    try:
        raw = await request.read()
    except web.HTTPRequestEntityTooLarge:
        m.INGEST_EVENTS.labels("http", "invalid").inc()
        return _error(413, too_large)
    try:
        payload = json.loads(raw)
    except ValueError as exc:  # also UnicodeDecodeError: the body is not UTF-8
        m.INGEST_EVENTS.labels("http", "invalid").inc()
        return _error(400, f"the body is not JSON: {exc}")
    except RecursionError:
        m.INGEST_EVENTS.labels("http", "invalid").inc()
        return _error(400, "the body is not an attention event: JSON nested far too deeply")
    try:
        accepted = await intake.submit(payload)
    except Refused as exc:
        headers = {"Retry-After": str(exc.retry_after)} if exc.retry_after else None
        return _error(exc.status, exc.message, headers)
    return web.json_response(
        {"accepted": len(accepted.ids), "ids": accepted.ids, "durable": accepted.durable}, status=202
    )


def _media_type_problem(request: web.Request) -> str | None:
    """Why the declared Content-Type is not JSON (a form post, text, none), or None when it is."""
    declared = request.headers.get("Content-Type")
    media = request.content_type  # without parameters, lower-case
    charset = (request.charset or "utf-8").lower()
    if declared and (media == "application/json" or media.endswith("+json")) and charset in ("utf-8", "utf8"):
        return None
    what = f"Content-Type {declared!r}" if declared else "no Content-Type"
    return f"the body must be JSON in UTF-8 (Content-Type: application/json), got {what}"


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


# The server this process has bound, per address. A start-up that fails after binding (kopf then
# retries the whole start-up handler) must not leave the port taken by a server nobody owns: the
# retry would fail with "address already in use" while the stale server kept answering /healthz.
_BOUND: dict[tuple[str, int], web.AppRunner] = {}


async def start(cfg: Settings, health: Health, intake: AttentionIntake) -> web.AppRunner:
    """Serve on cfg.http_host:http_port; replaces a server an earlier start-up attempt left bound."""
    address = (cfg.http_host, cfg.http_port)
    await stop(address)
    runner = web.AppRunner(build_app(health, intake), access_log=None)
    await runner.setup()
    try:
        await web.TCPSite(runner, cfg.http_host, cfg.http_port).start()
    except BaseException:
        await runner.cleanup()  # nothing half-started stays bound to the port
        raise
    _BOUND[address] = runner
    return runner


async def stop(address: tuple[str, int] | None = None) -> None:
    """Stop the server bound at `address` (every server of this process when None). Idempotent."""
    for key in [address] if address is not None else list(_BOUND):
        runner = _BOUND.pop(key, None)
        if runner is not None:
            await runner.cleanup()
