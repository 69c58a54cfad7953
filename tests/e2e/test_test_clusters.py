"""The local test clusters are not open to the network and are not left behind (issue 17, item 8).

A throwaway kwok cluster is started with hack/cluster.py exactly as the e2e fixture and the
benchmarks start theirs; every socket its processes listen on must be bound to loopback, and
`hack/cluster.py stop-test-clusters` (what `make test` runs on exit) must stop it - or, with
HEADY_KEEP_CLUSTERS=1, keep it and say how to stop it.
"""

from __future__ import annotations

import ipaddress
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.harness import ROOT, wait_for

CACHE = Path(os.environ.get("HEADY_CACHE", Path.home() / ".cache" / "heady"))
LISTEN = "0A"  # TCP_LISTEN in /proc/net/tcp


def _cluster_py(name: str, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(ROOT / "hack" / "cluster.py"), *args],
        env={**os.environ, "HEADY_CLUSTER_NAME": name, "HEADY_NODES": "1", **env},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def _pids(name: str) -> dict[str, int]:
    pid_dir = CACHE / "kwok" / "clusters" / name / "pids"
    return {p.stem: int(p.read_text().strip()) for p in pid_dir.glob("*.pid")}


def _alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"  # a zombie has stopped, only not reaped yet


def _listening() -> dict[int, tuple[str, int]]:
    """socket inode -> (address, port) of every listening TCP socket (IPv4 and IPv6)."""
    out: dict[int, tuple[str, int]] = {}
    for table, width in (("/proc/net/tcp", 4), ("/proc/net/tcp6", 16)):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            local, state, inode = fields[1], fields[3], int(fields[9])
            if state != LISTEN:
                continue
            hex_addr, hex_port = local.split(":")
            raw = bytes.fromhex(hex_addr)
            # The kernel writes each 32-bit word in host (little-endian) order.
            words = b"".join(raw[i : i + 4][::-1] for i in range(0, len(raw), 4))
            address = str(ipaddress.ip_address(words if width == 16 else words[:4]))
            out[inode] = (address, int(hex_port, 16))
    return out


def _sockets_of(pid: int, listening: dict[int, tuple[str, int]]) -> list[tuple[str, int]]:
    found = []
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        if target.startswith("socket:["):
            inode = int(target[len("socket:[") : -1])
            if inode in listening:
                found.append(listening[inode])
    return found


@pytest.fixture
def throwaway() -> Iterator[str]:
    name = f"exposure-{uuid.uuid4().hex[:6]}"
    try:
        up = _cluster_py(name, "up")
        assert up.returncode == 0, up.stderr[-3000:]
        yield name
    finally:
        _cluster_py(name, "down")


@pytest.mark.k8s
def test_every_cluster_component_listens_on_loopback_only_and_make_test_stops_it(throwaway: str) -> None:
    pids = _pids(throwaway)
    assert set(pids) >= {
        "etcd",
        "kube-apiserver",
        "kube-controller-manager",
        "kube-scheduler",
        "kwok-controller",
    }
    listening = _listening()
    for component, pid in pids.items():
        sockets = _sockets_of(pid, listening)
        assert sockets, f"{component} listens on nothing?"
        exposed = [s for s in sockets if not ipaddress.ip_address(s[0]).is_loopback]
        assert exposed == [], f"{component} (pid {pid}) listens beyond loopback: {exposed}"

    kept = _cluster_py(throwaway, "stop-test-clusters", throwaway, "not-a-cluster", HEADY_KEEP_CLUSTERS="1")
    assert kept.returncode == 0, kept.stderr
    assert f"HEADY_CLUSTER_NAME={throwaway} python3 hack/cluster.py down" in kept.stderr
    assert "not-a-cluster" not in kept.stderr
    assert all(_alive(pid) for pid in pids.values())

    stopped = _cluster_py(throwaway, "stop-test-clusters", throwaway)
    assert stopped.returncode == 0, stopped.stderr
    assert f"stopped test cluster {throwaway!r}" in stopped.stderr
    wait_for(lambda: not any(_alive(pid) for pid in pids.values()), "the cluster's processes to exit", 30)
