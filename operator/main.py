"""`heady-operator`: run the operator (kopf, standalone, cluster-wide or on HEADY_NAMESPACES)."""

from __future__ import annotations

import logging

import kopf

from heady_operator.config import Settings


def main() -> None:
    cfg = Settings()
    logging.basicConfig(level=cfg.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    # kopf logs every handled watch event at INFO; heady reports what matters itself.
    logging.getLogger("kopf.objects").setLevel(logging.WARNING)
    import heady_operator.handlers  # noqa: F401  (registers the handlers)

    namespaces = cfg.namespace_list
    kopf.run(standalone=True, clusterwide=not namespaces, namespaces=namespaces)


if __name__ == "__main__":
    main()
