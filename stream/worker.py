"""The stream worker: poll a batch, decode, enrich, score, produce, store offsets.

Delivery is at-least-once: auto-commit and auto offset store are off; a batch's offsets
are stored only after every decision (or dead letter) of the batch is delivered, committed
periodically, and committed synchronously on partition revoke and on shutdown. A lost
partition is never committed. Signal handlers only set a flag; shutdown is bounded.
"""

from __future__ import annotations

import logging
import operator
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from confluent_kafka import (
    Consumer,
    KafkaError,
    KafkaException,
    Message,
    Producer,
    TopicPartition,
)
from confluent_kafka.admin import AdminClient

from fraudstream import logs
from fraudstream.errors import CredentialsError
from fraudstream.features import jit
from fraudstream.features.definitions import FEATURE_NAMES
from fraudstream.features.epoch import StateEpoch
from fraudstream.features.online import (
    LabelBatch,
    OnlineFeatureStore,
    TransactionBatch,
)
from fraudstream.models.decisions import OUTCOMES
from fraudstream.models.follower import ModelSet, RegistryFollower
from fraudstream.models.scorer import Scorer
from fraudstream.settings import Settings
from fraudstream.stream.batch_decode import decode_transactions
from fraudstream.stream.batch_size import BatchSizer
from fraudstream.stream.broker_watch import BrokerWatch
from fraudstream.stream.checkpoint import Checkpoint
from fraudstream.stream.circuit import CircuitBreaker
from fraudstream.stream.core import DecidedBatch, DecisionCore
from fraudstream.stream.dead_letters import record_limit, topic_max_message_bytes
from fraudstream.stream.decisions import decision_key, decision_keys, encode_decision
from fraudstream.stream.delivery import PendingBatch
from fraudstream.stream.drift import DriftMonitor
from fraudstream.stream.events import EventTimeBounds
from fraudstream.stream.group_offsets import group_has_committed
from fraudstream.stream.kafka_config import (
    admin_config,
    consumer_config,
    producer_config,
    transactional_producer_config,
)
from fraudstream.stream.kafka_errors import is_refusal, refusal_message
from fraudstream.stream.labels_reader import LabelReader
from fraudstream.stream.metrics import WorkerMetrics
from fraudstream.stream.offset_resets import count_offset_resets, stop_counting
from fraudstream.stream.output_errors import missing_topic_failure, missing_topics
from fraudstream.stream.outputs import Outputs
from fraudstream.stream.poll import consumed_at, poll_available
from fraudstream.stream.produce import produce_or_wait
from fraudstream.stream.shadow import ShadowBudget
from fraudstream.stream.state_epoch import EpochWatch
from fraudstream.stream.status import StatusWriter, WorkerStatus
from fraudstream.stream.topic_identity import TopicIdentity
from fraudstream.stream.transactions import Transactions, transactional_id

log = logging.getLogger(__name__)
IDENTITY_CHECK_MAX_SILENCE_S = 3.0  # librdkafka's statistics come every second
IDENTITY_RETRY_S = 0.5  # while the topic's id is unknown



class Worker:
    def __init__(self, settings: Settings, scorer: Scorer, features: OnlineFeatureStore,
                 metrics: WorkerMetrics, consumer: Consumer | None = None,
                 producer: Producer | None = None,
                 breaker: CircuitBreaker | None = None,
                 follower: RegistryFollower | None = None,
                 challenger: Scorer | None = None,
                 epoch: StateEpoch | None = None,
                 identity: TopicIdentity | None = None) -> None:
        self.settings = settings
        self.scorer = scorer
        self.challenger: Scorer | None = None
        self.follower = follower
        self.shadow_budget = ShadowBudget(settings.shadow_max_share)
        self.breaker = breaker or CircuitBreaker(settings.breaker_failures,
                                                 settings.breaker_reset_s)
        self.features = features
        self.metrics = metrics
        watch = (EpochWatch(epoch, metrics, settings.state_epoch_check_s,
                            self._group_has_committed) if epoch is not None else None)
        self.core = DecisionCore(features, self.breaker, metrics, epoch=watch)
        self.identity = identity
        self._last_offsets: dict[tuple[str, int], int] = {}
        self._next_identity_check = 0.0
        self.broker = BrokerWatch(settings.broker_timeout_s)
        self.consumer = consumer or Consumer({**consumer_config(settings),
                                              "statistics.interval.ms": 1000,
                                              "stats_cb": self._on_stats,
                                              "error_cb": self._on_client_error})
        self.transactions: Transactions | None = None
        if settings.exactly_once:
            txn_id = transactional_id(settings)
            self.producer = producer or Producer(transactional_producer_config(settings, txn_id))
            self.transactions = Transactions(self.producer, self.consumer,
                                             settings.transaction_interval_ms / 1000.0,
                                             settings.shutdown_timeout_s)
            self.transactions.start()
            log.info("exactly-once: transactional.id %s", txn_id)
        else:
            self.producer = producer or Producer(producer_config(settings))
        self.drift: DriftMonitor | None = None
        self._lag_reported: set[tuple[str, int]] = set()
        self.outputs = Outputs(
            self.producer, settings.topic_dlq, settings.producer_max_message_bytes,
            self._count_dead_letter,
            doom=self.transactions.produce_failed if self.transactions else None)
        self.checkpoint = Checkpoint(self.consumer, self.producer, self.outputs,
                                     self.transactions, metrics,
                                     lambda: self._write_status(force=True),
                                     settings.producer_queue_messages)
        self.labels = LabelReader(settings, self._apply_labels, self._count_dead_letter)
        self._stop = threading.Event()
        self._callback_error: BaseException | None = None
        self._budget_s = settings.budget_ms / 1000.0
        self.sizer = BatchSizer(self._budget_s, settings.max_batch, settings.min_batch)
        # The labelled series the loop updates every batch, looked up once.
        self._stages = {stage: metrics.stage_seconds.labels(stage) for stage in
                        ("decode", "features", "score", "produce", "update")}
        self._outcomes = [metrics.decisions.labels(outcome) for outcome in OUTCOMES]
        self._waiting = 0  # events behind the batch in hand on its partitions
        self._backlog_shown = 0  # the state backlog's size the gauges show
        self.batches = 0
        self.events = 0
        self.labels_applied = 0
        self._bounds = EventTimeBounds.of(settings.max_event_age_days, settings.max_event_lead_s)
        self.last_progress = time.time()
        self._status = StatusWriter(Path(settings.status_file)) if settings.status_file else None
        self._use_models(ModelSet(scorer, challenger))
        self._resets = count_offset_resets(self._offset_reset)
        metrics.feature_store_up.set(1)
        for role in ("champion", "challenger"):  # series at 0, so a first failure alerts
            for outcome in ("loaded", "failed"):
                metrics.model_loads.labels(role, outcome)

    # -- control -------------------------------------------------------------------

    def stop(self) -> None:
        """Ask the loop to finish the batch in hand, commit and return. Signal-safe."""
        self._stop.set()

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    def run(self) -> None:
        """Consume until ``stop()``; raises on a fatal error after committing safe work."""
        s = self.settings
        consume = self.consumer.consume
        poll_producer = self.producer.poll
        sizer, timeout = self.sizer, s.max_wait_ms / 1000.0
        commit_every = s.commit_interval_s
        try:
            self._check_outputs()
            self.consumer.subscribe([s.topic_transactions], on_assign=self._on_assign,
                                    on_revoke=self._on_revoke, on_lost=self._on_lost)
            self.labels.subscribe()
            self.core.check_epoch()  # before the first batch reads any state
            self._check_topic()
            log.info("worker started", extra={"topic": s.topic_transactions,
                                               "model_version": self.scorer.version,
                                               "compiled_kernels": jit.warm_up_report()})
            next_commit = time.monotonic() + commit_every
            while not self._stop.is_set():
                # Labels first: one already in hand is known to every later decision.
                # They are not progress: liveness asks whether transactions move.
                self.labels.poll()
                messages = poll_available(consume, sizer.size, timeout)
                self._raise_callback_error()
                if messages:
                    self._process(messages)
                else:  # idle: the last batch's offsets wait on its state write's reply
                    self.core.complete()
                poll_producer(0)
                self.core.retry_backlog()
                self.core.check_epoch()
                # Not while the broker is silent: the check asks the broker, and waiting
                # for it would stall the loop that tells a silent broker from a slow one.
                if time.monotonic() >= self._next_identity_check \
                        and self.broker.silent_for() < IDENTITY_CHECK_MAX_SILENCE_S:
                    self._check_topic()
                self._count_duplicates()
                if self.follower is not None and (models := self.follower.take()):
                    self._use_models(models)
                    self._write_status(force=True)
                self.checkpoint.release()
                self.checkpoint.hold_back(self.core.backlog.events,
                                          s.state_backlog_max_events)
                now = time.monotonic()
                if now >= next_commit:
                    self.checkpoint.commit(asynchronous=True)
                    self.labels.commit(asynchronous=True)
                    next_commit = now + commit_every
                self._write_status()
                self.broker.check()
        finally:
            self._shutdown()

    # -- one batch -----------------------------------------------------------------

    def _process(self, messages: list[Message]) -> None:
        started = decoding = time.perf_counter()
        offsets: dict[tuple[str, int], int] = {}
        rejected: list[tuple[int, Message, str]] = []  # (position in the poll, ...)
        candidates: list[Message] = []  # what the decoder gets
        where_from: list[int] = []  # each candidate's position in the poll
        partitions: list[int] = []
        offset_list: list[int] = []
        poison = self.outputs.poison
        last, rewound = self._last_offsets, False
        for position, message in enumerate(messages):
            error = message.error()
            if error is not None:
                self._consumer_error(message, error)
                continue
            # A consumed record always has its topic, partition and offset.
            partition, offset = message.partition() or 0, message.offset() or 0
            where = (message.topic() or "", partition)
            rewound |= offset <= last.get(where, -1)
            offsets[where] = offset
            if poison and (reason := poison.get(consumed_at(message))):
                rejected.append((position, message, reason))
                continue
            candidates.append(message)
            where_from.append(position)
            partitions.append(partition)
            offset_list.append(offset)
        if not offsets:
            return
        decoded_batch = decode_transactions(
            [m.value() for m in candidates], self.settings.max_event_bytes,
            self.settings.max_json_depth, self._bounds, int(time.time() * 1000))
        accepted = decoded_batch.positions
        if decoded_batch.rejected:
            rejected += [(where_from[i], candidates[i], reason)
                         for i, reason in decoded_batch.rejected]
            rejected.sort(key=lambda entry: entry[0])
        if len(accepted) < len(candidates):
            candidates = [candidates[i] for i in accepted]
            partitions = [partitions[i] for i in accepted]
            offset_list = [offset_list[i] for i in accepted]
        # events whose key is not their customer id
        foreign_keys = sum(map(operator.ne, [m.key() for m in candidates],
                               map(str.encode, decoded_batch.customer_ids)))
        if foreign_keys:
            self.metrics.foreign_keys.inc(foreign_keys)
        last.update(offsets)
        self._waiting = self._lag_after(offsets)
        if rewound:  # a reset, a seek, or a recreated topic: which is it?
            self._check_topic()
        count = len(candidates) + len(rejected)
        self.metrics.events.inc(count)
        # The offsets wait for the outputs and for the events' state write.
        pending = self.checkpoint.open_batch(offsets, count, messages,
                                             state=bool(candidates))
        for _, message, reason in rejected:
            self.outputs.dead_letter(message, reason, pending)
        decoded = time.perf_counter()
        self._stages["decode"].observe(decoded - decoding)
        if candidates:
            tx_ids = decoded_batch.transaction_ids
            pending.decided, pending.decided_ids = candidates, tx_ids
            base = self.identity.base if self.identity is not None else 0
            batch = TransactionBatch(
                decoded_batch.customer_ids, decoded_batch.terminal_ids,
                decoded_batch.timestamps_array(), decoded_batch.amounts_array(),
                np.array(partitions, np.int64), np.array(offset_list, np.int64) + base,
                tx_ids)
            self._decide(batch, tx_ids, candidates, pending, started, decoded)
        self.batches += 1
        self.events += count
        self.last_progress = time.time()

    def _consumer_error(self, message: Message, error: KafkaError) -> None:
        if error.code() == KafkaError._AUTO_OFFSET_RESET:  # auto.offset.reset=error
            self._offset_reset()
            log.error("partition %s[%d] has no usable committed offset and "
                      "auto.offset.reset is error: %s", message.topic(),
                      message.partition(), error.str())
        elif error.code() != KafkaError._PARTITION_EOF:
            self.metrics.broker_errors.labels(error.name()).inc()
            log.warning("consumer error: %s", error.str())

    def _count_dead_letter(self) -> None:
        self.metrics.dead_letters.labels(self.settings.topic_dlq).inc()

    def _apply_labels(self, batch: LabelBatch, on_written: Callable[[], None]) -> None:
        self.metrics.events.inc(len(batch))
        self.events += len(batch)
        # While the store is down the labels wait in the state backlog (in order with
        # the transactions), their offsets held until they are counted.
        outcomes = self.core.apply_labels(batch, on_written)
        self._count_conflicts()
        self._count_unreadable()
        if outcomes is None:
            self.metrics.labels.labels("unavailable").inc(len(batch))
            return
        for outcome, count in outcomes.items():
            self.metrics.labels.labels(outcome).inc(count)
        self.labels_applied += len(batch)

    def _decide(self, batch: TransactionBatch, tx_ids: list[str], accepted: list[Message],
                pending: PendingBatch, started: float, decoded: float) -> None:
        decided = self.core.decide(batch, self.scorer, pending.state_written)
        scored_at = time.perf_counter()
        now_ms = int(time.time() * 1000)
        customers = batch.customer_ids
        self.outputs.send_all(
            self.settings.topic_decisions,
            decided.encoded(tx_ids, customers, now_ms, started, self.settings.emit_features),
            decision_keys([m.key() for m in accepted], customers), pending)
        produced = time.perf_counter()
        # Nothing below is part of the events' in-worker time (decode to produce).
        if decided.update is not None:
            # Redis runs the write while the next batch is polled and decoded; its reply
            # comes back with the next batch's read (or on revoke and shutdown).
            self.core.write(decided.update, batch, pending.state_written)
        updated = time.perf_counter()
        self._observe(batch, accepted, decided.codes, started, decoded,
                      decoded + decided.features_s, scored_at, produced, updated)
        self._count_unreadable()
        if not decided.degraded and self.drift is not None and self.drift.observe(
                decided.matrix):
            for name, value in self.drift.psi().items():
                self.metrics.feature_psi.labels(name).set(value)
        if self.challenger is not None:
            self._shadow(self.challenger, batch, decided.matrix, tx_ids, accepted,
                         decided.codes, decided.degraded, now_ms)

    def _observe(self, batch: TransactionBatch, accepted: list[Message],
                 outcome_codes: list[int], started: float, decoded: float, fetched: float,
                 scored_at: float, produced: float, updated: float) -> None:
        m, stages = self.metrics, self._stages
        n = len(batch)
        stages["features"].observe(fetched - decoded)
        stages["score"].observe(scored_at - fetched)
        stages["produce"].observe(produced - scored_at)
        stages["update"].observe(updated - produced)
        self._count_conflicts()
        in_worker = produced - started
        self.sizer.record(n, in_worker, self._waiting)
        self.shadow_budget.record_champion(in_worker)
        m.event_seconds.observe(in_worker, n)
        m.batch_size.observe(n)
        if in_worker > self._budget_s:
            m.budget_misses.inc(n)
        for code, outcome in enumerate(self._outcomes):
            count = outcome_codes.count(code)
            if count:
                outcome.inc(count)
        now_ms = time.time() * 1000.0
        stamps = np.fromiter((message.timestamp()[1] for message in accepted), np.float64,
                             len(accepted))
        stamps = stamps[stamps > 0]  # 0 or -1: the producer set no timestamp
        if stamps.size:
            m.end_to_end_seconds.observe_many(np.maximum(0.0, (now_ms - stamps) / 1000.0))

    def _shadow(self, challenger: Scorer, batch: TransactionBatch, matrix: np.ndarray,
                tx_ids: list[str], accepted: list[Message], champion_codes: list[int],
                degraded: list[str], scored_at_ms: int) -> None:
        """Score the batch with the challenger and publish to the shadow topic. Its
        outputs are not part of the batch's delivery: a shadow failure never holds back
        an offset (with exactly-once they ride in the same transaction)."""
        m = self.metrics
        n = len(batch)
        if not self.shadow_budget.allow():
            m.shadow_events.labels("skipped").inc(n)
            return
        started = time.perf_counter()
        try:
            scored = challenger.score(matrix)
            if not np.isfinite(scored.scores).all():
                raise ValueError("non-finite scores")
        except Exception as exc:  # a challenger's failure is its own problem
            m.shadow_events.labels("failed").inc(n)
            log.warning("challenger %s failed to score: %s", challenger.version, exc)
            return
        latency_ms = round((time.perf_counter() - started) * 1000.0, 3)
        shadow = DecidedBatch(scored.scores.tolist(), scored.codes.tolist(), scored.reasons,
                              matrix, None, degraded, challenger.version, 0.0, 0.0)
        codes, topic, on_delivery = shadow.codes, self.settings.topic_shadow, \
            self._shadow_delivered
        customers = batch.customer_ids
        for i, message in enumerate(accepted):
            self._produce_shadow(topic, encode_decision(shadow.decision(
                i, tx_ids[i], customers[i], scored_at_ms, latency_ms)),
                decision_key(message.key(), customers[i]), on_delivery)
        elapsed = time.perf_counter() - started
        self.shadow_budget.record_shadow(elapsed)
        m.shadow_seconds.observe(elapsed)
        m.shadow_events.labels("scored").inc(n)
        disagreements = sum(1 for a, b in zip(codes, champion_codes, strict=True) if a != b)
        if disagreements:
            m.shadow_disagreements.inc(disagreements)

    def _shadow_delivered(self, error: KafkaError | None, _message: Message) -> None:
        if error is not None:
            self.metrics.shadow_events.labels("undelivered").inc()

    def _use_models(self, models: ModelSet) -> None:
        """Score the next batch with ``models`` (called between batches)."""
        old = (self.scorer.version, self.challenger.version if self.challenger else None)
        champion, challenger = models.champion, models.challenger
        if challenger is not None and not self._shadow_topic_exists():
            log.error("challenger %s not shadowed: topic %s does not exist (run `fraudstream "
                      "topics create`)", challenger.version, self.settings.topic_shadow)
            challenger = None
        changed = champion is not self.scorer or self.drift is None
        self.scorer, self.challenger = champion, challenger
        if changed:
            baseline = champion.artifact.manifest.get("drift_baseline")
            self.drift = (DriftMonitor(baseline, FEATURE_NAMES, self.settings.drift_window)
                          if baseline else None)
        m = self.metrics
        m.model_info.info({"version": champion.version, "backend": champion.backend,
                           "fallback": champion.fallback or "none",
                           "challenger": challenger.version if challenger else "none"})
        logs.bind(model_version=champion.version)
        new = (champion.version, challenger.version if challenger else None)
        if new != old and self.batches:
            log.info("now scoring with champion %s (was %s), challenger %s (was %s)",
                     new[0], old[0], new[1] or "none", old[1] or "none")
            m.model_swaps.inc()

    def _shadow_topic_exists(self) -> bool:
        topic = self.settings.topic_shadow
        try:
            # Between two batches, once per challenger change: a short wait at most.
            meta = self.producer.list_topics(topic, timeout=2.0).topics.get(topic)
        except KafkaException:
            return False
        return meta is not None and meta.error is None

    def _produce_shadow(self, topic: str, value: bytes, key: bytes,
                        callback: Callable[[Any, Any], None]) -> None:
        """A shadow decision: its failure is counted and changes nothing else."""
        try:
            produce_or_wait(self.producer, topic, value, key, callback)
        except KafkaException:
            self.metrics.shadow_events.labels("undelivered").inc()

    def _check_outputs(self) -> None:
        """Before joining the group: the output topics exist (a worker that could only
        fail every record ends at once, exit 7), and dead letters are cut to fit the
        smaller of the producer's and the DLQ topic's record limits."""
        admin = AdminClient(admin_config(self.settings))
        missing = missing_topics(admin.list_topics, [self.settings.topic_decisions,
                                                     self.settings.topic_dlq])
        if missing:
            self.outputs.failed_topic = missing_topic_failure(missing)
            self._write_status(force=True)  # readiness says why, then the worker ends
            self.outputs.raise_if_topic_failed()
        topic_max = topic_max_message_bytes(admin, self.settings.topic_dlq)
        self.outputs.max_record_bytes = record_limit(
            self.settings.producer_max_message_bytes, topic_max)
        self.labels.max_record_bytes = self.outputs.max_record_bytes
        log.info("records up to %d bytes (producer %d, topic %s: %s)",
                 self.outputs.max_record_bytes, self.settings.producer_max_message_bytes,
                 self.settings.topic_dlq, topic_max if topic_max is not None else "not set")

    def _check_topic(self) -> None:
        """Which incarnation of the transactions topic is read (stream.topic_identity)."""
        self._next_identity_check = time.monotonic() + self.settings.state_epoch_check_s
        if self.identity is None:
            return
        try:
            self.identity.check()
        except Exception as exc:  # the store is down: the next check will tell
            log.warning("topic identity not checked (%s); checked again later", exc)
        if self.identity.topic_id is None:  # not known yet: ask again soon
            self._next_identity_check = time.monotonic() + IDENTITY_RETRY_S

    def _group_has_committed(self) -> bool:
        """Has the consumer group committed offsets on the transactions topic? Then the
        feature state should exist, and an empty store at start is a loss."""
        return group_has_committed(AdminClient(admin_config(self.settings)),
                                   self.settings.group_id, self.settings.topic_transactions,
                                   self.settings.shutdown_timeout_s)

    def _offset_reset(self) -> None:
        self.metrics.offset_resets.inc()

    def _on_client_error(self, error: KafkaError) -> None:
        """librdkafka's global errors (transport, all brokers down): counted; the broker
        watch decides when silence has lasted too long. A refused login or TLS handshake
        ends the worker: the same settings will be refused again."""
        self.metrics.broker_errors.labels(error.name()).inc()
        log.warning("kafka client error: %s", error.str())
        if is_refusal(error) and self._callback_error is None:
            self._callback_error = CredentialsError(refusal_message(error))

    def _on_stats(self, raw: str) -> None:
        """librdkafka statistics, once a second: broker liveness and lag per partition."""
        self.broker.on_stats(raw)
        lags = self.broker.lags
        gauge = self.metrics.consumer_lag
        for topic, partition in self._lag_reported - lags.keys():
            gauge.remove(topic, str(partition))  # revoked: its new owner reports it
        for (topic, partition), lag in lags.items():
            gauge.labels(topic, str(partition)).set(lag)
        self._lag_reported = set(lags)

    def _complete_update(self) -> None:
        self.core.complete()
        self._count_conflicts()

    def _count_unreadable(self) -> None:
        for prefix, count in self.features.take_unreadable().items():
            self.metrics.feature_state_unreadable.labels(prefix).inc(count)

    def _count_duplicates(self) -> None:
        duplicates = self.features.take_duplicates()
        if duplicates:
            self.metrics.duplicate_transactions.inc(duplicates)

    def _count_conflicts(self) -> None:
        conflicts = self.features.take_conflicts()
        if conflicts:
            self.metrics.feature_conflicts.inc(conflicts)

    def _lag_after(self, offsets: dict[tuple[str, int], int]) -> int:
        """Events still waiting behind a batch whose last offset on each partition is
        ``offsets``, from the high watermarks of the last fetch responses (right even
        where ListOffsets is not)."""
        lag = 0
        for (topic, partition), offset in offsets.items():
            _, high = self.consumer.get_watermark_offsets(TopicPartition(topic, partition),
                                                          cached=True)
            if high >= 0:
                lag += max(0, high - offset - 1)
        return lag

    def _write_status(self, force: bool = False) -> None:
        backlog = self.core.backlog
        if backlog.events or self._backlog_shown or force:
            self.metrics.state_backlog_events.set(backlog.events)
            self.metrics.state_backlog_age.set(backlog.age_s())
            self._backlog_shown = backlog.events
        if self._status is None:
            return
        self._status.maybe_write(WorkerStatus(
            pid=os.getpid(), written_at=time.time(),
            assigned=sorted(f"{t}[{p}]" for t, p in
                            self.checkpoint.assigned | self.labels.assigned),
            batches=self.batches,
            events=self.events, last_progress=self.last_progress, stopping=self.stopping,
            labels=self.labels_applied, lag=self.broker.lag,
            broker_silent_s=round(self.broker.silent_for(), 1),
            model_version=self.scorer.version,
            challenger_version=self.challenger.version if self.challenger else "",
            input_partitions=len(self.checkpoint.assigned),
            group_state=self.broker.group_state,
            output_error=str(self.outputs.failed_topic or ""),
            state_backlog=self.core.backlog.events, paused=self.checkpoint.paused,
            state_lost=self.core.epoch.lost if self.core.epoch else "",
        ), force)

    # -- rebalance callbacks: exceptions are kept and raised in the loop ---------------

    def _on_assign(self, _consumer: Consumer, partitions: list[Any]) -> None:
        self.checkpoint.assigned_now(partitions)
        if partitions:
            log.info("partitions assigned: %s", _describe(partitions))
        self._write_status(force=True)

    def _on_revoke(self, _consumer: Consumer, partitions: list[Any]) -> None:
        try:
            self._complete_update()
            self.checkpoint.revoked(partitions, self.settings.shutdown_timeout_s)
        except BaseException as exc:  # surfaced by the loop, never swallowed by librdkafka
            self._callback_error = exc
        if partitions:
            log.info("partitions revoked: %s", _describe(partitions))

    def _on_lost(self, _consumer: Consumer, partitions: list[Any]) -> None:
        try:
            self.checkpoint.lost(partitions)
        except BaseException as exc:
            self._callback_error = exc
        log.warning("partitions lost (not committed): %s", _describe(partitions))

    def _raise_callback_error(self) -> None:
        if self._callback_error is not None:
            error, self._callback_error = self._callback_error, None
            raise error

    # -- shutdown ------------------------------------------------------------------

    def _shutdown(self) -> None:
        timeout = self.settings.shutdown_timeout_s
        watchdog = threading.Timer(timeout + 5.0, _force_exit)
        watchdog.daemon = True
        watchdog.start()
        try:
            try:
                self._complete_update()
                self.checkpoint.drain(timeout)
            finally:
                self.checkpoint.commit(asynchronous=False)
                self.consumer.close()
                self.labels.close(timeout)
                if self.follower is not None:
                    self.follower.stop()
        finally:
            watchdog.cancel()
            if self.transactions is not None:
                self.transactions.close()
        stop_counting(self._resets)
        self._write_status(force=True)
        log.info("worker stopped", extra={"batches": self.batches})


def _force_exit() -> None:
    log.error("shutdown took too long; exiting")
    os._exit(3)


def _describe(partitions: list[Any]) -> str:
    return ", ".join(f"{tp.topic}[{tp.partition}]" for tp in partitions)
