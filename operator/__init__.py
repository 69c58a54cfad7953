"""heady-operator: attention-driven capacity for Kubernetes workloads."""

__version__ = "0.1.0"
