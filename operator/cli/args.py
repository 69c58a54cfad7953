"""The command line of `kubectl heady`, parsed without touching the cluster.

kubectl hands a plugin its arguments untouched and refuses global flags before the plugin
name, so the plugin itself accepts kubectl's flags (-n, -A, --context, --kubeconfig, -o), in
front of or after the subcommand, as users type them.
"""

from __future__ import annotations

import argparse
import math
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass, replace

# The AttentionSignal CRD bounds ttlSeconds to 1..86400; refusing here gives a message that
# names the flag instead of the apiserver's schema error.
MAX_TTL_SECONDS = 86400
DEFAULT_OPERATOR_NAMESPACE = "heady-system"
OUTPUTS = ("wide", "json", "yaml", "name")
_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(h|m|s)")
_UNIT_SECONDS = {"h": 3600, "m": 60, "s": 1}


class UsageError(ValueError):
    """A command line that cannot be run; the message says what to type instead."""


def parse_duration(text: str, flag: str = "--for") -> int:
    """Seconds from a kubectl-style duration: 90s, 5m, 1h30m, 1.5h; a bare number is seconds."""
    raw = text.strip()
    if re.fullmatch(r"\d+", raw):
        seconds = float(raw)
    else:
        pos, seconds = 0, 0.0
        for m in _DURATION_PART.finditer(raw):
            if m.start() != pos:
                break
            seconds += float(m.group(1)) * _UNIT_SECONDS[m.group(2)]
            pos = m.end()
        if pos != len(raw) or not raw:
            raise UsageError(
                f"{flag} {text!r} is not a duration; use a number with a unit, e.g. 90s, 5m, 1h30m"
            )
    whole = math.ceil(seconds)
    if whole < 1 or whole > MAX_TTL_SECONDS:
        raise UsageError(f"{flag} {text!r} is out of range: a signal lasts from 1s to 24h")
    return whole


def parse_intensity(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise UsageError(f"--intensity {text!r} is not a number; use a value from 0 to 1, e.g. 0.8") from None
    if not math.isfinite(value) or not 0.0 <= value <= 1.0:
        raise UsageError(f"--intensity {text!r} is out of range: use a value from 0 to 1, e.g. 0.8")
    return value


@dataclass(frozen=True)
class Options:
    """What every subcommand shares: where to talk to and how to print."""

    command: str
    namespace: str | None = None
    all_namespaces: bool = False
    context: str | None = None
    kubeconfig: str | None = None
    output: str | None = None
    # top/explain: where the operator's /metrics are.
    metrics_url: str | None = None
    operator_namespace: str = DEFAULT_OPERATOR_NAMESPACE
    operator_service: str | None = None
    # focus/explain
    services: tuple[str, ...] = ()
    ttl_seconds: int = 300
    intensity: float = 1.0
    user: str | None = None
    source: str = "kubectl"


def _common(parser: argparse.ArgumentParser, suppress: bool) -> None:
    # Subparsers get SUPPRESS defaults so a flag given before the subcommand is not reset by it.
    def d(value: object) -> object:
        return argparse.SUPPRESS if suppress else value

    parser.add_argument("-n", "--namespace", default=d(None), help="the namespace (default: the context's)")
    parser.add_argument(
        "-A", "--all-namespaces", action="store_true", default=d(False), help="every namespace"
    )
    parser.add_argument("--context", default=d(None), help="the kubeconfig context to use")
    parser.add_argument("--kubeconfig", default=d(None), help="path to the kubeconfig file")
    parser.add_argument("-o", "--output", default=d(None), choices=OUTPUTS, help="wide, json, yaml or name")


def _metrics(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--metrics-url",
        help="the operator's /metrics URL (default: through the apiserver's proxy to the operator Service)",
    )
    parser.add_argument(
        "--operator-namespace",
        default=os.environ.get("HEADY_OPERATOR_NAMESPACE", DEFAULT_OPERATOR_NAMESPACE),
        help="where the operator's Service is (default: $HEADY_OPERATOR_NAMESPACE or heady-system)",
    )
    parser.add_argument(
        "--operator-service",
        help="the operator's Service name (default: the one labelled app.kubernetes.io/component=operator)",
    )


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        raise UsageError(message)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="kubectl heady",
        description="Look at and steer heady: attention-driven baseline/peak capacity.",
    )
    _common(parser, suppress=False)
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    focus = sub.add_parser("focus", help="put attention on a HeadyService (creates an AttentionSignal)")
    _common(focus, suppress=True)
    focus.add_argument("services", nargs="+", metavar="SERVICE")
    focus.add_argument("--for", dest="duration", default="5m", help="how long, e.g. 90s, 5m, 1h (default 5m)")
    focus.add_argument("--intensity", default="1.0", help="0..1 (default 1.0)")
    focus.add_argument("--user", help="the user or session the attention belongs to")
    focus.add_argument("--source", default="kubectl", help="where the signal comes from (default kubectl)")

    top = sub.add_parser("top", help="HeadyServices: level, pods at peak, waiting reasons, capacity saved")
    _common(top, suppress=True)
    _metrics(top)

    explain = sub.add_parser("explain", help="why a HeadyService is (not) at peak, on one screen")
    _common(explain, suppress=True)
    explain.add_argument("services", nargs=1, metavar="SERVICE")
    _metrics(explain)

    arenas = sub.add_parser("arenas", help="the ArenaSession admission queue with positions and reasons")
    _common(arenas, suppress=True)
    return parser


def parse(argv: Sequence[str]) -> Options:
    ns = build_parser().parse_args(list(argv))
    command: str = ns.command
    output = ns.output
    allowed = {
        "focus": ("name", "json", "yaml"),
        "top": ("wide", "json", "yaml"),
        "explain": ("json", "yaml"),
        "arenas": ("wide", "json", "yaml"),
    }[command]
    if output is not None and output not in allowed:
        raise UsageError(f"-o {output} is not supported by {command}; use one of: {', '.join(allowed)}")
    if ns.all_namespaces and command in ("focus", "explain"):
        raise UsageError(f"{command} works on one namespace; use -n NAMESPACE instead of -A")
    opts = Options(
        command=command,
        namespace=ns.namespace,
        all_namespaces=ns.all_namespaces,
        context=ns.context,
        kubeconfig=ns.kubeconfig,
        output=output,
        metrics_url=getattr(ns, "metrics_url", None),
        operator_namespace=getattr(ns, "operator_namespace", DEFAULT_OPERATOR_NAMESPACE),
        operator_service=getattr(ns, "operator_service", None),
        services=tuple(getattr(ns, "services", ())),
    )
    if command == "focus":
        if len(set(opts.services)) != len(opts.services):
            raise UsageError("each SERVICE may be named once")
        if len(opts.services) > 16:
            raise UsageError("a signal can focus at most 16 services")
        opts = replace(
            opts,
            ttl_seconds=parse_duration(ns.duration),
            intensity=parse_intensity(ns.intensity),
            user=ns.user,
            source=ns.source,
        )
    return opts
