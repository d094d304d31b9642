"""Decision events: schema and a reusable encoder."""

from __future__ import annotations

from collections.abc import Sequence
from typing import cast

import msgspec


class Decision(msgspec.Struct, omit_defaults=True, forbid_unknown_fields=True):
    transaction_id: str
    customer_id: str
    score: float
    decision: str
    model_version: str
    reasons: list[str]
    degraded: list[str]
    scored_at: int  # epoch milliseconds
    latency_ms: float  # in-worker, decode to the moment the producer takes it
    features: dict[str, float] | None = None


# A message key longer than this (128 characters of UTF-8 at most: an id's limit) is not
# an id, and is never copied into a decision.
MAX_KEY_BYTES = 4 * 128


def decision_key(input_key: bytes | None, customer_id: str) -> bytes:
    """The input's key, unless it is missing or too long to be an id: then the customer
    id (decisions are keyed by customer, so per-customer order holds)."""
    if input_key is None or len(input_key) > MAX_KEY_BYTES:
        return customer_id.encode()
    return input_key


def decision_keys(input_keys: list[bytes | None], customer_ids: Sequence[str]) -> list[bytes]:
    """``decision_key`` of every event of a batch (the keys as they are, unless one is
    missing or too long)."""
    if None not in input_keys:
        keys = cast("list[bytes]", input_keys)
        if max(map(len, keys), default=0) <= MAX_KEY_BYTES:
            return keys
    return [decision_key(key, customer) for key, customer in zip(input_keys, customer_ids,
                                                                  strict=True)]


encode_decision = msgspec.json.Encoder().encode
decision_decoder = msgspec.json.Decoder(Decision)
