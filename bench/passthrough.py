"""The ceiling: consume and produce the same bytes, batched, no processing at all."""

from __future__ import annotations

import signal

from confluent_kafka import Consumer, Producer

from fraudstream.settings import Settings
from stream.kafka_config import consumer_config, producer_config
from stream.produce import produce_or_wait


def main() -> None:
    settings = Settings.from_env()
    consumer = Consumer({**consumer_config(settings), "enable.auto.commit": True,
                         "enable.auto.offset.store": True})
    producer = Producer(producer_config(settings))
    running = [True]
    signal.signal(signal.SIGTERM, lambda *_: running.__setitem__(0, False))
    consumer.subscribe([settings.topic_transactions])
    while running[0]:
        for message in consumer.consume(settings.max_batch, 0.05):
            if message.error() is None:
                produce_or_wait(producer, settings.topic_decisions, message.value(),
                                message.key())
        producer.poll(0)
    producer.flush(10)
    consumer.close()


if __name__ == "__main__":
    main()
