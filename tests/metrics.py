"""Read prometheus_client metrics in tests."""

from __future__ import annotations

from prometheus_client import Counter


def counter_value(counter: Counter, **labels: str) -> float:
    metric = counter.labels(**labels) if labels else counter
    return float(metric._value.get())


def scraped(port: int, name: str) -> dict[str, float]:
    """Every sample of metric ``name`` a process serves on ``port``'s /metrics, by its
    label text ("" when it has none)."""
    import urllib.request

    from prometheus_client.parser import text_string_to_metric_families

    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as answer:
        text = answer.read().decode()
    samples: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name:
                labels = ",".join(f'{k}="{v}"' for k, v in sorted(sample.labels.items()))
                samples[labels] = sample.value
    return samples
