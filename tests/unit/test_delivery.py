"""stream.delivery: offsets are released only for contiguous, fully delivered batches."""

from __future__ import annotations

from confluent_kafka import TopicPartition

from fraudstream.stream.delivery import DeliveryTracker, PendingBatch


class FakeKafkaError:
    """Just enough of confluent_kafka.KafkaError: the tracker only calls str()."""

    def __init__(self, text: str) -> None:
        self.text = text

    def str(self) -> str:
        return self.text


def deliver(batch: PendingBatch, times: int = 1, error: FakeKafkaError | None = None) -> None:
    for _ in range(times):
        batch.on_delivery(error, None)


def as_dict(released: list[TopicPartition]) -> dict[tuple[str, int], int]:
    out = {(tp.topic, tp.partition): tp.offset for tp in released}
    assert len(out) == len(released), "a partition was listed twice"
    return out


def test_nothing_to_release_at_first() -> None:
    tracker = DeliveryTracker()
    assert tracker.release() == []
    assert tracker.in_flight == 0


def test_a_finished_batch_releases_offset_plus_one() -> None:
    tracker = DeliveryTracker()
    batch = tracker.open_batch({("tx", 0): 41, ("tx", 3): 7}, expected=2)
    assert tracker.in_flight == 2
    deliver(batch)
    assert tracker.release() == []  # one output still in flight
    assert tracker.in_flight == 1
    deliver(batch)
    assert batch.done
    assert as_dict(tracker.release()) == {("tx", 0): 42, ("tx", 3): 8}
    assert tracker.release() == []  # released once only
    assert tracker.in_flight == 0


def test_released_items_are_topic_partitions() -> None:
    tracker = DeliveryTracker()
    deliver(tracker.open_batch({("transactions", 2): 9}, expected=1))
    (tp,) = tracker.release()
    assert isinstance(tp, TopicPartition)
    assert (tp.topic, tp.partition, tp.offset) == ("transactions", 2, 10)


def test_finished_batch_behind_an_unfinished_one_is_held_back() -> None:
    tracker = DeliveryTracker()
    first = tracker.open_batch({("tx", 0): 10}, expected=2)
    second = tracker.open_batch({("tx", 0): 20, ("tx", 1): 5}, expected=1)
    deliver(second)
    assert second.done and not first.done
    assert tracker.release() == []
    deliver(first)
    assert tracker.release() == []  # first still has one output in flight
    deliver(first)
    assert as_dict(tracker.release()) == {("tx", 0): 21, ("tx", 1): 6}


def test_only_the_contiguous_head_is_released() -> None:
    tracker = DeliveryTracker()
    a = tracker.open_batch({("tx", 0): 1}, expected=1)
    b = tracker.open_batch({("tx", 0): 2}, expected=1)
    c = tracker.open_batch({("tx", 0): 3, ("tx", 1): 30}, expected=1)
    deliver(a)
    deliver(c)
    assert as_dict(tracker.release()) == {("tx", 0): 2}
    assert tracker.in_flight == 1
    deliver(b)
    assert as_dict(tracker.release()) == {("tx", 0): 4, ("tx", 1): 31}


def test_max_offset_per_partition_is_merged_across_batches() -> None:
    tracker = DeliveryTracker()
    deliver(tracker.open_batch({("tx", 0): 100, ("tx", 1): 7}, expected=1))
    deliver(tracker.open_batch({("tx", 0): 90}, expected=1))
    deliver(tracker.open_batch({("tx", 2): 0, ("labels", 0): 3}, expected=1))
    assert as_dict(tracker.release()) == {
        ("tx", 0): 101, ("tx", 1): 8, ("tx", 2): 1, ("labels", 0): 4}


def test_batch_without_outputs_is_done_at_once() -> None:
    tracker = DeliveryTracker()
    batch = tracker.open_batch({("tx", 0): 5}, expected=0)
    assert batch.done
    assert as_dict(tracker.release()) == {("tx", 0): 6}


def test_a_failed_delivery_keeps_its_batch_open_and_is_queued() -> None:
    tracker = DeliveryTracker()
    batch = tracker.open_batch({("tx", 0): 10}, expected=2)
    deliver(batch)
    error = FakeKafkaError("Broker: Message size too large")
    deliver(batch, error=error)
    assert not batch.done  # the failed output is not finished: the loop handles it
    assert tracker.release() == []
    failures = tracker.take_failures()
    assert [(f[0], f[1]) for f in failures] == [(batch, error)]
    assert tracker.take_failures() == []
    deliver(batch)  # its replacement (produced again, or a dead letter) is delivered
    assert as_dict(tracker.release()) == {("tx", 0): 11}


def test_failures_of_later_batches_reach_the_same_queue() -> None:
    tracker = DeliveryTracker()
    tracker.take_failures()
    first = tracker.open_batch({("tx", 0): 1}, expected=1)
    second = tracker.open_batch({("tx", 0): 2}, expected=1)
    deliver(first, error=FakeKafkaError("a"))
    deliver(second, error=FakeKafkaError("b"))
    assert [f[0] for f in tracker.take_failures()] == [first, second]


def test_offsets_behind_an_unhandled_failure_are_never_released() -> None:
    tracker = DeliveryTracker()
    bad = tracker.open_batch({("tx", 0): 10}, expected=1)
    later = tracker.open_batch({("tx", 0): 20}, expected=1)
    deliver(bad, error=FakeKafkaError("Broker: Message size too large"))
    deliver(later)
    # Committing 21 on tx[0] would also commit offsets 0..10 of the failed batch.
    for _ in range(2):
        assert tracker.release() == []


def test_forget_removes_lost_partitions_from_pending_batches() -> None:
    tracker = DeliveryTracker()
    a = tracker.open_batch({("tx", 0): 10, ("tx", 1): 20}, expected=1)
    b = tracker.open_batch({("tx", 1): 25, ("tx", 2): 5}, expected=1)
    tracker.forget([TopicPartition("tx", 1), TopicPartition("other", 0)])
    assert a.offsets == {("tx", 0): 10}
    assert b.offsets == {("tx", 2): 5}
    deliver(a)
    deliver(b)
    assert as_dict(tracker.release()) == {("tx", 0): 11, ("tx", 2): 6}


def test_forget_keeps_same_partition_number_of_another_topic() -> None:
    tracker = DeliveryTracker()
    batch = tracker.open_batch({("tx", 1): 3, ("labels", 1): 4}, expected=0)
    tracker.forget([TopicPartition("tx", 1)])
    assert batch.offsets == {("labels", 1): 4}
    assert as_dict(tracker.release()) == {("labels", 1): 5}


def test_forget_of_nothing_changes_nothing() -> None:
    tracker = DeliveryTracker()
    tracker.open_batch({("tx", 0): 1}, expected=0)
    tracker.forget([])
    assert as_dict(tracker.release()) == {("tx", 0): 2}
