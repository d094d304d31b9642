"""Session services on free loopback ports, a unique namespace per test, leak checks."""

from __future__ import annotations

import fcntl
import os
import pickle
import shutil
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pytest

from fraudstream import services
from fraudstream.models.registry import Registry
from fraudstream.models.train import train
from fraudstream.settings import PREFIX, Settings
from fraudstream.simulator.generator import simulate
from fraudstream.simulator.handbook import FraudCounts, simulate_handbook
from tests import signing_keys
from tests.population import TEST_POPULATION
from tests.processes import child_pids
from tests.threads import lingering
from tests.threads import running as running_threads


def pytest_configure(config: pytest.Config) -> None:
    signing_keys.install()  # before any test writes or loads a model


def pytest_unconfigure(config: pytest.Config) -> None:
    signing_keys.remove()


@pytest.fixture(scope="session")
def kafka_bootstrap() -> Iterator[str]:
    with services.kafka_bootstrap(os.environ.get(PREFIX + "KAFKA_BOOTSTRAP"),
                                  use_containers=True) as bootstrap:
        yield bootstrap


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    with services.redis_url(os.environ.get(PREFIX + "REDIS_URL"),
                            use_containers=True) as url:
        yield url


@pytest.fixture(autouse=True)
def trusted_test_keys() -> None:
    """Every test starts trusting (and signing with) the suite's key pair: a test that
    runs a command in this process (``cli.main``) sets the process's trust from its own
    settings, and the next test must not inherit that."""
    signing_keys.install()


@pytest.fixture(scope="session")
def handbook_reference(tmp_path_factory: pytest.TempPathFactory,
                       worker_id: str) -> tuple[pd.DataFrame, FraudCounts]:
    """The handbook's reference run (about 30 s), generated once for the whole run: the
    first test process to need it writes it where every process of the run looks (the
    parent of each xdist worker's base directory), the others read it."""
    base = tmp_path_factory.getbasetemp()
    shared = base if worker_id == "master" else base.parent
    path = shared / "handbook-reference.pickle"
    with open(shared / "handbook-reference.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file is closed
        if path.exists():
            with open(path, "rb") as cached:
                reference: tuple[pd.DataFrame, FraudCounts] = pickle.load(cached)
            return reference
        reference = simulate_handbook()
        with open(path.with_suffix(".partial"), "wb") as partial:
            pickle.dump(reference, partial, protocol=pickle.HIGHEST_PROTOCOL)
        path.with_suffix(".partial").rename(path)
        return reference


@pytest.fixture(scope="session")
def model_registry(tmp_path_factory: pytest.TempPathFactory) -> Path:
    signing_keys.install()
    root = tmp_path_factory.mktemp("registry")
    train(simulate(TEST_POPULATION), root)
    return root


@pytest.fixture(scope="session")
def two_models(tmp_path_factory: pytest.TempPathFactory, model_registry: Path) -> Path:
    """The session's champion (gradient-boosted trees) and a logistic regression trained
    on the same data beside it, not promoted. Tests change pointers in a copy of it
    (``model_pair``), never here."""
    signing_keys.install()
    root = tmp_path_factory.mktemp("two-models") / "registry"
    shutil.copytree(model_registry, root)
    train(simulate(TEST_POPULATION), root, kind="logreg", promote=False)
    return root


@dataclass(frozen=True)
class ModelPair:
    registry: Registry
    champion: str
    other: str


@pytest.fixture
def model_pair(two_models: Path, tmp_path: Path) -> ModelPair:
    """A registry of this test's own holding a champion and another version."""
    root = tmp_path / "registry"
    shutil.copytree(two_models, root)
    registry = Registry(root)
    champion = registry.champion_version()
    assert champion is not None
    return ModelPair(registry, champion, next(v for v in registry.versions() if v != champion))


@pytest.fixture
def settings(kafka_bootstrap: str, redis_url: str, model_registry: Path) -> Settings:
    """Settings with topics, group and Redis prefix of this test only."""
    unique = uuid.uuid4().hex[:10]
    return Settings(
        kafka_bootstrap=kafka_bootstrap, redis_url=redis_url,
        topic_transactions=f"tx-{unique}", topic_decisions=f"decisions-{unique}",
        topic_labels=f"labels-{unique}", topic_dlq=f"tx-{unique}.dlq",
        topic_shadow=f"shadow-{unique}",
        group_id=f"workers-{unique}", model_dir=str(model_registry),
        redis_prefix=f"test-{unique}", session_timeout_ms=6000, heartbeat_interval_ms=500,
        max_poll_interval_ms=20000, commit_interval_s=0.5, shutdown_timeout_s=10.0,
        # The embedded broker holds an empty fetch for fetch.wait.max.ms and answers the
        # next at once: at the default 5 ms each idle consumer costs it a tenth of a core,
        # which dozens of test workers waiting on one another make the suite's largest
        # cost. No test times latency; the benchmark and the demo keep the default.
        fetch_wait_ms=25,
        **signing_keys.pair().settings(),
    )


def settings_env(settings: Settings) -> dict[str, str]:
    """The environment that hands ``settings`` to a child ``fraudstream`` process."""
    return settings.child_environ()


@pytest.fixture(autouse=True)
def no_leaks() -> Iterator[None]:
    """Fail a test that leaves environment variables, child processes or threads behind
    (daemon threads too: a daemon left running still works, and races the next test)."""
    environ = dict(os.environ)
    children = child_pids()
    threads = running_threads()
    yield
    leaked_env = {k for k in set(os.environ) ^ set(environ) if k != "PYTEST_CURRENT_TEST"}
    leaked_children = child_pids() - children
    leaked_threads = lingering(threads)
    assert not leaked_env, f"test changed environment variables: {sorted(leaked_env)}"
    assert not leaked_children, f"test left child processes running: {leaked_children}"
    assert not leaked_threads, f"test left threads running: {leaked_threads}"
