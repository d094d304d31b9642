"""Which incarnation of the transactions topic a worker reads, so that the feature state's
guard offsets keep meaning something when the topic is deleted and created again.

The guards are offsets of one topic. A recreated topic starts again at offset 0, so every
event would look like a replay, and be skipped, until its offsets passed the old ones:
every feature frozen. So beside the state the workers keep ``<prefix>:topic:<name>`` =
``topic id:generation``, and events are guarded by logical offsets, ``generation * 2^40 +
offset``: the events of a recreated topic are new to every guard and keep counting, while
a replay within one incarnation is still a replay. The first incarnation is generation
0: its logical offsets are its offsets, so state written before this existed stays valid.

A worker reads the topic's id (DescribeTopics) at start, whenever a partition's offsets
go back (a reset, a seek, a recreated topic), and with each epoch check; the first worker
that sees a new id advances the generation (compare-and-set: two workers never advance it
twice), every worker logs and counts the recreation it sees. A worker that starts after
the recreation (restarted by its supervisor: on some brokers a consumer dies when its
topic is deleted) sees it against the stored id, if no other worker has advanced the
generation yet: then it is the one that logs and counts it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from prometheus_client import Counter

from fraudstream.features.store import StateStore

log = logging.getLogger(__name__)

GENERATION_SHIFT = 40  # 2^40 offsets per partition and incarnation


def identity_key(prefix: str, topic: str) -> bytes:
    return f"{prefix}:topic:{topic}".encode()


def _parse(raw: bytes | None) -> tuple[str, int] | None:
    if raw is None:
        return None
    topic_id, _, generation = raw.decode(errors="replace").rpartition(":")
    try:
        return topic_id, int(generation)
    except ValueError:
        return None


class TopicIdentity:
    """``base`` is added to the offsets of the events of the incarnation read now;
    ``topic_id`` is None until the broker has said which incarnation that is."""

    def __init__(self, store: StateStore, prefix: str, topic: str, ttl_ms: int,
                 describe: Callable[[], str | None], recreations: Counter) -> None:
        self._store = store
        self._key = identity_key(prefix, topic)
        self._topic = topic
        self._ttl_ms = ttl_ms
        self._describe = describe
        self._recreations = recreations
        self.topic_id: str | None = None
        self.generation = 0

    @property
    def base(self) -> int:
        return self.generation << GENERATION_SHIFT

    def check(self, rounds: int = 5) -> None:
        """Read the topic's id and agree on its generation; raises the store's errors. A
        broker that cannot say keeps the generation in use: at start, the one stored beside
        the state (a worker starting while DescribeTopics fails must not guard a later
        incarnation's events as generation 0, which would freeze them as replays)."""
        topic_id = self._describe()
        if topic_id is None:
            if self.topic_id is None:
                stored = _parse(self._store.get_many([self._key])[0])
                if stored is not None:
                    self.generation = stored[1]
            return
        for _ in range(rounds):
            raw = self._store.get_many([self._key])[0]
            stored = _parse(raw)
            if stored is None:  # new, or lost with the state: go on from what we know
                agreed = (topic_id, 0 if self.topic_id is None else self.generation
                          + (topic_id != self.topic_id))
            elif stored[0] == topic_id:
                agreed = stored
            else:
                agreed = (topic_id, stored[1] + 1)
            value = f"{agreed[0]}:{agreed[1]}".encode()
            if not self._store.compare_and_set_many([self._key], [raw], [value],
                                                    self._ttl_ms):
                # A running worker compares with the incarnation it read, one that
                # starts with the incarnation the state was guarded by.
                seen = self.topic_id if self.topic_id is not None else (
                    stored[0] if stored is not None else None)
                self._use(*agreed, seen=seen)
                return
        raise RuntimeError(f"the identity of topic {self._topic} kept changing")

    def _use(self, topic_id: str, generation: int, seen: str | None) -> None:
        """Guard with ``generation`` of ``topic_id``; ``seen``: the id known before."""
        if seen is not None and topic_id != seen:
            self._recreations.inc()
            log.warning("topic %s was recreated (id %s, was %s): its events are guarded as "
                        "generation %d, so features keep counting", self._topic, topic_id,
                        seen, generation)
        self.topic_id, self.generation = topic_id, generation


def describe_topic_id(admin: object, topic: str, timeout_s: float) -> Callable[[], str | None]:
    """The call that reads ``topic``'s id through ``admin`` (an AdminClient)."""
    from confluent_kafka import KafkaException, TopicCollection

    def describe() -> str | None:
        try:
            # attr-defined: admin is an AdminClient, passed as object
            future = admin.describe_topics(  # type: ignore[attr-defined]
                TopicCollection([topic]), request_timeout=timeout_s)[topic]
            return str(future.result(timeout=timeout_s).topic_id)
        except (KafkaException, TimeoutError, ValueError) as exc:
            log.warning("cannot read the id of topic %s (%s): its guard generation stays",
                        topic, exc)
            return None
    return describe
