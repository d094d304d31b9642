"""What every benchmark peer process needs: settings, auto-committing clients, and a
flag that SIGTERM clears."""

from __future__ import annotations

import signal
from dataclasses import dataclass

from confluent_kafka import Consumer, Producer

from fraudstream import model_trust
from fraudstream.settings import Settings
from fraudstream.stream.kafka_config import consumer_config, producer_config


@dataclass
class Peer:
    settings: Settings
    consumer: Consumer
    producer: Producer
    running: bool = True

    @classmethod
    def start(cls) -> Peer:
        settings = Settings.from_env()
        model_trust.configure(settings)
        # Peers commit the simple way: automatically, as the code a team starts from does.
        consumer = Consumer({**consumer_config(settings), "enable.auto.commit": True,
                             "enable.auto.offset.store": True})
        peer = cls(settings, consumer, Producer(producer_config(settings)))
        signal.signal(signal.SIGTERM, lambda *_: setattr(peer, "running", False))
        consumer.subscribe([settings.topic_transactions])
        return peer

    def close(self) -> None:
        self.producer.flush(10)
        self.consumer.close()
