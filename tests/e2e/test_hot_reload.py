"""A promotion and a rollback during a running stream, with two worker processes (as on two
hosts sharing the registry's storage): both follow, decisions switch model_version, none
is lost or repeated. A promotion the registry refuses changes nothing."""

from __future__ import annotations

import time
from pathlib import Path

from fraudstream.models.artifact import MODEL_FILE
from fraudstream.settings import Settings
from fraudstream.simulator.generator import simulate
from fraudstream.stream.decisions import decision_decoder
from fraudstream.stream.status import read_status
from tests.conftest import ModelPair
from tests.e2e.cli import WorkerProcess, run_cli, worker_process
from tests.e2e.faults import PacedLoad, outcome
from tests.kafka_helpers import make_topics, read_topic
from tests.population import recent
from tests.waiting import wait_for


def wait_versions(workers: list[WorkerProcess], version: str, timeout: float = 15) -> float:
    """Until every worker's status names ``version``; the wall clock time it happened."""
    def switched() -> bool:
        assert all(w.alive() for w in workers), [w.tail() for w in workers]
        return all((s := read_status(w.status)) is not None and s.model_version == version
                   for w in workers)

    wait_for(switched, lambda: f"every worker to switch to {version}: "
                               f"{[read_status(w.status) for w in workers]}", timeout, 0.05)
    return time.time()


def wait_both_decide(workers: list[WorkerProcess], more: int) -> None:
    """Until each worker has processed ``more`` events beyond what its status says now."""
    for worker in workers:
        now = read_status(worker.status)
        worker.wait_processed((now.events if now else 0) + more)


def test_promote_and_roll_back_mid_stream_on_two_replicas(
        settings: Settings, tmp_path: Path, model_pair: ModelPair) -> None:
    models, champion, newcomer = model_pair.registry, model_pair.champion, model_pair.other
    settings = settings.replace(model_dir=str(models.root), model_poll_s=0.2)
    make_topics(settings, partitions=4)
    # About 110 events/s from a frame that would last a minute: the load is halted once
    # the three phases are measured, however long a loaded machine makes them take.
    frame = simulate(recent(12))
    step = 220
    with worker_process(settings, tmp_path, name="host-a") as a, \
            worker_process(settings, tmp_path, name="host-b") as b:
        load = PacedLoad(settings, frame, rate=len(frame) / 60.0)
        load.start()
        wait_both_decide([a, b], step)
        promoted_at = time.time()
        promote = run_cli(settings, "models", "promote", newcomer)
        assert promote.returncode == 0, promote.stderr
        pointer_moved_at = time.time()
        switched_at = wait_versions([a, b], newcomer)
        wait_both_decide([a, b], step)  # each decides with the newcomer
        rolled_back_at = time.time()
        rollback = run_cli(settings, "models", "rollback")
        assert rollback.returncode == 0, rollback.stderr
        assert f"champion: {champion}" in rollback.stdout
        pointer_back_at = time.time()
        back_at = wait_versions([a, b], champion)
        wait_both_decide([a, b], step // 4)  # decisions that show what the rollback brought
        assert load.is_alive(), "the load ended before both replicas followed the rollback"
        load.halt()
        sent = load.finish()
        frame = frame.iloc[:sent]
        records = read_topic(settings, settings.topic_decisions, expect=sent, settle=1.0)
        assert a.stop() == 0, a.tail()
        assert b.stop() == 0, b.tail()
    result = outcome(frame, records)
    decisions = [decision_decoder.decode(r.value) for r in records]
    # Under steady load, the last decision by the old model after the pointer moved is
    # when the slower of the two workers switched.
    last_old = max(d.scored_at for d in decisions
                   if d.model_version == champion and d.scored_at / 1000 < rolled_back_at)
    last_new = max(d.scored_at for d in decisions if d.model_version == newcomer)
    result.report("promote and roll back mid-stream",
                  all_followed_promotion_s=round(last_old / 1000 - pointer_moved_at, 2),
                  all_followed_rollback_s=round(last_new / 1000 - pointer_back_at, 2),
                  status_showed_both_s=round(switched_at - pointer_moved_at, 2))
    assert result.lost == 0 and result.duplicates == 0
    by_phase: dict[str, set[str]] = {"before": set(), "promoted": set(), "rolled back": set()}
    for d in decisions:
        at = d.scored_at / 1000.0
        if at < promoted_at:
            by_phase["before"].add(d.model_version)
        elif switched_at < at < rolled_back_at:
            by_phase["promoted"].add(d.model_version)
        elif at > back_at:
            by_phase["rolled back"].add(d.model_version)
    assert by_phase == {"before": {champion}, "promoted": {newcomer},
                        "rolled back": {champion}}, by_phase
    assert {d.model_version for d in decisions} == {champion, newcomer}
    history = [(e["action"], e["version"]) for e in models.history()]
    assert history[-2:] == [("promote", newcomer), ("rollback", champion)]


def test_a_refused_promotion_changes_nothing(model_pair: ModelPair) -> None:
    models, champion, newcomer = model_pair.registry, model_pair.champion, model_pair.other
    with open(models.root / newcomer / MODEL_FILE, "ab") as handle:
        handle.write(b"tampered")
    result = run_cli(None, "models", "--registry", str(models.root), "promote", newcomer)
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "does not match its sha256" in lines[0], result.stderr
    assert models.champion_version() == champion
    unknown = run_cli(None, "models", "--registry", str(models.root), "promote", "v-none")
    assert unknown.returncode == 1
    assert unknown.stderr.strip().startswith("fraudstream: error: no model version v-none")
    listing = run_cli(None, "models", "--registry", str(models.root), "list",
                      env={"COLUMNS": "200"})
    assert listing.returncode == 0
    assert champion in listing.stdout and "champion" in listing.stdout
