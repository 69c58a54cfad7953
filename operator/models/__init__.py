"""Pydantic models that mirror the CRD schemas in crds/ (checked by tests/e2e/test_crds.py)."""
