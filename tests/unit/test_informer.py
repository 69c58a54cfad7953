"""One bad object never stops an informer: it is skipped or isolated, counted and logged."""

from __future__ import annotations

from typing import Any

from heady_operator.kube.informer import Informer
from heady_operator.kube.objects import Pod
from heady_operator.metrics import REGISTRY


def _errors() -> float:
    return REGISTRY.get_sample_value("heady_loop_errors_total", {"loop": "informer"}) or 0.0


def test_a_handler_bug_on_one_object_is_isolated() -> None:
    seen: list[str] = []

    def on_event(event: str, pod: Pod) -> None:
        if pod.metadata.name == "poison":
            raise RuntimeError("bug")
        seen.append(pod.metadata.name)

    inf: Informer[Pod] = Informer(None, "/api/v1/pods", Pod, on_event)  # type: ignore[arg-type]
    before = _errors()
    for name in ("a", "poison", "b"):
        obj = inf._decode(b'{"metadata": {"namespace": "ns", "name": "%s"}}' % name.encode())
        assert obj is not None
        inf._deliver("ADDED", obj)
    assert seen == ["a", "b"]
    assert _errors() == before + 1


def test_an_object_that_does_not_decode_is_skipped() -> None:
    got: list[Any] = []
    inf: Informer[Pod] = Informer(None, "/api/v1/pods", Pod, lambda e, o: got.append(o))  # type: ignore[arg-type]
    before = _errors()
    assert inf._decode(b'{"metadata": {"name": 42}}') is None
    assert inf._decode(b'{"metadata": {"name": "ok"}, "spec": {"containers": []}}') is not None
    assert _errors() == before + 1
