"""The feature state's epoch: how a worker finds out that Redis lost state.

Lost state looks like new customers: Redis restarted without persistence, a flush, an
evicted key or a failover to a replica that lagged leave fewer or older values, and every
read still succeeds. So beside the state the workers keep SENTINELS small values, one in
each of SENTINELS equal ranges of the hash slots (every shard of a Redis Cluster holds
some), each ``epoch id:sequence:lost at:lost reason``. A check reads them all in one
round trip (``get_many``), judges them against what this worker saw last, and writes them
back with the sequence advanced in a second (``compare_and_set_many``, so two workers
checking at once never undo each other). It runs at start and every few seconds, never
per batch. The state is lost when:

- a sentinel this worker saw is missing, or none is there at start although the
  state should exist (the consumer group has committed offsets): ``missing``;
- a sentinel holds another epoch id: ``replaced``;
- a sequence is behind the one this worker last saw: ``rolled_back``.

A loss is written into the sentinels, so every worker, and every worker that starts
later, treats the state as incomplete until ``mark_rebuilt`` (called once a backfill has
rebuilt it) clears the reason. A rebuild stamps the sentinels REBUILT: a store rebuilt
before any worker noticed its loss (the sentinels gone, then written afresh under a new
epoch id) is whole, not replaced, so no worker flags a loss the backfill already repaired.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Sequence
from dataclasses import dataclass

from redis.crc import REDIS_CLUSTER_HASH_SLOTS, key_slot

from fraudstream.features.store import StateStore

SENTINELS = 16
MISSING, REPLACED, ROLLED_BACK = "missing", "replaced", "rolled_back"
REBUILT = "rebuilt"  # a sentinel's reason after a backfill: the state is whole
LOSS_KINDS = (MISSING, REPLACED, ROLLED_BACK)
_WHY = {
    MISSING: "epoch sentinel missing (Redis restarted empty, flushed, or evicted keys)",
    REPLACED: "epoch sentinel replaced by another epoch (the store was rebuilt or swapped)",
    ROLLED_BACK: "epoch sequence went back (failover to a lagging replica, or a restore)",
}


def _hash_tags(count: int) -> list[bytes]:
    """One hash tag in each of ``count`` equal ranges of the cluster's slots."""
    width = REDIS_CLUSTER_HASH_SLOTS // count
    tags: dict[int, bytes] = {}
    n = 0
    while len(tags) < count:
        tag = b"e%d" % n
        tags.setdefault(key_slot(b"{" + tag + b"}") // width, tag)
        n += 1
    return [tags[i] for i in range(count)]


_TAGS = _hash_tags(SENTINELS)


def sentinel_keys(prefix: str) -> list[bytes]:
    """The sentinels' keys under the feature store's ``prefix``."""
    return [prefix.encode() + b":epoch:{" + tag + b"}" for tag in _TAGS]


@dataclass(frozen=True)
class Sentinel:
    epoch: str
    seq: int
    lost_at_ms: int = 0
    reason: str = ""  # empty or REBUILT: the state is whole

    @property
    def lost(self) -> str:
        """Why the state is incomplete, or "" when it is whole."""
        return "" if self.reason in ("", REBUILT) else self.reason

    def encode(self) -> bytes:
        return f"{self.epoch}:{self.seq}:{self.lost_at_ms}:{self.reason}".encode()

    @classmethod
    def decode(cls, raw: bytes | None) -> Sentinel | None:
        """None for an absent value; a value that does not parse is another epoch's."""
        if raw is None:
            return None
        try:
            epoch, seq, lost_at, reason = raw.decode().split(":", 3)
            return cls(epoch, int(seq), int(lost_at), reason)
        except ValueError:
            return cls(f"unreadable {raw[:16]!r}", 0)


@dataclass(frozen=True)
class Loss:
    kind: str  # one of LOSS_KINDS
    detail: str

    @property
    def reason(self) -> str:
        return f"{self.kind}: {self.detail}"


def judge(known: Sequence[Sentinel | None] | None, read: Sequence[Sentinel | None],
          expect_state: bool) -> Loss | None:
    """The loss that ``read`` shows against what this worker saw last (``known``, None
    on its first check), or None."""
    present = [s for s in read if s is not None]
    if known is None:
        if present and len(present) < len(read):
            return Loss(MISSING, f"{len(read) - len(present)} of {len(read)} sentinels "
                                 "missing: " + _WHY[MISSING])
        if not present and expect_state:
            return Loss(MISSING, "no epoch at start although the consumer group has "
                                 "committed offsets: " + _WHY[MISSING])
        return None
    missing = sum(1 for k, r in zip(known, read, strict=True) if k and r is None)
    if missing:
        return Loss(MISSING, f"{missing} of {len(read)} sentinels missing: {_WHY[MISSING]}")
    if any(k and r and r.epoch != k.epoch and r.reason != REBUILT
           for k, r in zip(known, read, strict=True)):
        return Loss(REPLACED, _WHY[REPLACED])
    if any(k and r and r.seq < k.seq for k, r in zip(known, read, strict=True)):
        return Loss(ROLLED_BACK, _WHY[ROLLED_BACK])
    return None


@dataclass(frozen=True)
class EpochReading:
    """One check: the epoch now, why the state is incomplete ("" when it is whole), and
    the loss this check found (None when it found none)."""

    epoch: str
    lost: str
    lost_at_ms: int
    found: Loss | None


def _next(read: Sequence[Sentinel | None], known: Sequence[Sentinel | None] | None,
          loss: Loss | None, now_ms: int, new_epoch: str) -> Sentinel:
    """What every sentinel holds after a check."""
    present = [s for s in read if s is not None]
    seq = 1 + max([s.seq for s in present] + [s.seq for s in known or () if s], default=0)
    epoch = present[0].epoch if present else new_epoch
    earlier = [s for s in present if s.lost]
    if earlier:  # the first finding stands, whoever made it
        first = min(earlier, key=lambda s: s.lost_at_ms)
        return Sentinel(epoch, seq, first.lost_at_ms, first.reason)
    if loss is not None:
        return Sentinel(epoch, seq, now_ms, loss.reason)
    # The rebuild's stamp stays: a worker that has not checked since still sees it.
    return Sentinel(epoch, seq, 0, REBUILT if any(s.reason == REBUILT for s in present) else "")


class StateEpoch:
    """The epoch of the state under ``prefix`` in ``store`` as one worker sees it."""

    def __init__(self, store: StateStore, prefix: str, ttl_ms: int) -> None:
        self._store = store
        self._keys = sentinel_keys(prefix)
        self._ttl_ms = ttl_ms
        self._known: list[Sentinel | None] | None = None

    def check(self, expect_state: bool) -> EpochReading:
        """Read, judge and advance the sentinels: two round trips. Raises the store's
        errors (the caller tries again later)."""
        raws = self._store.get_many(self._keys)
        read = [Sentinel.decode(raw) for raw in raws]
        loss = judge(self._known, read, expect_state)
        now_ms = int(time.time() * 1000)
        after = _next(read, self._known, loss, now_ms, secrets.token_hex(8))
        value = after.encode()
        conflicts = set(self._store.compare_and_set_many(
            self._keys, raws, [value] * len(self._keys), self._ttl_ms))
        # Where another worker wrote first, its value (newer than the one read) stands.
        self._known = [read[i] if i in conflicts else after for i in range(len(read))]
        return EpochReading(after.epoch, after.lost, after.lost_at_ms, loss)


def mark_rebuilt(store: StateStore, prefix: str, ttl_ms: int, rounds: int = 20) -> str:
    """Say the state under ``prefix`` is whole again: call it once a backfill has
    rebuilt it. Keeps the epoch id (workers see no new loss), clears the lost reason, and
    returns the epoch id. Workers stop flagging decisions at their next check."""
    keys = sentinel_keys(prefix)
    for _ in range(rounds):
        raws = store.get_many(keys)
        read = [Sentinel.decode(raw) for raw in raws]
        present = [s for s in read if s is not None]
        epoch = present[0].epoch if present else secrets.token_hex(8)
        after = Sentinel(epoch, 1 + max((s.seq for s in present), default=0), 0, REBUILT)
        if not store.compare_and_set_many(keys, raws, [after.encode()] * len(keys), ttl_ms):
            return epoch
    raise RuntimeError(f"epoch sentinels under {prefix!r} kept changing: try again")
