"""Fixtures of the integration tests that more than one module uses."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from fraudstream import services


@pytest.fixture(scope="module")
def redis_cluster_url() -> Iterator[str]:
    """A three-node Redis Cluster of this module."""
    url, processes = services.start_redis_cluster(3)
    try:
        yield url
    finally:
        for process in processes:
            process.stop()
