"""stream.offset_resets: librdkafka's reset log lines (as confluent-kafka hands them to a
Python logger) are counted, and still logged."""

from __future__ import annotations

import logging

from fraudstream.stream.offset_resets import CONSUMER_LOGGER, count_offset_resets, stop_counting

RESET = ("tx [0]: offset reset (at offset 1000 (leader epoch -1), broker 1) to offset "
         "BEGINNING (leader epoch -1): fetch failed due to requested offset not available "
         "on the broker: Broker: Offset out of range")


def test_reset_lines_are_counted_and_other_lines_are_not(caplog) -> None:
    counted: list[int] = []
    counter = count_offset_resets(lambda: counted.append(1))
    logger = logging.getLogger(CONSUMER_LOGGER)
    try:
        with caplog.at_level(logging.WARNING, logger=CONSUMER_LOGGER):
            logger.log(logging.WARNING, "%s [%s] %s", "OFFSET", "rdkafka#consumer-1", RESET)
            logger.log(logging.WARNING, "%s [%s] %s", "FAIL", "rdkafka#consumer-1",
                       "127.0.0.1:9092/1: Connect failed")
            logger.log(logging.WARNING, "%s [%s] %s", "OFFSET", "rdkafka#consumer-1",
                       "tx [1]: committed offset 5 is beyond the end")
    finally:
        stop_counting(counter)
    assert counted == [1]
    assert "offset reset" in caplog.text, "the reset is still logged"
