"""The operator's HTTP server: /healthz, /metrics (and the attention ingest endpoint)."""

from __future__ import annotations

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from heady_operator.config import Settings
from heady_operator.escalation import EscalationController
from heady_operator.metrics import REGISTRY

CONTROLLER: web.AppKey[EscalationController] = web.AppKey("controller", EscalationController)


async def healthz(request: web.Request) -> web.Response:
    controller = request.app[CONTROLLER]
    if controller.healthy():
        return web.json_response({"status": "ok"})
    return web.json_response({"status": "stalled"}, status=503)


async def metrics(_: web.Request) -> web.Response:
    return web.Response(body=generate_latest(REGISTRY), headers={"Content-Type": CONTENT_TYPE_LATEST})


def build_app(controller: EscalationController) -> web.Application:
    app = web.Application(client_max_size=64 * 1024)
    app[CONTROLLER] = controller
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/metrics", metrics)
    return app


async def start(cfg: Settings, controller: EscalationController) -> web.AppRunner:
    runner = web.AppRunner(build_app(controller), access_log=None)
    await runner.setup()
    await web.TCPSite(runner, cfg.http_host, cfg.http_port).start()
    return runner
