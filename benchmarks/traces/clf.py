"""Web server access log (Common Log Format) -> attention trace CSV.

    .venv/bin/python benchmarks/traces/clf.py access.log -o trace.csv
    .venv/bin/python benchmarks/traces/clf.py access.log.gz -o trace.csv --gap 1800 --tail 60 --depth 1

A CLF line: `host ident authuser [10/Oct/2000:13:55:36 -0700] "GET /path HTTP/1.0" 200 2326`
(the Combined format's two extra fields are ignored). A service is a path prefix (`--depth`
segments: /shuttle/countdown/x.html -> shuttle; a file at the top, /index.html or /, -> root),
a user is a host. Each host's requests are split into sessions where it was silent for more than
`--gap` seconds; within a session the host attends one service from its first request there
until it requests another service, and the last one until `--tail` seconds after its last
request (reading the last page). Each such visit is one row at intensity 1.

Lines that do not parse are counted and skipped (the summary on stderr says how many).
"""

from __future__ import annotations

import argparse
import gzip
import re
import sys
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

sys.path.append(str(Path(__file__).resolve().parents[2]))  # appended: stdlib `operator` must win

from benchmarks.traces.tracefile import Row, dns_label, write_rows

LINE = re.compile(r'^(\S+) \S+ \S+ \[([^\]]+)\] "([^"]*)" (\S+) \S+')
TIME_FORMAT = "%d/%b/%Y:%H:%M:%S %z"
# An AttentionSignal lasts at most a day (models/common.MAX_SIGNAL_SECONDS): longer visits are
# written as consecutive rows.
MAX_ROW_SECONDS = 86_400.0


@dataclass(frozen=True)
class Request:
    host: str
    t: float  # POSIX seconds
    path: str


@dataclass
class Summary:
    lines: int = 0
    requests: int = 0
    unparsed: Counter[str] = field(default_factory=Counter)
    excluded: int = 0
    hosts: int = 0
    sessions: int = 0
    rows: int = 0


def service_of(path: str, depth: int = 1) -> str:
    """The service a request path belongs to: its first `depth` directory segments as a DNS label."""
    path = path.split("?", 1)[0].split("#", 1)[0]
    parts = [p for p in path.split("/") if p]
    if parts and not path.endswith("/"):
        parts = parts[:-1]  # the last segment names a file, not a section
    return dns_label("-".join(parts[:depth]), "root")


def parse(
    lines: Iterable[str], summary: Summary, exclude: re.Pattern[str] | None = None
) -> Iterator[Request]:
    for line in lines:
        summary.lines += 1
        m = LINE.match(line)
        if not m:
            summary.unparsed["not a CLF line"] += 1
            continue
        host, stamp, request, _status = m.groups()
        try:
            t = datetime.strptime(stamp, TIME_FORMAT).timestamp()
        except ValueError:
            summary.unparsed["bad timestamp"] += 1
            continue
        words = request.split()
        # "GET /path HTTP/1.0", or an old "GET /path"; anything without a path is not a page view.
        path = words[1] if len(words) >= 2 else ""
        if not path.startswith("/"):
            summary.unparsed["no path in the request"] += 1
            continue
        if exclude is not None and exclude.search(path):
            summary.excluded += 1
            continue
        summary.requests += 1
        yield Request(host, t, path)


def sessionise(
    requests: Iterable[Request],
    gap: float = 1800.0,
    tail: float = 60.0,
    depth: int = 1,
    summary: Summary | None = None,
) -> list[Row]:
    """Rows of attention (times relative to the first request): see the module docstring."""
    summary = summary or Summary()
    by_host: dict[str, list[tuple[float, str]]] = {}
    for r in requests:
        by_host.setdefault(r.host, []).append((r.t, service_of(r.path, depth)))
    if not by_host:
        return []
    t0 = min(t for hits in by_host.values() for t, _ in hits)
    rows: list[Row] = []
    summary.hosts = len(by_host)
    for host, hits in by_host.items():
        hits.sort()
        visit_start, visit_service = hits[0]
        last = hits[0][0]
        summary.sessions += 1
        for t, svc in hits[1:]:
            if t - last > gap:  # the session ended: the last visit lasted until `tail` after its last hit
                rows += _rows(host, visit_service, visit_start, min(last + tail, t), t0)
                visit_start, visit_service = t, svc
                summary.sessions += 1
            elif svc != visit_service:  # attention moved to another section
                rows += _rows(host, visit_service, visit_start, t, t0)
                visit_start, visit_service = t, svc
            last = t
        rows += _rows(host, visit_service, visit_start, last + tail, t0)
    summary.rows = len(rows)
    return rows


def _rows(host: str, service: str, start: float, end: float, t0: float) -> list[Row]:
    out = []
    t = start
    while end - t > 1e-9:
        d = min(MAX_ROW_SECONDS, end - t)
        out.append(Row(round(t - t0, 3), service, 1.0, round(d, 3), host))
        t += d
    return out


def _open(path: Path) -> Iterator[str]:
    opener = gzip.open if path.suffix == ".gz" else open
    # Old logs are not always UTF-8; a replaced byte in a host or path is harmless here.
    with opener(path, "rt", encoding="utf-8", errors="replace") as fh:
        yield from fh


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("log", type=Path, nargs="+", help="access log(s), plain or .gz, read in order")
    parser.add_argument("-o", "--output", type=Path, required=True, help="trace CSV to write")
    parser.add_argument("--gap", type=float, default=1800.0, help="inactivity (s) that ends a host's session")
    parser.add_argument(
        "--tail", type=float, default=60.0, help="attention (s) after a session's last request"
    )
    parser.add_argument("--depth", type=int, default=1, help="path segments that name a service")
    parser.add_argument(
        "--exclude", help="regex of request paths to skip (e.g. '\\.(gif|jpg|png|css|js|ico)$')"
    )
    args = parser.parse_args(argv)
    if args.gap <= 0 or args.tail <= 0 or args.depth < 1:
        parser.error("--gap and --tail must be positive, --depth at least 1")
    summary = Summary()
    exclude = re.compile(args.exclude) if args.exclude else None
    requests = [r for path in args.log for r in parse(_open(path), summary, exclude)]
    rows = sessionise(requests, args.gap, args.tail, args.depth, summary)
    if not rows:
        print(f"no requests parsed from {len(args.log)} file(s) ({summary.lines} lines)", file=sys.stderr)
        return 1
    write_rows(rows, args.output)
    unparsed = sum(summary.unparsed.values())
    services = len({r.service for r in rows})
    print(
        f"{summary.lines} lines: {summary.requests} requests, {unparsed} unparsed "
        f"({dict(summary.unparsed) or 'none'}), {summary.excluded} excluded; {summary.hosts} hosts, "
        f"{summary.sessions} sessions, {services} services -> {summary.rows} rows in {args.output}",
        file=sys.stderr,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
