"""`heady-operator`: run the operator (kopf, standalone, cluster-wide or on HEADY_NAMESPACES)."""

from __future__ import annotations

import argparse
import logging
import os
import threading

import kopf

from heady_operator.config import Settings


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="heady-operator", description=__doc__)
    parser.add_argument(
        "--peering",
        metavar="NAME",
        help="deprecated (kopf peering is replaced): elect a leader on the Lease NAME, as "
        "HEADY_LEADER_ELECTION=true HEADY_LEADER_ELECTION_LEASE=NAME do",
    )
    args = parser.parse_args(argv)
    if args.peering:
        # Read by Settings() here and in the start-up handler alike.
        os.environ["HEADY_LEADER_ELECTION"] = "true"
        os.environ["HEADY_LEADER_ELECTION_LEASE"] = args.peering
    cfg = Settings()
    logging.basicConfig(level=cfg.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    # kopf logs every handled watch event at INFO; heady reports what matters itself.
    logging.getLogger("kopf.objects").setLevel(logging.WARNING)
    import heady_operator.handlers  # noqa: F401  (registers the handlers)

    namespaces = cfg.namespace_list
    # Every replica runs kopf standalone: a standby must keep receiving watch events (its caches
    # stay warm), which kopf peering would pause. Who writes is decided by the Lease
    # (handlers/lifecycle.py), and SIGTERM first hands that over, then stops kopf through this flag.
    stop = threading.Event()
    memo = kopf.Memo()
    memo["stop_flag"] = stop
    kopf.run(standalone=True, clusterwide=not namespaces, namespaces=namespaces, memo=memo, stop_flag=stop)


if __name__ == "__main__":
    main()
