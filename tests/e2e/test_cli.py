"""`kubectl heady` end to end: the installed plugin, run by the real kubectl against the kwok
cluster and the operator process, and read off a real terminal (tmux) as a user sees it."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest

from tests import harness
from tests.harness import Cluster, OperatorProcess, attention, condition, deployment, headyservice

pytestmark = pytest.mark.k8s

# The console script pip installed next to this interpreter; kubectl finds it on PATH.
VENV_BIN = Path(sys.executable).parent
LIMITS = {"cpu": "2", "memory": "2Gi"}
START = {"cpu": "1", "memory": "1Gi"}
SGR = re.compile(r"\x1b\[[0-9;]*m")
T = TypeVar("T")


def wait_for(predicate: Callable[[], T], what: str, timeout: float = 90.0) -> T:
    # These tests wait on the operator's escalations; on a loaded 2-core machine those can take
    # longer than the harness's 30 s default without anything being wrong.
    return harness.wait_for(predicate, what, timeout=timeout)


def plugin_env(cluster: Cluster, **extra: str) -> dict[str, str]:
    env = dict(cluster.env, PATH=f"{VENV_BIN}{os.pathsep}{cluster.env['PATH']}", **extra)
    env.pop("NO_COLOR", None)
    return env


def heady(cluster: Cluster, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    """`kubectl heady ARGS` through the real kubectl binary (plugin discovery included), no tty."""
    res = subprocess.run(
        [str(cluster.bin_dir / "kubectl"), "heady", *args],
        env=plugin_env(cluster),
        text=True,
        capture_output=True,
        timeout=60,
    )
    if check and res.returncode != 0:
        raise AssertionError(f"kubectl heady {' '.join(args)} failed ({res.returncode}): {res.stderr}")
    return res


def _setup(cluster: Cluster, ns: str, name: str, replicas: int = 1, **spec: Any) -> None:
    cluster.apply(deployment(name, ns, replicas, START, LIMITS))
    cluster.apply(headyservice(name, ns, **spec))


def _level(cluster: Cluster, ns: str, name: str) -> str | None:
    level: str | None = cluster.get("headyservices", ns, name).get("status", {}).get("level")
    return level


def test_kubectl_discovers_the_plugin(cluster: Cluster) -> None:
    res = subprocess.run(
        [str(cluster.bin_dir / "kubectl"), "plugin", "list"],
        env=plugin_env(cluster),
        text=True,
        capture_output=True,
    )
    assert str(VENV_BIN / "kubectl-heady") in res.stdout, res.stdout + res.stderr
    assert "usage: kubectl heady" in heady(cluster, "--help").stdout


def test_focus_creates_a_signal_that_brings_peak_and_top_shows_it(
    cluster: Cluster, operator: OperatorProcess, ns: str
) -> None:
    _setup(cluster, ns, "web", replicas=2, priority="high")
    wait_for(lambda: _level(cluster, ns, "web") == "Baseline", "web at baseline")
    # At baseline the pods hold 90% of peak: 10% of the CPU is saved.
    assert heady(cluster, "top", "-n", ns).stdout.splitlines()[1].split() == [
        "web", "Baseline", "high", "0/2", "10%", "n/a", "-",
    ]  # fmt: skip

    res = heady(cluster, "focus", "web", "--for", "2m", "--intensity", "0.8", "--user", "ana", "-n", ns)
    m = re.fullmatch(
        r"attentionsignal\.heady\.io/(focus-web-\w+) created \(on web for 2m, intensity 0\.8\)\n", res.stdout
    )
    assert m, res.stdout
    sig = cluster.get("attentionsignals", ns, m.group(1))
    assert sig["spec"] == {
        "services": ["web"],
        "intensity": 0.8,
        "source": "kubectl",
        "ttlSeconds": 120,
        "user": "ana",
    }
    wait_for(
        lambda: cluster.get("headyservices", ns, "web").get("status", {}).get("podsAtPeak") == 2,
        "web at peak",
    )

    top = heady(cluster, "top", "-n", ns)
    lines = top.stdout.splitlines()
    assert lines[0].split() == ["NAME", "LEVEL", "PRIORITY", "AT-PEAK", "CPU-SAVED", "SAVED-1H", "WAITING"]
    assert lines[1].split() == ["web", "Peak", "high", "2/2", "0%", "n/a", "-"]
    assert "\x1b[" not in top.stdout, "no colour without a terminal"

    every = heady(cluster, "top", "-A")
    assert any(line.split()[:3] == [ns, "web", "Peak"] for line in every.stdout.splitlines())

    data = json.loads(heady(cluster, "top", "-n", ns, "-o", "json").stdout)
    (item,) = data["items"]
    assert (item["level"], item["podsAtPeak"], item["requests"], item["peakRequests"]) == (
        "Peak",
        2,
        {"cpu": "2", "memory": "2Gi"},
        {"cpu": "2", "memory": "2Gi"},  # no explicit peak: the template's requests, 1 CPU / 1Gi a pod
    )
    assert item["capacitySavedNow"] == {"cpu": 0.0, "memory": 0.0}
    # The operator runs outside the cluster here, so there is no Service to proxy to.
    assert data["capacitySavedLastHour"]["available"] is False
    assert "no operator Service" in data["capacitySavedLastHour"]["reason"]

    # Its /metrics are reachable directly; this operator does not export the ratio yet.
    url = f"http://127.0.0.1:{operator.port}/metrics"
    wide = heady(cluster, "top", "-n", ns, "-o", "wide", "--metrics-url", url)
    assert "MEM-SAVED" in wide.stdout.splitlines()[0]
    assert (
        f"SAVED-1H is n/a: the operator's metrics at {url} have no heady_capacity_saved_ratio" in wide.stderr
    )


BAD_FOCUS = [
    (["--for", "0s"], "error: --for '0s' is out of range: a signal lasts from 1s to 24h"),
    (["--for", "5 minutes"], "is not a duration; use a number with a unit, e.g. 90s, 5m, 1h30m"),
    (["--intensity", "1.5"], "error: --intensity '1.5' is out of range: use a value from 0 to 1"),
    (["--intensity", "high"], "error: --intensity 'high' is not a number"),
]


def test_focus_refuses_bad_input(cluster: Cluster, ns: str) -> None:
    # One test over the cases: the ns fixture names namespaces after the test, without parameters.
    cluster.apply(headyservice("web", ns))
    for args, message in BAD_FOCUS:
        res = heady(cluster, "focus", "web", "-n", ns, *args, check=False)
        assert res.returncode == 1, args
        assert message in res.stderr, (args, res.stderr)
    items = cluster.custom.list_namespaced_custom_object("heady.io", "v1alpha1", ns, "attentionsignals")[
        "items"
    ]
    assert items == [], "a refused focus creates nothing"


def test_focus_on_a_missing_service_fails(cluster: Cluster, ns: str) -> None:
    res = heady(cluster, "focus", "nope", "-n", ns, check=False)
    assert res.returncode == 1
    assert res.stderr == f'error: headyservices.heady.io "nope" not found in namespace "{ns}"\n'
    res = heady(cluster, "explain", "nope", "-n", ns, check=False)
    assert res.returncode == 1 and "not found" in res.stderr
    res = heady(cluster, "top", "--context", "no-such-context", check=False)
    assert res.returncode == 1 and "no-such-context" in res.stderr


def test_explain_says_why_the_third_high_priority_service_waits(
    cluster: Cluster, operator: OperatorProcess, ns: str
) -> None:
    for name in ("a", "b", "c"):
        _setup(cluster, ns, name, priority="high")
    for name in ("a", "b", "c"):
        wait_for(lambda n=name: _level(cluster, ns, n) == "Baseline", f"{name} at baseline")
    cluster.apply(attention("sa", ns, "a", intensity=0.9, ttlSeconds=120))
    cluster.apply(attention("sb", ns, "b", intensity=0.8, ttlSeconds=120))
    wait_for(
        lambda: _level(cluster, ns, "a") == "Peak" and _level(cluster, ns, "b") == "Peak", "a and b at peak"
    )
    heady(cluster, "focus", "c", "-n", ns, "--for", "2m", "--intensity", "0.7")
    wait_for(
        lambda: cluster.get("headyservices", ns, "c").get("status", {}).get("waitingReason"), "c waiting"
    )

    text = heady(cluster, "explain", "c", "-n", ns).stdout
    lines = text.splitlines()
    assert lines[0] == f"HeadyService {ns}/c   level Baseline   priority high (125)   pods at peak 0/1"
    assert lines[1].startswith("Why: wants peak but waits: 2 high-priority escalations in flight (a, b); ")
    assert re.search(r"^Signals: 1 not expired, 0 expired \(escalation threshold 0\.1\)$", text, re.M)
    assert re.search(r"^  focus-c-\w+  live  intensity 0\.70  source kubectl  expires in 1\d\ds$", text, re.M)
    slots = next(line for line in lines if line.startswith("High-priority slots:"))
    assert (
        slots.startswith("High-priority slots: ")
        and f"{ns}/a (high, " in slots
        and f"{ns}/b (high, " in slots
    )
    assert "Node room:" in text
    room = lines[lines.index("Node room:") + 1 :]
    assert room[0].split() == ["NODE", "PODS", "ALLOCATABLE", "REQUESTED", "FREE", "PEAK", "NEEDS", "ROOM"]
    assert room[1].split()[1] == "1" and room[1].split()[-1] == "fits"
    assert "Conflicts: none" in text
    assert "Degraded: False AsPlanned: no resize failures" in text
    assert "Ready: True HighPriorityLimit: 0/1 pods at peak;" in text
    assert (
        "Capacity saved: now cpu 10%, memory 10% of peak requests; last hour n/a (no operator Service" in text
    )
    assert len(lines) <= 25, "one screen"

    data = json.loads(heady(cluster, "explain", "c", "-n", ns, "-o", "json").stdout)
    assert data["verdictKind"] == "waiting"
    assert {(h["namespace"], h["name"]) for h in data["highPrioritySlots"]["holders"]} >= {
        (ns, "a"),
        (ns, "b"),
    }
    assert heady(cluster, "explain", "a", "-n", ns, "-o", "yaml").stdout.startswith("kind: HeadyExplain\n")


def _session(name: str, ns: str) -> dict[str, Any]:
    return {
        "apiVersion": "heady.io/v1alpha1",
        "kind": "ArenaSession",
        "metadata": {"name": name, "namespace": ns},
        "spec": {"repos": [{"name": "heady-web"}], "priority": "medium", "durationSeconds": 600},
    }


def test_arenas_shows_the_admission_queue(cluster: Cluster, operator: OperatorProcess, ns: str) -> None:
    # The e2e operator's quota is 14 CPU; a medium session plans 6.4: two run, two queue.
    for name in ("s1", "s2"):
        cluster.apply(_session(name, ns))
        wait_for(
            lambda n=name: (
                (condition(cluster.get("arenasessions", ns, n), "Admitted") or {}).get("status") == "True"
            ),
            f"{name} admitted",
        )
    for name in ("s3", "s4"):
        cluster.apply(_session(name, ns))
        wait_for(
            lambda n=name: cluster.get("arenasessions", ns, n).get("status", {}).get("queuePosition"),
            f"{name} queued",
        )
    text = heady(cluster, "arenas", "-n", ns).stdout
    rows = [line.split() for line in text.splitlines()]
    assert rows[0] == ["POS", "NAME", "STATE", "PRIORITY", "CPU", "MEMORY", "WAITING", "REASON", "MESSAGE"]
    assert [r[:3] for r in rows[1:]] == [
        ["1", "s3", "Queued"],
        ["2", "s4", "Queued"],
        ["-", "s1", "Running"],
        ["-", "s2", "Running"],
    ]
    assert rows[1][4:6] == ["6400m", "16Gi"] or rows[1][4] == "6400m"
    assert rows[1][7] == "WaitingForQuota"
    assert "waiting for quota" in text.splitlines()[1]
    data = json.loads(heady(cluster, "arenas", "-A", "-o", "json").stdout)
    mine = [i for i in data["items"] if i["namespace"] == ns]
    assert [(i["name"], i["position"]) for i in mine] == [("s3", 1), ("s4", 2), ("s1", None), ("s2", None)]


# ---------------------------------------------------------------- on a terminal


@pytest.fixture
def tmux(tmp_path: Path) -> Iterator[list[str]]:
    """A private tmux server (its own socket) whose panes stay open after their command ends."""
    tool = shutil.which("tmux")
    assert tool, "tmux is required (hack/setup.sh installs it)"
    conf = tmp_path / "tmux.conf"
    conf.write_text("set -g remain-on-exit on\nset -g history-limit 2000\nset -g status off\n")
    base = [tool, "-L", f"heady-e2e-{uuid.uuid4().hex[:8]}", "-f", str(conf)]
    yield base
    subprocess.run([*base, "kill-server"], capture_output=True)


def _in_terminal(tmux: list[str], cluster: Cluster, command: str, **env: str) -> str:
    """Run a shell command in a fresh 200x50 pane; return what it printed, with its colours.

    The capture starts at the scrollback (-S -): a pane created detached can scroll its first
    line away while tmux sizes it."""
    session = f"cli-{uuid.uuid4().hex[:6]}"
    subprocess.run(
        [*tmux, "new-session", "-d", "-s", session, "-x", "200", "-y", "50", command],
        env=plugin_env(cluster, **env),
        check=True,
    )
    wait_for(
        lambda: (
            subprocess.run(
                [*tmux, "display-message", "-p", "-t", session, "#{pane_dead}"],
                capture_output=True,
                text=True,
            ).stdout.strip()
            == "1"
        ),
        f"`{command}` to finish in tmux",
        timeout=60,
    )
    return subprocess.run(
        [*tmux, "capture-pane", "-p", "-e", "-J", "-S", "-", "-t", session],
        capture_output=True,
        text=True,
        check=True,
    ).stdout


def test_top_on_a_terminal_has_colour_and_without_one_has_none(
    cluster: Cluster, operator: OperatorProcess, ns: str, tmux: list[str]
) -> None:
    _setup(cluster, ns, "web", priority="high")
    _setup(cluster, ns, "api")
    wait_for(
        lambda: _level(cluster, ns, "web") == "Baseline" and _level(cluster, ns, "api") == "Baseline",
        "baseline",
    )
    cluster.apply(attention("look", ns, "web", intensity=0.9, ttlSeconds=120))
    wait_for(lambda: _level(cluster, ns, "web") == "Peak", "web at peak")

    screen = _in_terminal(tmux, cluster, f"TERM=xterm-256color kubectl heady top -n {ns}")
    plain = SGR.sub("", screen)
    lines = [
        line.rstrip() for line in plain.splitlines() if line.strip() and not line.startswith("Pane is dead")
    ]
    assert lines[0].split() == ["NAME", "LEVEL", "PRIORITY", "AT-PEAK", "CPU-SAVED", "SAVED-1H", "WAITING"], (
        repr(screen)
    )
    assert lines[1].split() == ["api", "Baseline", "medium", "0/1", "10%", "n/a", "-"]
    assert lines[2].split() == ["web", "Peak", "high", "1/1", "0%", "n/a", "-"]
    # Levels are coloured (green Baseline, bold yellow Peak), whatever order tmux writes the SGR codes in.
    assert re.search(r"\x1b\[[0-9;]*32[0-9;]*mBaseline", screen), repr(screen)
    assert re.search(r"\x1b\[[0-9;]*33[0-9;]*m(\x1b\[[0-9;]*m)*Peak", screen), repr(screen)
    # The columns line up on screen exactly as without colour.
    assert lines == [line.rstrip() for line in heady(cluster, "top", "-n", ns).stdout.splitlines()]

    screen = _in_terminal(tmux, cluster, f"NO_COLOR=1 TERM=xterm-256color kubectl heady top -n {ns}; true")
    assert "Peak" in screen and not SGR.search(screen), "NO_COLOR turns colour off on a terminal"
    assert "\x1b[" not in heady(cluster, "top", "-n", ns).stdout, "no colour when stdout is not a terminal"


def test_saved_1h_through_the_apiserver_proxy_says_why_it_is_na(cluster: Cluster, ns: str) -> None:
    """The chart's operator Service, found by its labels; kwok has no pod behind it, so the
    apiserver's service proxy answers with no endpoints, and top says so instead of failing."""
    cluster.apply(headyservice("web", ns))
    cluster.apply(
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {
                "name": "heady-operator",
                "namespace": ns,
                "labels": {"app.kubernetes.io/component": "operator", "app.kubernetes.io/part-of": "heady"},
            },
            "spec": {
                "selector": {"app.kubernetes.io/component": "operator"},
                "ports": [{"name": "http", "port": 8080, "targetPort": 8080}],
            },
        }
    )
    res = heady(cluster, "top", "-n", ns, "-o", "wide", "--operator-namespace", ns)
    assert res.stdout.splitlines()[1].split()[:7] == ["web", "Unknown", "medium", "0/0", "n/a", "n/a", "80"]
    assert f"SAVED-1H is n/a: the apiserver proxy to service {ns}/heady-operator:http answered" in res.stderr
    assert "no endpoints available" in res.stderr
