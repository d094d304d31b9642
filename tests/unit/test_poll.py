"""stream.poll.poll_available: a batch is what has arrived, never a wait for it to fill."""

from __future__ import annotations

from typing import Any

from fraudstream.stream.poll import poll_available


class FakeQueue:
    """A consumer queue: ``arrivals`` lands on the first blocking wait."""

    def __init__(self, ready: int, arrivals: int = 0) -> None:
        self.ready = ready
        self.arrivals = arrivals
        self.calls: list[tuple[int, float]] = []

    def consume(self, size: int, timeout: float) -> list[Any]:
        self.calls.append((size, timeout))
        if not self.ready and timeout > 0:
            self.ready, self.arrivals = self.arrivals, 0
        taken = min(size, self.ready)
        self.ready -= taken
        return [object() for _ in range(taken)]


def test_takes_what_is_ready_without_waiting() -> None:
    queue = FakeQueue(ready=30)
    assert len(poll_available(queue.consume, 500, 0.02)) == 30
    assert queue.calls == [(500, 0)]


def test_never_more_than_the_batch_size() -> None:
    queue = FakeQueue(ready=800)
    assert len(poll_available(queue.consume, 500, 0.02)) == 500
    assert queue.ready == 300


def test_on_an_empty_queue_waits_for_the_first_then_takes_the_rest() -> None:
    queue = FakeQueue(ready=0, arrivals=12)
    assert len(poll_available(queue.consume, 500, 0.02)) == 12
    assert queue.calls == [(500, 0), (1, 0.02), (499, 0)]


def test_nothing_arrives_within_the_wait() -> None:
    queue = FakeQueue(ready=0)
    assert poll_available(queue.consume, 500, 0.02) == []
    assert queue.calls == [(500, 0), (1, 0.02)]
