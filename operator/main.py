"""`heady-operator`: run the operator (kopf, standalone, cluster-wide or on HEADY_NAMESPACES)."""

from __future__ import annotations

import argparse
import logging
import zlib

import kopf

from heady_operator.config import Settings


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="heady-operator", description=__doc__)
    parser.add_argument(
        "--peering",
        metavar="NAME",
        help="join kopf peering NAME so a standby replica takes over when the active one dies",
    )
    args = parser.parse_args(argv)
    cfg = Settings()
    logging.basicConfig(level=cfg.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    # kopf logs every handled watch event at INFO; heady reports what matters itself.
    logging.getLogger("kopf.objects").setLevel(logging.WARNING)
    import heady_operator.handlers  # noqa: F401  (registers the handlers)

    namespaces = cfg.namespace_list
    if args.peering:
        # kopf pauses every operator sharing the top priority, so replicas must differ.
        priority = 100 + zlib.crc32(cfg.pod_name.encode()) % 1000
        kopf.run(
            peering_name=args.peering, priority=priority, clusterwide=not namespaces, namespaces=namespaces
        )
    else:
        kopf.run(standalone=True, clusterwide=not namespaces, namespaces=namespaces)


if __name__ == "__main__":
    main()
