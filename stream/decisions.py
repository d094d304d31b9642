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
    latency_ms: float  # in-worker, decode to produce
    features: dict[str, float] | None = None


encode_decision = msgspec.json.Encoder().encode
decision_decoder = msgspec.json.Decoder(Decision)
