"""Trace converters (benchmarks/traces/): a Common Log Format access log and per-minute invocation
counts become trace CSVs the simulator loads. Each test writes its own small sample."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

# Appended, never prepended: the repo's operator/ directory must not shadow the stdlib `operator`.
sys.path.append(str(Path(__file__).resolve().parents[2]))

from benchmarks.simulation import load_trace_csv, transitions
from benchmarks.traces import clf, invocations
from benchmarks.traces.tracefile import dns_label

ACCESS_LOG = """\
h1 - - [01/Jul/1995:00:00:01 -0400] "GET /history/apollo/ HTTP/1.0" 200 6245
h1 - - [01/Jul/1995:00:00:31 -0400] "GET /history/apollo/a.gif HTTP/1.0" 200 1204
h2 - - [01/Jul/1995:00:00:11 -0400] "GET / HTTP/1.0" 200 7074
h2 - - [01/Jul/1995:00:00:12 -0400] "GET /ksc.html?x=1 HTTP/1.0" 200 7074
h1 - - [01/Jul/1995:00:02:01 -0400] "GET /shuttle/countdown/ HTTP/1.0" 200 3985
h1 - - [01/Jul/1995:01:00:00 -0400] "GET /shuttle/missions/x.html HTTP/1.0" 304 0
this is not a log line
h3 - - [01/Jul/1995:00:00:20 -0400] "GET" 400 -
h4 - - [32/Jul/1995:00:00:20 -0400] "GET /x/ HTTP/1.0" 200 1
h5 - - [01/Jul/1995:00:00:40 -0400] "GET /Images/NASA-logo.GIF HTTP/1.0" 200 786 "http://ref" "agent"
"""


def test_service_of_a_path() -> None:
    assert clf.service_of("/shuttle/countdown/x.html") == "shuttle"
    assert clf.service_of("/shuttle/countdown/x.html", depth=2) == "shuttle-countdown"
    assert clf.service_of("/") == "root"
    assert clf.service_of("/index.html") == "root"
    assert clf.service_of("/history/") == "history"
    assert clf.service_of("/Images/a.gif?v=2") == "images"
    assert dns_label("My_Section!!") == "my-section"
    assert dns_label("___") == "root"
    assert len(dns_label("a" * 100)) == 63


def test_access_log_is_sessionised_per_host(tmp_path: Path) -> None:
    log = tmp_path / "access.log"
    log.write_text(ACCESS_LOG)
    summary = clf.Summary()
    rows = clf.sessionise(
        clf.parse(log.read_text().splitlines(), summary), gap=1800, tail=60, summary=summary
    )
    assert summary.lines == 10
    assert summary.requests == 7
    assert dict(summary.unparsed) == {"not a CLF line": 1, "no path in the request": 1, "bad timestamp": 1}
    got = sorted((r.user, r.service, r.time, r.duration) for r in rows)
    assert got == [
        # h1: history from its first request until it moved to shuttle; shuttle until 60 s after its
        # last request of that session; 58 min of silence (> 30 min gap) start a new session.
        ("h1", "history", 0.0, 120.0),
        ("h1", "shuttle", 120.0, 60.0),
        ("h1", "shuttle", 3599.0, 60.0),
        ("h2", "root", 10.0, 61.0),  # "/" and "/ksc.html" are both the top level
        ("h5", "images", 39.0, 60.0),
    ]
    assert summary.hosts == 3
    assert summary.sessions == 4
    out = tmp_path / "trace.csv"
    assert clf.main([str(log), "-o", str(out)]) == 0
    trace = load_trace_csv(out)
    assert trace.load is not None and trace.load.refused == {}
    assert {s.name for s in trace.services} == {"history", "shuttle", "root", "images"}
    assert transitions(trace) == 1  # h1: history -> shuttle (and shuttle again is no move)


def test_access_log_options(tmp_path: Path) -> None:
    log = tmp_path / "access.log"
    log.write_text(ACCESS_LOG)
    out = tmp_path / "trace.csv"
    assert (
        clf.main([str(log), "-o", str(out), "--gap", "7200", "--exclude", r"(?i)\.gif$", "--depth", "2"]) == 0
    )
    trace = load_trace_csv(out)
    # The .gif hits are gone; with a 2 h gap h1 stays in one session.
    assert sorted((e.user, e.service, e.start, e.duration) for e in trace.events) == [
        ("h1", "history-apollo", 0.0, 120.0),
        ("h1", "shuttle-countdown", 120.0, 3479.0),
        ("h1", "shuttle-missions", 3599.0, 60.0),
        ("h2", "root", 10.0, 61.0),
    ]
    empty = tmp_path / "empty.log"
    empty.write_text("nothing here\n")
    assert clf.main([str(empty), "-o", str(out)]) == 1


def _invocations(path: Path, rows: list[tuple[str, str, str, str, dict[int, int | str]]]) -> Path:
    header = ["HashOwner", "HashApp", "HashFunction", "Trigger", *map(str, range(1, 1441))]
    lines = [",".join(header)]
    for owner, app, fn, trigger, counts in rows:
        lines.append(",".join([owner, app, fn, trigger, *(str(counts.get(m, 0)) for m in range(1, 1441))]))
    path.write_text("\n".join(lines) + "\n")
    return path


APP_A = "a1b2c3d4e5f6a7b8c9d0"
APP_B = "a1b2c3d4ffff00001111"  # shares its first 8 characters with APP_A


def test_invocations_per_minute_become_attended_minutes(tmp_path: Path) -> None:
    day = _invocations(
        tmp_path / "d01.csv",
        [
            ("o1", APP_A, "f1", "http", {1: 3, 2: 1, 5: 2}),
            ("o1", APP_A, "f2", "timer", {3: 1}),
            ("o2", APP_B, "f3", "http", {1440: 7}),
        ],
    )
    counts = invocations.read_counts([day])
    names = invocations.names(counts.by_service, "app")
    assert names == {APP_A: "app-a1b2c3d4e5f6", APP_B: "app-a1b2c3d4ffff"}  # widened until unique
    rows = invocations.rows_of(counts.by_service, names)
    assert sorted((r.service, r.time, r.duration, r.intensity, r.user) for r in rows) == [
        ("app-a1b2c3d4e5f6", 0.0, 180.0, 1.0, ""),  # minutes 1-3 (f1 and f2 summed)
        ("app-a1b2c3d4e5f6", 240.0, 60.0, 1.0, ""),
        ("app-a1b2c3d4ffff", 1439 * 60.0, 60.0, 1.0, ""),
    ]
    http = invocations.read_counts([day], trigger="http")
    assert http.skipped_trigger == 1
    assert [(r.time, r.duration) for r in invocations.rows_of({APP_A: http.by_service[APP_A]}, names)] == [
        (0.0, 120.0),
        (240.0, 60.0),
    ]
    scaled = invocations.rows_of({APP_A: counts.by_service[APP_A]}, names, scaled=True)
    assert [(r.time, r.duration, r.intensity) for r in scaled] == [
        (0.0, 60.0, 1.0),
        (60.0, 120.0, 0.33),
        (240.0, 60.0, 0.67),
    ]
    busy = invocations.rows_of({APP_A: counts.by_service[APP_A]}, names, min_count=2)
    assert [(r.time, r.duration) for r in busy] == [(0.0, 60.0), (240.0, 60.0)]


def test_invocation_files_are_consecutive_days_and_load_as_a_trace(tmp_path: Path) -> None:
    d1 = _invocations(tmp_path / "d01.csv", [("o", APP_A, "f1", "http", {1: 1})])
    d2 = _invocations(
        tmp_path / "d02.csv", [("o", APP_A, "f1", "http", {1: 1}), ("o", APP_A, "f2", "queue", {2: 4})]
    )
    out = tmp_path / "trace.csv"
    assert invocations.main([str(d1), str(d2), "-o", str(out), "--by", "function"]) == 0
    trace = load_trace_csv(out)
    assert trace.load is not None
    assert not trace.load.user_column  # invocations carry no user: no prediction input
    # A function is named after its own hash (the app's is in the key, not the name).
    assert sorted((e.service, e.start) for e in trace.events) == [
        ("fn-f1", 0.0),
        ("fn-f1", 86_400.0),
        ("fn-f2", 86_460.0),
    ]
    assert transitions(trace) == 0
    assert invocations.main([str(d1), "-o", str(out), "--top", "1"]) == 0


def test_a_file_that_is_not_per_minute_counts_is_refused(tmp_path: Path) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_text("HashApp,1\nx,2\n")
    with pytest.raises(ValueError, match="missing column"):
        invocations.read_counts([bad])
    assert invocations.main([str(bad), "-o", str(tmp_path / "out.csv")]) == 1


def test_a_cell_that_is_not_a_count_costs_its_minute_not_the_file(tmp_path: Path) -> None:
    day = _invocations(
        tmp_path / "d01.csv",
        [("o", APP_A, "f1", "http", {1: "x", 2: -3, 3: "1.5", 4: "nan", 5: "2.0", 6: 1})],
    )
    counts = invocations.read_counts([day])
    assert counts.bad_cells == 4
    assert counts.bad_examples[0].endswith("minute 1: 'x'")
    assert counts.by_service[APP_A][:6] == [0, 0, 0, 0, 2, 1]
    assert invocations.main([str(day), "-o", str(tmp_path / "out.csv")]) == 0
