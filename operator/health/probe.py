"""One health probe: TCP connect, or HTTP GET where 2xx and 3xx pass (as the kubelet judges)."""

from __future__ import annotations

import asyncio
import contextlib
import time

import aiohttp

from heady_operator.health.verdict import ProbeResult


async def probe_tcp(host: str, port: int, limit_seconds: float) -> ProbeResult:
    started = time.perf_counter()
    try:
        async with asyncio.timeout(limit_seconds):
            _, writer = await asyncio.open_connection(host, port)
    except TimeoutError:
        return ProbeResult(False, time.perf_counter() - started, f"timed out after {limit_seconds:g} s")
    except OSError as exc:
        return ProbeResult(False, time.perf_counter() - started, _os_error(exc, host, port))
    seconds = time.perf_counter() - started
    writer.close()
    with contextlib.suppress(OSError):
        await writer.wait_closed()
    return ProbeResult(True, seconds, f"TCP {host}:{port} accepts connections")


async def probe_http(
    session: aiohttp.ClientSession, host: str, port: int, path: str, limit_seconds: float
) -> ProbeResult:
    url = f"http://{host}:{port}{path}"
    started = time.perf_counter()
    try:
        async with session.get(
            url, timeout=aiohttp.ClientTimeout(total=limit_seconds), allow_redirects=False
        ) as response:
            await response.read()
            seconds = time.perf_counter() - started
            ok = 200 <= response.status < 400
            return ProbeResult(ok, seconds, f"GET {url}: HTTP {response.status}")
    except TimeoutError:
        return ProbeResult(
            False, time.perf_counter() - started, f"GET {url}: timed out after {limit_seconds:g} s"
        )
    except aiohttp.ClientConnectorError as exc:
        return ProbeResult(
            False, time.perf_counter() - started, f"GET {url}: {_os_error(exc.os_error, host, port)}"
        )
    except aiohttp.ClientError as exc:
        return ProbeResult(False, time.perf_counter() - started, f"GET {url}: {type(exc).__name__}: {exc}")


def _os_error(exc: OSError, host: str, port: int) -> str:
    text = exc.strerror or str(exc) or type(exc).__name__
    return f"{host}:{port}: {text.lower()}"
