"""Has a consumer group committed offsets on a topic? Asked once at worker start."""

from __future__ import annotations

import logging

from confluent_kafka import ConsumerGroupTopicPartitions, KafkaException
from confluent_kafka.admin import AdminClient

log = logging.getLogger(__name__)


def group_has_committed(admin: AdminClient, group: str, topic: str, timeout_s: float,
                        ) -> bool:
    """True when ``group`` holds a committed offset on a partition of ``topic``. A broker
    that cannot say counts as no (logged): a false loss would flag every decision."""
    request = [ConsumerGroupTopicPartitions(group)]
    try:
        answer = admin.list_consumer_group_offsets(
            request, request_timeout=timeout_s)[group].result(timeout=timeout_s)
    except (KafkaException, TimeoutError, ValueError) as exc:
        log.warning("cannot tell whether group %s committed offsets (%s): an empty "
                    "feature store at start is taken as new", group, exc)
        return False
    return any(tp.topic == topic and tp.offset >= 0
               for tp in answer.topic_partitions or ())
