"""The decision/label join of live quality, kept in Redis so it survives label delays of
days and a restart of the monitor.

Labels come days after their decisions: at 1,000 decisions a second a week of pending
decisions is 600 million, far beyond process memory, and a restart must not forget them.
Per pending decision Redis keeps one key of 7 bytes (score as float32, flagged, the model
version's small id) that expires after the label horizon; a label that comes first waits
the same way in one byte. Each join appends 6 bytes (score, flagged, is_fraud) to a capped
list per model version, over which the measures are computed. One Lua call per batch
joins atomically, so two monitors reading the two topics in any order never both miss
a pair. A joined pair leaves a 0-byte mark for the horizon, so a decision or label read
again (the monitor commits its offsets only after the join, and a crash replays the
uncommitted records) never joins twice nor waits again. The keys are not declared to the
script: it runs on one Redis, not a cluster.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable

import numpy as np
import redis

from fraudstream.stream.quality import Quality, measure_pairs

DECISION = struct.Struct("<fBH")  # score, flagged, version id
RECORD = np.dtype([("score", "<f4"), ("flagged", "u1"), ("fraud", "u1")])
DEFAULT_PREFIX = "fsq:"
DAY_S = 86_400

# ARGV: prefix, ttl seconds, window, then (kind, transaction id, payload) per event, where
# kind "d" has the packed decision and kind "l" the label byte ("0" or "1").
_JOIN = """
local prefix, ttl, window = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])
local joined = 0
local function record(tx, decision, label)
  local list = prefix .. 'j:' .. struct.unpack('<H', decision, 6)
  redis.call('RPUSH', list, string.sub(decision, 1, 5) .. label)
  redis.call('LTRIM', list, -window, -1)
  redis.call('EXPIRE', list, ttl)
  redis.call('SET', prefix .. 'x:' .. tx, '', 'EX', ttl)
  joined = joined + 1
end
for i = 4, #ARGV, 3 do
  local kind, tx, payload = ARGV[i], ARGV[i + 1], ARGV[i + 2]
  if redis.call('EXISTS', prefix .. 'x:' .. tx) == 1 then
    -- joined already: a record read again after a restart
  elseif kind == 'd' then
    local label = redis.call('GET', prefix .. 'l:' .. tx)
    if label then
      redis.call('DEL', prefix .. 'l:' .. tx)
      redis.call('DECR', prefix .. 'waiting')
      record(tx, payload, label == '1' and '\\1' or '\\0')
    else
      redis.call('SET', prefix .. 'd:' .. tx, payload, 'EX', ttl)
    end
  else
    local decision = redis.call('GET', prefix .. 'd:' .. tx)
    if decision then
      redis.call('DEL', prefix .. 'd:' .. tx)
      record(tx, decision, payload == '1' and '\\1' or '\\0')
    elseif redis.call('SET', prefix .. 'l:' .. tx, payload, 'EX', ttl, 'NX') then
      redis.call('INCR', prefix .. 'waiting')
    end
  end
end
-- Every key expires (the rule for all our Redis state): the bookkeeping keys, kept alive
-- by every batch, outlast the longest wait of a decision.
for _, key in ipairs({'versions', 'version-seq', 'waiting'}) do
  redis.call('EXPIRE', prefix .. key, 2 * ttl)
end
return joined
"""


def _reply_bytes(value: bytes | str) -> bytes:
    """A reply of a client that does not decode responses (redis-py's types cannot tell
    and say ``bytes | str``)."""
    assert isinstance(value, bytes), "the client is made without decode_responses"
    return value


class RedisLiveQuality:
    """Live quality whose join state is in Redis (``LiveQuality``'s interface, plus per
    model version measures)."""

    def __init__(self, client: redis.Redis, horizon_days: float = 30.0, window: int = 5_000,
                 prefix: str = DEFAULT_PREFIX) -> None:
        self._redis = client
        self._ttl = max(1, int(horizon_days * DAY_S))
        self._window = window
        self._prefix = prefix
        self._join = client.register_script(_JOIN)
        self._ids: dict[str, int] = {}

    def _version_id(self, version: str) -> int:
        known = self._ids.get(version)
        if known is None:
            # The first writer of a version picks its id; every monitor reads the same one.
            key = self._prefix + "versions"
            fresh = int(self._redis.incr(self._prefix + "version-seq"))
            self._redis.hsetnx(key, version, fresh)
            stored = self._redis.hget(key, version)
            assert stored is not None, "hsetnx has just set the field"
            known = int(stored)
            self._ids[version] = known
        return known

    def add(self, decisions: Iterable[tuple[str, float, bool, str]],
            labels: Iterable[tuple[str, bool]]) -> int:
        """Store a batch of decisions (id, score, flagged, model version) and labels (id,
        is_fraud), joining each with its other half if that is waiting; one round trip.
        Returns the number of pairs joined."""
        args: list[bytes | str | int] = [self._prefix, self._ttl, self._window]
        for tx, score, flagged, version in decisions:
            args += ["d", tx, DECISION.pack(score, flagged, self._version_id(version))]
        for tx, is_fraud in labels:
            args += ["l", tx, "1" if is_fraud else "0"]
        if len(args) == 3:
            return 0
        return int(self._join(args=args))

    def add_decision(self, transaction_id: str, score: float, flagged: bool,
                     model_version: str = "") -> bool:
        return self.add([(transaction_id, score, flagged, model_version)], []) == 1

    def add_label(self, transaction_id: str, is_fraud: bool) -> bool:
        return self.add([], [(transaction_id, is_fraud)]) == 1

    @property
    def unmatched_labels(self) -> int:
        """Labels that waited for their decision and have not joined (expired ones too)."""
        return max(0, int(self._redis.get(self._prefix + "waiting") or 0))

    def _records(self) -> dict[str, np.ndarray]:
        versions = self._redis.hgetall(self._prefix + "versions")
        pipe = self._redis.pipeline(transaction=False)
        names = [_reply_bytes(name).decode() for name in versions]
        for name in names:
            pipe.lrange(f"{self._prefix}j:{int(versions[name.encode()])}", 0, -1)
        return {name: np.frombuffer(b"".join(rows), dtype=RECORD)
                for name, rows in zip(names, pipe.execute(), strict=True)}

    def measure_by_version(self) -> dict[str, Quality]:
        """The measures over each model version's most recent ``window`` joined pairs."""
        return {name: _quality(rows) for name, rows in self._records().items() if rows.size}

    def measure(self) -> Quality:
        """The measures over every version's recent pairs together."""
        rows = [r for r in self._records().values() if r.size]
        return _quality(np.concatenate(rows) if rows else np.zeros(0, dtype=RECORD))


def _quality(rows: np.ndarray) -> Quality:
    return measure_pairs(rows["score"].astype(np.float64), rows["flagged"].astype(bool),
                         rows["fraud"].astype(bool))
