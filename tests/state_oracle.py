"""The feature state a frame of transactions must leave in Redis, from the frame alone:
per customer the day buckets of the last 30 days and the last event time, per terminal the
transactions and confirmed frauds of each day its ring holds."""

from __future__ import annotations

import pandas as pd

from fraudstream.features import customer_state, terminal_state
from fraudstream.features.cluster_store import state_store_from_url
from fraudstream.features.definitions import DAY_MS, LABEL_DELAY_DAYS, RING_DAYS, TERMINAL_RING_DAYS
from fraudstream.features.store import StateStore
from fraudstream.settings import Settings


def state_differences(settings: Settings, frame: pd.DataFrame,
                      labelled_until_day: int | None = None) -> list[str]:
    """Every way Redis differs from ``frame``'s state (empty when it is exact). Frauds of
    days up to ``labelled_until_day`` (default: the frame's last day minus the label
    delay) count: those are the labels sent."""
    day = frame["timestamp"] // DAY_MS
    frame = frame.assign(day=day, cents=(frame["amount"] * 100).round().astype("int64"))
    if labelled_until_day is None:
        labelled_until_day = int(day.max()) - LABEL_DELAY_DAYS
    frame["fraud"] = (frame["is_fraud"] == 1) & (frame["day"] <= labelled_until_day)
    store = state_store_from_url(settings.redis_url or "", settings.redis_cluster, 5.0)
    try:
        return (_customers(store, settings.redis_prefix, frame)
                + _terminals(store, settings.redis_prefix, frame))
    finally:
        store.close()


def _customers(store: StateStore, prefix: str, frame: pd.DataFrame) -> list[str]:
    wrong = []
    groups = frame.groupby("customer_id")
    ids = list(groups.groups)
    raws = store.get_many([f"{prefix}:c:{c}".encode() for c in ids])
    for customer, raw in zip(ids, raws, strict=True):
        events = groups.get_group(customer)
        if raw is None:
            wrong.append(f"customer {customer}: no state")
            continue
        state = customer_state.decode(raw)
        last = int(events["day"].max())
        by_day = events.groupby("day").agg(count=("cents", "size"), cents=("cents", "sum"))
        for d in range(last - RING_DAYS + 1, last + 1):
            want = (int(by_day["count"].get(d, 0)), int(by_day["cents"].get(d, 0)))
            got = state.window_totals(d, 1)
            if got != want:
                wrong.append(f"customer {customer} day {d}: stored {got}, expected {want}")
        if state.last_ts != int(events["timestamp"].iloc[-1]):
            wrong.append(f"customer {customer}: last event {state.last_ts}, expected "
                         f"{int(events['timestamp'].iloc[-1])}")
    return wrong


def _terminals(store: StateStore, prefix: str, frame: pd.DataFrame) -> list[str]:
    wrong = []
    groups = frame.groupby("terminal_id")
    ids = list(groups.groups)
    raws = store.get_many([f"{prefix}:t:{t}".encode() for t in ids])
    for terminal, raw in zip(ids, raws, strict=True):
        events = groups.get_group(terminal)
        if raw is None:
            wrong.append(f"terminal {terminal}: no state")
            continue
        state = terminal_state.decode(raw)
        last = int(events["day"].max())
        by_day = events.groupby("day").agg(count=("fraud", "size"), frauds=("fraud", "sum"))
        for d in range(last - TERMINAL_RING_DAYS + 1, last + 1):
            want = (int(by_day["count"].get(d, 0)), int(by_day["frauds"].get(d, 0)))
            got = state.window_totals(d, d)
            if got != want:
                wrong.append(f"terminal {terminal} day {d}: stored {got}, expected {want}")
    return wrong
