"""kopf handlers. Importing this package registers them (`kopf run -m heady_operator.handlers`)."""

# isort: off
# lifecycle first: kopf runs startup handlers in registration order, and the others need its memo.
from heady_operator.handlers import lifecycle
from heady_operator.handlers import arena, chaos, watches

# isort: on

__all__ = ["arena", "chaos", "lifecycle", "watches"]
