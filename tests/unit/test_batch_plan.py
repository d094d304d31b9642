"""score-file's plan: paths, formats and the output's fields, before any model loads."""

from __future__ import annotations

from pathlib import Path

import pytest

from fraudstream.batch.plan import default_rejects_path, make_plan
from fraudstream.batch.score_file import DECISION_SCHEMA
from fraudstream.batch.validate import Layout
from fraudstream.errors import ConfigError
from fraudstream.stream.decisions import Decision

HEADER = "transaction_id,timestamp,customer_id,terminal_id,amount,is_fraud,label_time\n"


def test_the_output_has_the_decision_event_fields_in_their_order() -> None:
    fields = Decision.__struct_fields__
    assert tuple(DECISION_SCHEMA.names) == fields[:len(DECISION_SCHEMA.names)]
    assert set(fields) - set(DECISION_SCHEMA.names) == {"scored_at", "latency_ms", "features"}


def test_rejects_sit_beside_the_output() -> None:
    assert default_rejects_path(Path("out/d.parquet")) == Path("out/d.rejects.parquet")
    assert default_rejects_path(Path("d.csv")) == Path("d.rejects.csv")


def test_a_plan_checks_paths_then_the_input(tmp_path: Path) -> None:
    source = tmp_path / "in.csv"
    source.write_text(HEADER + "1,1764072000000,c,t,5.0,1,\n")
    plan = make_plan(source, tmp_path / "out.parquet")
    assert plan.rejects == tmp_path / "out.rejects.parquet"
    assert plan.layout == Layout(labels=True, label_times=True)
    assert not make_plan(source, tmp_path / "o.csv", use_labels=False).layout.labels
    with pytest.raises(ConfigError, match="three different files"):
        make_plan(source, tmp_path / "o.csv", rejects=tmp_path / "o.csv")
    with pytest.raises(ConfigError, match="three different files"):
        make_plan(source, source)
    with pytest.raises(ConfigError, match=r"^rejects file r\.txt: unknown format"):
        make_plan(source, tmp_path / "o.csv", rejects=Path("r.txt"))
