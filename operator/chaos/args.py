"""The command line of `heady-chaos`, both ways: argv -> FaultRequest and FaultRequest -> argv.

The operator builds a Job's args with `to_argv`; the Job parses them with `parse`; a unit test
round-trips the two, so the Job and the command cannot drift apart.
"""

from __future__ import annotations

import argparse
from collections.abc import Mapping, Sequence

from heady_operator.models.arena import ChaosKind, ChaosMode
from heady_operator.planning.chaos import FaultRequest, JobAction


class UsageError(ValueError):
    """A command line that cannot describe a fault."""


def _selector(text: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for part in text.split(","):
        key, sep, value = part.strip().partition("=")
        if not sep or not key:
            raise argparse.ArgumentTypeError(f"selector {text!r}: expected key=value[,key=value]")
        out[key] = value
    return out


def format_selector(selector: Mapping[str, str]) -> str:
    return ",".join(f"{k}={v}" for k, v in sorted(selector.items()))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="heady-chaos",
        description=(
            "Inject or recover one chaos fault of an ArenaSession experiment. Only namespaces "
            "labelled heady.io/chaos=enabled are touched; everything created or changed is "
            "labelled with the session and experiment, so `recover` undoes exactly that."
        ),
    )
    sub = parser.add_subparsers(dest="action", required=True)
    for action, help_ in (
        (JobAction.INJECT, "inject the fault"),
        (JobAction.RECOVER, "undo the fault (idempotent; allowed even if the namespace label was removed)"),
    ):
        p = sub.add_parser(action.value, help=help_)
        p.add_argument("--namespace", required=True, help="namespace of the session and its targets")
        p.add_argument("--kind", required=True, choices=[k.value for k in ChaosKind])
        p.add_argument("--session", required=True, help="ArenaSession name (labels what is changed)")
        p.add_argument("--experiment", required=True, help="experiment name (labels what is changed)")
        target = p.add_mutually_exclusive_group()
        target.add_argument("--service", help="HeadyService whose workload's pods are targeted")
        target.add_argument("--selector", type=_selector, help="pod label selector key=value[,key=value]")
        p.add_argument("--mode", default=ChaosMode.ONE.value, choices=[m.value for m in ChaosMode])
        p.add_argument("--value", type=int, help="count (mode fixed) or percent (mode percent)")
        p.add_argument("--duration", type=int, default=30, help="seconds the fault is meant to last")
        p.add_argument("--zone", help="topology.kubernetes.io/zone value (zone_outage)")
        p.add_argument("--dry-run", action="store_true", help="print what would be done, change nothing")
        p.add_argument("--seed", default="", help="seed of the target selection (same seed, same targets)")
    return parser


def parse(argv: Sequence[str]) -> tuple[JobAction, FaultRequest]:
    """Parse argv; argparse exits with status 2 on a malformed line, UsageError on a bad combination."""
    ns = build_parser().parse_args(list(argv))
    request = FaultRequest(
        namespace=ns.namespace,
        kind=ChaosKind(ns.kind),
        session=ns.session,
        experiment=ns.experiment,
        service=ns.service,
        selector=ns.selector,
        mode=ChaosMode(ns.mode),
        value=ns.value,
        duration_seconds=ns.duration,
        zone=ns.zone,
        dry_run=ns.dry_run,
        seed=ns.seed,
    )
    action = JobAction(ns.action)
    # recover finds what to undo by the session's labels alone: targets do not matter to it.
    if action is JobAction.INJECT:
        if request.mode in (ChaosMode.FIXED, ChaosMode.PERCENT) and request.value is None:
            raise UsageError(f"--mode {request.mode.value} needs --value")
        if request.kind is ChaosKind.ZONE_OUTAGE and not request.zone:
            raise UsageError("--kind zone_outage needs --zone")
    return action, request


def to_argv(action: JobAction, request: FaultRequest) -> list[str]:
    argv = [
        action.value,
        "--namespace",
        request.namespace,
        "--kind",
        request.kind.value,
        "--session",
        request.session,
        "--experiment",
        request.experiment,
    ]
    if request.service:
        argv += ["--service", request.service]
    elif request.selector:
        argv += ["--selector", format_selector(request.selector)]
    argv += ["--mode", request.mode.value]
    if request.value is not None:
        argv += ["--value", str(request.value)]
    argv += ["--duration", str(request.duration_seconds)]
    if request.zone:
        argv += ["--zone", request.zone]
    if request.dry_run:
        argv.append("--dry-run")
    if request.seed:
        argv += ["--seed", request.seed]
    return argv
