"""Decision events: schema and a reusable encoder."""

from __future__ import annotations

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


encode_decision = msgspec.json.Encoder().encode
decision_decoder = msgspec.json.Decoder(Decision)
