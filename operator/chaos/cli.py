"""`heady-chaos inject|recover ...`: the entry point of chaos Jobs (and of a human at a terminal).

Exit status: 0 done (or, with --dry-run, reported), 2 refused (unsafe or impossible: the message
says why), 1 an API error. The last line of output is a JSON summary of what was (or would be)
changed.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Sequence

from kubernetes import client, config
from kubernetes.client.exceptions import ApiException

from heady_operator.chaos.args import UsageError, parse
from heady_operator.chaos.faults import Chaos, Refused, Report
from heady_operator.planning.chaos import FaultRequest, JobAction


def connect() -> client.ApiClient:
    """In a pod: its ServiceAccount; elsewhere: $KUBECONFIG or ~/.kube/config."""
    if os.environ.get("KUBERNETES_SERVICE_HOST") and not os.environ.get("KUBECONFIG"):
        config.load_incluster_config()  # type: ignore[no-untyped-call]
        return client.ApiClient()
    api: client.ApiClient = config.new_client_from_config()  # type: ignore[no-untyped-call]
    return api


def run(chaos: Chaos, action: JobAction, request: FaultRequest) -> Report:
    """The command's work without its I/O around it; the operator's inline executor calls this."""
    return chaos.inject(request) if action is JobAction.INJECT else chaos.recover(request)


def main(argv: Sequence[str] | None = None) -> int:
    try:
        action, request = parse(sys.argv[1:] if argv is None else argv)
    except UsageError as exc:
        print(f"heady-chaos: {exc}", file=sys.stderr)
        return 2
    try:
        report = run(Chaos(connect()), action, request)
    except Refused as exc:
        print(f"heady-chaos: {exc}", file=sys.stderr)
        return 2
    except ApiException as exc:
        print(f"heady-chaos: API error {exc.status} {exc.reason}: {exc.body}", file=sys.stderr)
        return 1
    for line in report.lines:
        print(line)
    print(json.dumps(report.summary(), sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
