"""Kubernetes resource quantities as plain integers: CPU in millicores, memory in bytes.

One parser for the whole operator so planner arithmetic never touches strings.
"""

from __future__ import annotations

from decimal import Decimal, InvalidOperation

_BINARY = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50, "Ei": 2**60}
_DECIMAL = {
    "n": Decimal("1e-9"),
    "u": Decimal("1e-6"),
    "m": Decimal("1e-3"),
    "": Decimal(1),
    "k": Decimal("1e3"),
    "M": Decimal("1e6"),
    "G": Decimal("1e9"),
    "T": Decimal("1e12"),
    "P": Decimal("1e15"),
    "E": Decimal("1e18"),
}


class QuantityError(ValueError):
    """A string that is not a Kubernetes quantity."""


def parse_quantity(value: str | int | float) -> Decimal:
    """Parse a Kubernetes quantity ("500m", "1.5", "4Gi", "1e3") into its exact value."""
    if isinstance(value, (int, float)):
        return Decimal(str(value))
    text = value.strip()
    if not text:
        raise QuantityError("empty quantity")
    for suffix, mult in _BINARY.items():
        if text.endswith(suffix):
            return _number(text[: -len(suffix)], value) * mult
    if len(text) > 1 and text[-1] in _DECIMAL and not text[-1].isdigit():
        return _number(text[:-1], value) * _DECIMAL[text[-1]]
    return _number(text, value)


def _number(text: str, original: str | int | float) -> Decimal:
    try:
        number = Decimal(text)
    except InvalidOperation as exc:
        raise QuantityError(f"{original!r} is not a Kubernetes quantity") from exc
    if not number.is_finite() or number < 0:
        raise QuantityError(f"{original!r} is not a non-negative Kubernetes quantity")
    return number


def cpu_millis(value: str | int | float) -> int:
    """CPU quantity in millicores, rounded up as the kubelet does."""
    milli = parse_quantity(value) * 1000
    return int(milli.to_integral_value(rounding="ROUND_CEILING"))


def memory_bytes(value: str | int | float) -> int:
    """Memory quantity in bytes, rounded up."""
    return int(parse_quantity(value).to_integral_value(rounding="ROUND_CEILING"))


def format_cpu(millis: int) -> str:
    """Canonical CPU string: whole cores when exact, millicores otherwise."""
    return str(millis // 1000) if millis % 1000 == 0 else f"{millis}m"


def format_memory(num_bytes: int) -> str:
    """Canonical memory string: the largest binary suffix that divides exactly."""
    for suffix, mult in reversed(list(_BINARY.items())):
        if num_bytes and num_bytes % mult == 0:
            return f"{num_bytes // mult}{suffix}"
    return str(num_bytes)
