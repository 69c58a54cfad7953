"""Zero-trust access per hostname: the loop behind HeadyService.spec.access."""

from heady_operator.access.loop import AccessLoop, run_access

__all__ = ["AccessLoop", "run_access"]
