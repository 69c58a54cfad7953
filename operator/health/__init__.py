"""Health checks of HeadyServices (spec.healthCheck): probe, verdict, condition, Event, metrics.

- verdict.py: pure: consecutive failures -> Healthy / Unhealthy transitions.
- probe.py: one HTTP or TCP probe against an address (I/O, no Kubernetes).
- checks.py: the loop: which service is due, probe it, write the `Healthy` condition (merged
  into the existing conditions, guarded by resourceVersion), post Events on transitions, and
  keep heady_service_up / heady_health_probe_seconds.
"""

from heady_operator.health.checks import HealthChecks, run_health_checks, service_address

__all__ = ["HealthChecks", "run_health_checks", "service_address"]
