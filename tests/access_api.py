"""A local Cloudflare Access API for tests: an aiohttp server that enforces the documented
request shapes of /accounts/{account_id}/access/apps and .../access/policies, answers in
Cloudflare's envelope ({success, errors: [{code, message}], messages, result, result_info}),
paginates lists (page, per_page; result_info page/per_page/count/total_count/total_pages) and
refuses what Cloudflare refuses: a missing or wrong token (403), an unknown field or rule shape
(400), a domain already used by another application, a policy still used by an application.

Tests inject failures (`fail_next`: 429 with Retry-After, 5xx) and edit objects behind the
operator's back (drift). `serve_in_thread` runs it for e2e tests, whose operator is a process.
"""

from __future__ import annotations

import asyncio
import hashlib
import re
import threading
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from aiohttp import web

R = TypeVar("R")
DECISIONS = {"allow", "deny", "non_identity", "bypass"}
# Cloudflare's AccessRule shapes heady may send: rule key -> the one field inside it.
RULES = {
    "email": "email",
    "email_domain": "domain",
    "group": "id",
    "service_token": "token_id",
    "ip": "ip",
}
POLICY_FIELDS = {"name", "decision", "include", "exclude", "require", "session_duration"}
APP_FIELDS = {"name", "domain", "type", "session_duration", "policies"}
DURATION = re.compile(r"^([0-9]+(ns|us|µs|ms|s|m|h))+$")


class Refused(Exception):
    def __init__(self, status: int, code: int, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


@dataclass
class AccessApiServer:
    account: str = "0123456789abcdef0123456789abcdef"
    token: str = "test-token"
    apps: dict[str, dict[str, Any]] = field(default_factory=dict)
    policies: dict[str, dict[str, Any]] = field(default_factory=dict)
    # (status, code, message, retry_after) answered to the next requests instead of serving them.
    fail_next: list[tuple[int, int, str, str | None]] = field(default_factory=list)
    calls: Counter[str] = field(default_factory=Counter)  # "GET apps", "POST policies", ...
    max_per_page: int = 1000

    def application(self) -> web.Application:
        app = web.Application(middlewares=[self._envelope])
        base = "/client/v4/accounts/{account}/access/{kind}"
        app.router.add_get(base, self._list)
        app.router.add_post(base, self._create)
        app.router.add_put(base + "/{oid}", self._update)
        app.router.add_delete(base + "/{oid}", self._delete)
        return app

    # ------------------------------------------------------------ plumbing

    @web.middleware
    async def _envelope(self, request: web.Request, handler: Any) -> web.StreamResponse:
        kind = request.match_info.get("kind", "?")
        self.calls[f"{request.method} {kind}"] += 1
        if self.fail_next:
            status, code, message, retry_after = self.fail_next.pop(0)
            headers = {"Retry-After": retry_after} if retry_after is not None else {}
            return _error(status, code, message, headers)
        try:
            if request.headers.get("Authorization") != f"Bearer {self.token}":
                raise Refused(403, 10000, "Authentication error")
            if request.match_info.get("account") != self.account:
                raise Refused(404, 7003, "Could not route to /accounts: account not found")
            if kind not in ("apps", "policies"):
                raise Refused(404, 7000, "No route for that URI")
            result = await handler(request)
        except Refused as exc:
            return _error(exc.status, exc.code, exc.message)
        assert isinstance(result, web.StreamResponse)
        return result

    async def _body(self, request: web.Request) -> dict[str, Any]:
        if request.content_type != "application/json":
            raise Refused(400, 6003, "Invalid request headers: Content-Type must be application/json")
        try:
            body = await request.json()
        except ValueError as exc:
            raise Refused(400, 6007, "Malformed JSON in request body") from exc
        if not isinstance(body, dict):
            raise Refused(400, 6007, "request body must be an object")
        return body

    # ------------------------------------------------------------ validation (the documented shapes)

    def _rule(self, rule: Any, where: str) -> None:
        if not isinstance(rule, dict) or len(rule) != 1:
            raise Refused(400, 12130, f"{where}: a rule is an object with exactly one selector")
        ((key, inner),) = rule.items()
        if key not in RULES:
            raise Refused(400, 12130, f"{where}: unknown rule type {key}")
        want = RULES[key]
        if not isinstance(inner, dict) or set(inner) != {want} or not isinstance(inner[want], str):
            raise Refused(400, 12130, f"{where}: rule {key} must be {{{key}: {{{want}: string}}}}")
        if key == "email_domain" and inner[want].startswith("@"):
            raise Refused(400, 12130, f"{where}: email_domain.domain is a domain without @")

    def _policy(self, body: dict[str, Any], oid: str | None) -> dict[str, Any]:
        unknown = set(body) - POLICY_FIELDS
        if unknown:
            raise Refused(400, 12130, f"unknown field(s) {sorted(unknown)}")
        if not isinstance(body.get("name"), str) or not body["name"]:
            raise Refused(400, 12130, "name is required")
        if body.get("decision") not in DECISIONS:
            raise Refused(400, 12130, f"decision must be one of {sorted(DECISIONS)}")
        if not isinstance(body.get("include"), list) or not body["include"]:
            raise Refused(400, 12130, "include must be a non-empty array")
        for part in ("include", "exclude", "require"):
            value = body.get(part, [])
            if not isinstance(value, list):
                raise Refused(400, 12130, f"{part} must be an array")
            for i, rule in enumerate(value):
                self._rule(rule, f"{part}[{i}]")
        out = {"exclude": [], "require": [], **body, "id": oid or str(uuid.uuid4())}
        out["created_at"] = "2026-11-29T00:00:00Z"
        return out

    def _app(self, body: dict[str, Any], oid: str | None) -> dict[str, Any]:
        unknown = set(body) - APP_FIELDS
        if unknown:
            raise Refused(400, 12130, f"unknown field(s) {sorted(unknown)}")
        if body.get("type") != "self_hosted":
            raise Refused(400, 12130, "type must be self_hosted for this test server")
        if not isinstance(body.get("domain"), str) or not body["domain"]:
            raise Refused(400, 12130, "domain is required for self_hosted applications")
        if "session_duration" in body and not DURATION.match(str(body["session_duration"])):
            raise Refused(400, 12130, "session_duration must look like 24h or 30m")
        for other in self.apps.values():
            if other["domain"] == body["domain"] and other["id"] != oid:
                raise Refused(
                    400, 12130, f"domain {body['domain']} is already used by application {other['id']}"
                )
        refs = body.get("policies", [])
        if not isinstance(refs, list):
            raise Refused(400, 12130, "policies must be an array")
        seen: set[int] = set()
        for ref in refs:
            if not isinstance(ref, dict) or set(ref) != {"id", "precedence"}:
                raise Refused(400, 12130, "policies[] must be {id, precedence}")
            if ref["id"] not in self.policies:
                raise Refused(404, 12131, f"policy {ref['id']} not found")
            if not isinstance(ref["precedence"], int) or ref["precedence"] in seen:
                raise Refused(400, 12130, "precedence must be a unique integer per application")
            seen.add(ref["precedence"])
        aud = self.apps[oid]["aud"] if oid else hashlib.sha256(uuid.uuid4().bytes).hexdigest()
        return {**body, "policies": list(refs), "id": oid or str(uuid.uuid4()), "aud": aud}

    def _shown(self, kind: str, obj: dict[str, Any]) -> dict[str, Any]:
        if kind == "policies":
            return obj
        # Applications list their policies expanded, as the API does.
        expanded = [
            {**self.policies[r["id"]], "precedence": r["precedence"]}
            for r in obj["policies"]
            if r["id"] in self.policies
        ]
        return {**obj, "policies": expanded, "created_at": "2026-11-29T00:00:00Z"}

    # ------------------------------------------------------------ handlers

    async def _list(self, request: web.Request) -> web.Response:
        kind = request.match_info["kind"]
        try:
            page = int(request.query.get("page", "1"))
            per_page = int(request.query.get("per_page", "25"))
        except ValueError as exc:
            raise Refused(400, 6003, "page and per_page must be integers") from exc
        if page < 1 or not 1 <= per_page <= self.max_per_page:
            raise Refused(400, 6003, f"page >= 1 and 1 <= per_page <= {self.max_per_page}")
        items = list(getattr(self, kind).values())
        total_pages = max(1, -(-len(items) // per_page))
        chunk = items[(page - 1) * per_page : page * per_page]
        return _ok(
            [self._shown(kind, o) for o in chunk],
            {
                "page": page,
                "per_page": per_page,
                "count": len(chunk),
                "total_count": len(items),
                "total_pages": total_pages,
            },
        )

    async def _create(self, request: web.Request) -> web.Response:
        kind = request.match_info["kind"]
        body = await self._body(request)
        obj = self._policy(body, None) if kind == "policies" else self._app(body, None)
        getattr(self, kind)[obj["id"]] = obj
        return _ok(self._shown(kind, obj), status=201)

    async def _update(self, request: web.Request) -> web.Response:
        kind, oid = request.match_info["kind"], request.match_info["oid"]
        store: dict[str, dict[str, Any]] = getattr(self, kind)
        if oid not in store:
            raise Refused(404, 12131, f"{kind[:-1]} {oid} not found")
        body = await self._body(request)
        obj = self._policy(body, oid) if kind == "policies" else self._app(body, oid)
        store[oid] = obj
        return _ok(self._shown(kind, obj))

    async def _delete(self, request: web.Request) -> web.Response:
        kind, oid = request.match_info["kind"], request.match_info["oid"]
        store: dict[str, dict[str, Any]] = getattr(self, kind)
        if oid not in store:
            raise Refused(404, 12131, f"{kind[:-1]} {oid} not found")
        if kind == "policies" and any(r["id"] == oid for a in self.apps.values() for r in a["policies"]):
            raise Refused(400, 12132, f"policy {oid} is still used by an application")
        del store[oid]
        return _ok({"id": oid})

    # ------------------------------------------------------------ for assertions

    def app_named(self, name: str) -> dict[str, Any] | None:
        return next((a for a in self.apps.values() if a.get("name") == name), None)

    def policy_named(self, name: str) -> dict[str, Any] | None:
        return next((p for p in self.policies.values() if p.get("name") == name), None)

    def writes(self) -> int:
        return sum(n for k, n in self.calls.items() if not k.startswith("GET"))


def _ok(result: Any, info: dict[str, int] | None = None, status: int = 200) -> web.Response:
    doc: dict[str, Any] = {"success": True, "errors": [], "messages": [], "result": result}
    if info is not None:
        doc["result_info"] = info
    return web.json_response(doc, status=status)


def _error(status: int, code: int, message: str, headers: dict[str, str] | None = None) -> web.Response:
    doc = {"success": False, "errors": [{"code": code, "message": message}], "messages": [], "result": None}
    return web.json_response(doc, status=status, headers=headers)


async def start(server: AccessApiServer, host: str = "127.0.0.1") -> tuple[web.AppRunner, str]:
    """Serve on a free loopback port; returns the runner (cleanup() stops it) and the API base URL."""
    runner = web.AppRunner(server.application())
    await runner.setup()
    site = web.TCPSite(runner, host, 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    return runner, f"http://{host}:{port}/client/v4"


class ThreadedServer:
    """The server on its own event loop in a thread (for e2e tests, which are synchronous)."""

    def __init__(self, server: AccessApiServer) -> None:
        self.server = server
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.runner: web.AppRunner | None = None
        self.url = ""

    def __enter__(self) -> ThreadedServer:
        self.thread.start()
        self.runner, self.url = asyncio.run_coroutine_threadsafe(start(self.server), self.loop).result(10)
        return self

    def run(self, fn: Callable[[AccessApiServer], R]) -> R:
        """fn(server) on the server's loop: reads and edits never race a request."""

        async def call() -> R:
            return fn(self.server)

        return asyncio.run_coroutine_threadsafe(call(), self.loop).result(10)

    def __exit__(self, *_: object) -> None:
        if self.runner is not None:
            asyncio.run_coroutine_threadsafe(self.runner.cleanup(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
