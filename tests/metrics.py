"""Read prometheus_client metrics in tests."""

from __future__ import annotations

from prometheus_client import Counter


def counter_value(counter: Counter, **labels: str) -> float:
    metric = counter.labels(**labels) if labels else counter
    return float(metric._value.get())
