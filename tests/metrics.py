"""Read prometheus_client metrics in tests."""

from __future__ import annotations

from prometheus_client import Counter


def counter_value(counter: Counter, **labels: str) -> float:
    return float(counter.labels(**labels)._value.get())
