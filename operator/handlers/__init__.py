"""kopf handlers. Importing this package registers them (`kopf run -m heady_operator.handlers`)."""

from heady_operator.handlers import lifecycle, watches

__all__ = ["lifecycle", "watches"]
