"""The ceiling: consume and produce the same bytes, batched, no processing at all."""

from __future__ import annotations

from fraudstream.bench.peer import Peer
from fraudstream.stream.poll import poll_available
from fraudstream.stream.produce import produce_or_wait


def main() -> None:
    peer = Peer.start()
    topic, batch = peer.settings.topic_decisions, peer.settings.max_batch
    while peer.running:
        for message in poll_available(peer.consumer.consume, batch, 0.05):
            if message.error() is None:
                produce_or_wait(peer.producer, topic, message.value(), message.key())
        peer.producer.poll(0)
    peer.close()


if __name__ == "__main__":
    main()
