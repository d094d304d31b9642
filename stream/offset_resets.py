"""Offset resets, counted: a committed offset the broker no longer has (older than the
retention, or a topic recreated) makes the consumer start over at ``auto.offset.reset``.
librdkafka logs such a reset (facility OFFSET, at warning level when an error caused
it); this filter on the consumers' log counts every one it sees, and lets it be logged.
With ``auto.offset.reset=error`` the reset is instead an error the worker reports."""

from __future__ import annotations

import logging
from collections.abc import Callable

from fraudstream.stream.kafka_config import librdkafka_logger_name

CONSUMER_LOGGER = librdkafka_logger_name("consumer")


class OffsetResetCounter(logging.Filter):
    def __init__(self, count: Callable[[], None]) -> None:
        super().__init__()
        self._count = count

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args if isinstance(record.args, tuple) else ()
        facility = args[0] if args else ""
        text = str(args[-1]) if args else record.getMessage()
        if facility == "OFFSET" and "offset reset" in text.lower():
            self._count()
        return True


def count_offset_resets(count: Callable[[], None]) -> OffsetResetCounter:
    """Count every reset the consumers of this process log, from now on."""
    counter = OffsetResetCounter(count)
    logging.getLogger(CONSUMER_LOGGER).addFilter(counter)
    return counter


def stop_counting(counter: OffsetResetCounter) -> None:
    logging.getLogger(CONSUMER_LOGGER).removeFilter(counter)
