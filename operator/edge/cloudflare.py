"""The Cloudflare Access API client: list (every page), create, update, delete.

Only the endpoints heady needs, under /accounts/{account_id}/access/: `apps` (self-hosted
applications) and `policies` (reusable policies). Every answer is Cloudflare's envelope
`{success, errors: [{code, message}], messages, result, result_info}`; a failure becomes an
`AccessApiError` carrying the envelope's errors, so a condition can quote Cloudflare's words.
429 and 5xx are retried a few times (429 after its Retry-After, capped); 4xx is not.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from typing import Any

import aiohttp

log = logging.getLogger(__name__)
PER_PAGE = 50
# The API's own limit is 1,000 pages of results per list; a loop past this is a server bug.
MAX_PAGES = 1000
RETRIES = 3
MAX_RETRY_AFTER_SECONDS = 30.0


class AccessApiError(Exception):
    def __init__(self, status: int, errors: list[dict[str, Any]], what: str) -> None:
        self.status = status
        self.errors = errors
        text = "; ".join(f"{e.get('code', '?')}: {e.get('message', '')}" for e in errors) or f"HTTP {status}"
        super().__init__(f"{what}: {text}")


class AccessApi:
    """One account's Access applications and policies. `session` is the caller's (closed by it)."""

    def __init__(
        self,
        session: aiohttp.ClientSession,
        base_url: str,
        account_id: str,
        token: str,
        *,
        per_page: int = PER_PAGE,
        timeout_seconds: float = 30.0,
    ) -> None:
        self.session = session
        self.base = f"{base_url.rstrip('/')}/accounts/{account_id}/access"
        self.headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
        self.per_page = per_page
        self.timeout = aiohttp.ClientTimeout(total=timeout_seconds)
        self.requests = 0  # how many HTTP requests were made (tests count drift-free syncs)

    async def _call(
        self,
        method: str,
        path: str,
        body: Mapping[str, Any] | None = None,
        params: Mapping[str, str] | None = None,
    ) -> dict[str, Any]:
        what = f"{method} {path}"
        for attempt in range(RETRIES + 1):
            self.requests += 1
            async with self.session.request(
                method,
                f"{self.base}/{path}",
                json=body,
                params=params,
                headers=self.headers,
                timeout=self.timeout,
            ) as resp:
                try:
                    doc = await resp.json(content_type=None)
                except (ValueError, aiohttp.ContentTypeError):
                    doc = None
                if not isinstance(doc, dict):
                    doc = {
                        "success": False,
                        "errors": [{"code": resp.status, "message": "not a JSON envelope"}],
                    }
                if resp.status < 400 and doc.get("success") is True:
                    return doc
                retryable = resp.status == 429 or resp.status >= 500
                if retryable and attempt < RETRIES:
                    delay = _retry_after(resp.headers.get("Retry-After"), attempt)
                    log.info("%s answered %d; retrying in %.1f s", what, resp.status, delay)
                    await asyncio.sleep(delay)
                    continue
                raise AccessApiError(resp.status, list(doc.get("errors") or []), what)
        raise AssertionError("unreachable")

    async def _list(self, path: str) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        page = 1
        while page <= MAX_PAGES:
            doc = await self._call("GET", path, params={"page": str(page), "per_page": str(self.per_page)})
            out += list(doc.get("result") or [])
            info = doc.get("result_info") or {}
            total_pages = int(info.get("total_pages") or 1)
            if page >= total_pages:
                return out
            page += 1
        raise AccessApiError(200, [{"code": 0, "message": f"more than {MAX_PAGES} pages"}], f"GET {path}")

    async def list_apps(self) -> list[dict[str, Any]]:
        return await self._list("apps")

    async def list_policies(self) -> list[dict[str, Any]]:
        return await self._list("policies")

    async def create(self, kind: str, body: Mapping[str, Any]) -> dict[str, Any]:
        """kind: "apps" or "policies"; returns the created object (with its id, and aud for apps)."""
        result: dict[str, Any] = (await self._call("POST", kind, body))["result"]
        return result

    async def update(self, kind: str, oid: str, body: Mapping[str, Any]) -> dict[str, Any]:
        result: dict[str, Any] = (await self._call("PUT", f"{kind}/{oid}", body))["result"]
        return result

    async def delete(self, kind: str, oid: str) -> None:
        try:
            await self._call("DELETE", f"{kind}/{oid}")
        except AccessApiError as exc:
            if exc.status != 404:  # already gone is what was wanted
                raise


def _retry_after(header: str | None, attempt: int) -> float:
    try:
        if header is not None:
            return float(min(max(float(header), 0.0), MAX_RETRY_AFTER_SECONDS))
    except ValueError:
        pass
    return float(min(0.5 * 2.0**attempt, MAX_RETRY_AFTER_SECONDS))
