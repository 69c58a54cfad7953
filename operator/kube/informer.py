"""List + watch of one resource, decoded once into slim records: what client-go calls an informer.

- The first listing is paginated (`limit`/`continue`), so 10,000 pods never arrive as one
  100 MB response, and it is the only listing at start (kopf does not watch these resources).
- The watch resumes from the last resourceVersion seen, with bookmarks so that version stays
  fresh on quiet resources; a 410 Gone (the version was compacted away) relists, and objects
  missing from the new listing are reported DELETED.
- Connection errors back off exponentially (0.2 s .. 10 s) and resume.

Events go to a plain callback on the event loop; nothing here knows what they mean.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Generic, TypeVar

import aiohttp
import msgspec
from kubernetes_asyncio.client import ApiClient
from kubernetes_asyncio.client.exceptions import ApiException

from heady_operator import metrics
from heady_operator.kube.objects import ObjectMeta, RawEvent, RawList, Status

log = logging.getLogger(__name__)
T = TypeVar("T")

_list_decoder = msgspec.json.Decoder(RawList)
_event_decoder = msgspec.json.Decoder(RawEvent)
_status_decoder = msgspec.json.Decoder(Status)


class _Meta(msgspec.Struct):
    metadata: ObjectMeta = msgspec.field(default_factory=ObjectMeta)


_meta_decoder = msgspec.json.Decoder(_Meta)


class Gone(Exception):
    """The watch's resourceVersion is too old: list again."""


class Informer(Generic[T]):
    def __init__(
        self,
        api: ApiClient,
        path: str,
        kind: type[T],
        on_event: Callable[[str, T], None],
        *,
        page_size: int = 500,
        watch_timeout_seconds: int = 300,
    ) -> None:
        self.api = api
        self.path = path
        self.on_event = on_event
        self.page_size = page_size
        self.watch_timeout_seconds = watch_timeout_seconds
        self._decoder = msgspec.json.Decoder(kind)
        self._kind = kind
        self.resource_version = ""
        self.synced = asyncio.Event()
        self.relists = 0
        self._known: set[tuple[str, str]] = set()

    async def run(self) -> None:
        backoff = 0.2
        while True:
            try:
                if not self.resource_version:
                    await self._list()
                    self.synced.set()
                await self._watch()
                backoff = 0.2
            except Gone:
                log.info("watch of %s expired (410); listing again", self.path)
                self.resource_version = ""
                self.relists += 1
            except asyncio.CancelledError:
                raise
            except (aiohttp.ClientError, OSError, TimeoutError, ApiException, msgspec.DecodeError) as exc:
                log.warning("watch of %s failed (%s); retrying in %.1f s", self.path, exc, backoff)
                await asyncio.sleep(backoff)
                backoff = min(10.0, backoff * 2)

    async def _get(self, params: list[tuple[str, str]], timeout: float | None) -> aiohttp.ClientResponse:  # noqa: ASYNC109
        resp: aiohttp.ClientResponse = await self.api.call_api(
            self.path,
            "GET",
            query_params=params,
            auth_settings=["BearerToken"],
            _preload_content=False,
            _request_timeout=timeout,
        )
        return resp

    async def _list(self) -> None:
        seen: set[tuple[str, str]] = set()
        cont = ""
        while True:
            params = [("limit", str(self.page_size))]
            if cont:
                params.append(("continue", cont))
            resp = await self._get(params, 120)
            try:
                page = _list_decoder.decode(await resp.read())
            finally:
                resp.release()
            for raw in page.items:
                obj = self._decode(raw)
                if obj is None:
                    continue
                meta = _meta_of(obj)
                seen.add((meta.namespace, meta.name))
                self._deliver("ADDED", obj)
            cont = page.metadata.continue_
            if not cont:
                self.resource_version = page.metadata.resourceVersion
                break
        # After a relist: what was known and is gone was deleted while we were not watching.
        for namespace, name in self._known - seen:
            gone = msgspec.convert({"metadata": {"namespace": namespace, "name": name}}, self._kind)
            self._deliver("DELETED", gone)
        self._known = seen

    async def _watch(self) -> None:
        params = [
            ("watch", "true"),
            ("allowWatchBookmarks", "true"),
            ("resourceVersion", self.resource_version),
            ("timeoutSeconds", str(self.watch_timeout_seconds)),
        ]
        resp = await self._get(params, self.watch_timeout_seconds + 30)
        try:
            while True:
                line = await resp.content.readline()
                if not line:
                    return  # the server ended the watch (timeoutSeconds); resume from here
                if line.isspace():
                    continue
                event = _event_decoder.decode(line)
                if event.type == "ERROR":
                    status = _status_decoder.decode(event.object)
                    if status.code == 410:
                        raise Gone(status.message)
                    raise ApiException(status=status.code, reason=status.message)
                if event.type == "BOOKMARK":
                    self.resource_version = _meta_decoder.decode(event.object).metadata.resourceVersion
                    continue
                obj = self._decode(event.object)
                if obj is None:
                    continue
                meta = _meta_of(obj)
                key = (meta.namespace, meta.name)
                if event.type == "DELETED":
                    self._known.discard(key)
                else:
                    self._known.add(key)
                self.resource_version = meta.resourceVersion or self.resource_version
                self._deliver(event.type, obj)
        finally:
            resp.release()

    def _decode(self, raw: bytes | msgspec.Raw) -> T | None:
        """One object that does not decode is skipped and counted; it must not stall the watch."""
        try:
            return self._decoder.decode(raw)
        except msgspec.DecodeError as exc:
            metrics.LOOP_ERRORS.labels("informer").inc()
            log.error("skipped an object of %s that does not decode: %s", self.path, exc)
            return None

    def _deliver(self, event: str, obj: T) -> None:
        """A bug triggered by one object is isolated to it: logged, counted, and the watch goes on."""
        try:
            self.on_event(event, obj)
        except Exception:
            metrics.LOOP_ERRORS.labels("informer").inc()
            meta = _meta_of(obj)
            log.exception("handling %s %s/%s of %s failed", event, meta.namespace, meta.name, self.path)


def _meta_of(obj: object) -> ObjectMeta:
    meta = getattr(obj, "metadata", None)
    return meta if isinstance(meta, ObjectMeta) else ObjectMeta()
