"""What the worker scored is what the model was trained on, and replays change nothing.

Both tests stream through a real worker on a real broker and Redis. Labels are sent day by
day, as soon as each day's transactions are decided, so that by the time a transaction
on day d is scored every label up to day d-7 is known: the offline engine's assumption.
"""

from __future__ import annotations

import numpy as np
import pytest

from fraudstream.features.definitions import FEATURE_NAMES
from fraudstream.features.offline import compute_matrix
from fraudstream.settings import Settings
from fraudstream.simulator.generator import simulate
from tests.kafka_helpers import make_topics, rewind_group, running_worker
from tests.parity import scored_features, snapshot, stream_day_by_day
from tests.population import recent
from tests.state_oracle import state_differences
from tests.waiting import wait_for


@pytest.mark.slow
def test_fifty_thousand_streamed_transactions_match_the_offline_features(
        settings: Settings) -> None:
    settings = settings.replace(emit_features=True, max_batch=500)
    make_topics(settings, partitions=4)
    frame = simulate(recent(40, customers=700, terminals=1400, seed=11))
    assert len(frame) >= 50_000, len(frame)
    with running_worker(settings) as worker:
        stream_day_by_day(settings, worker, frame)
        scored = scored_features(settings, expect=len(frame))
    ids = [str(i) for i in frame["transaction_id"]]
    assert len(scored) + len(scored.on_defaults) == len(frame), "a transaction not decided"
    print(f"[fifty thousand] decided={len(frame)} on_default_features="
          f"{len(scored.on_defaults)}")
    assert len(scored.on_defaults) < len(frame) // 100, "the store hardly ever answered"
    on_features = [i for i, t in enumerate(ids) if t in scored]
    offline = compute_matrix(frame)[on_features]
    online = np.array([scored[ids[i]] for i in on_features])
    assert frame["is_fraud"].sum() > 100 and online[:, FEATURE_NAMES.index(
        "terminal_risk_30d")].max() > 0, "the stream must exercise terminal risk"
    diff = np.abs(online - offline)
    if diff.max() > 1e-9:
        row, col = np.unravel_index(int(diff.argmax()), diff.shape)
        bad_rows = int((diff > 1e-9).any(axis=1).sum())
        pytest.fail(f"{bad_rows} transactions differ; first worst: feature "
                    f"{FEATURE_NAMES[col]} of transaction {ids[on_features[row]]}: worker "
                    f"{online[row, col]!r}, offline {offline[row, col]!r}")
    # Whatever was decided on defaults, the state is the offline engine's.
    assert state_differences(settings, frame) == []


@pytest.mark.parametrize("rewind", ["to-start", "to-middle"])
def test_reconsuming_from_an_earlier_offset_changes_no_feature(settings: Settings,
                                                               rewind: str) -> None:
    make_topics(settings, partitions=3)
    frame = simulate(recent(20, customers=200, terminals=300, seed=5))
    with running_worker(settings) as worker:
        stream_day_by_day(settings, worker, frame)
        processed = worker.events
    before = snapshot(settings)
    assert len(before) == frame["customer_id"].nunique() + frame["terminal_id"].nunique()

    rewound = rewind_group(settings, (lambda _: 0) if rewind == "to-start"
                            else (lambda o: o // 2))
    assert rewound > 1000
    if rewind == "to-start":
        assert rewound == processed
    with running_worker(settings) as again:
        wait_for(lambda: again.events >= rewound, "the replay to finish")
    assert again.events == rewound
    assert snapshot(settings) == before, "a replay changed feature state"
