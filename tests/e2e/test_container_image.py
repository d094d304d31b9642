"""deploy/Dockerfile built and run for real, with podman (no Docker engine runs here).

The base is Debian bookworm made by debootstrap (no registry image can be pulled),
imported once as localhost/fraudstream-base:bookworm and reused. The runtime image is
built with the session's model baked in (``--build-arg MODEL_DIR``) and runs as a worker
on the host network against the test broker and Redis; the trainer target trains a model
that the runtime image then loads from a mount. Where podman cannot run at all these
tests skip and say why; under CI they fail instead.
"""

from __future__ import annotations

import json
import os
import time
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from fraudstream import services
from fraudstream.models import signing
from fraudstream.models.registry import Registry
from fraudstream.settings import PREFIX, Settings
from fraudstream.simulator.generator import simulate
from fraudstream.simulator.streamer import produce_frame
from fraudstream.stream.decisions import decision_decoder
from tests import podman as pm
from tests import signing_keys
from tests.kafka_helpers import make_topics, read_topic
from tests.population import recent
from tests.tools import tool_missing
from tests.waiting import wait_for

pytestmark = [pytest.mark.slow, pytest.mark.timeout(1800)]
USER_ID = "10001"

_problem = pm.why_podman_cannot_run()
if _problem is not None:
    tool_missing(f"the image cannot be built and run: {_problem}", "scripts/setup.sh "
                 "installs podman, runc and debootstrap as root", module_level=True)


@pytest.fixture(scope="module")
def images(model_registry: Path, tmp_path_factory: pytest.TempPathFactory,
           ) -> Iterator[dict[str, str]]:
    """The runtime image with the session's model baked in, and the trainer target, under
    tags of this session only (removed afterwards; their layers stay cached)."""
    if not pm.image_exists(pm.BASE_IMAGE) and os.geteuid() != 0:
        tool_missing(f"{pm.BASE_IMAGE} is missing and debootstrap needs root to make it",
                     "run the tests as root once, or deploy/podman/base-image.sh as root")
    base = pm.ensure_base_image()
    context = pm.build_context(tmp_path_factory.mktemp("context"), model_registry)
    unique = uuid.uuid4().hex[:8]
    tags = {"runtime": f"localhost/fraudstream:test-{unique}",
            "trainer": f"localhost/fraudstream-trainer:test-{unique}"}
    started = time.monotonic()
    try:
        pm.build(context, tags["runtime"], {"BASE_IMAGE": base, "MODEL_DIR": "model"})
        pm.build(context, tags["trainer"], {"BASE_IMAGE": base}, target="trainer")
        size = pm.inspect_image(tags["runtime"])["Size"]
        print(f"\nbuilt in {time.monotonic() - started:.0f}s; runtime image "
              f"{size / 1e6:.0f} MB")
        yield tags
    finally:
        pm.remove_images(tags.values())


def _container_env(settings: Settings, **extra: str) -> list[str]:
    """``--env`` options handing the test's settings to the container; the model and the
    status file stay the image's own, and the signing key stays out (a worker only
    verifies: ``_keys_mount`` gives it the public key at the same path)."""
    env = {k: v for k, v in settings.child_environ({}).items()
           if k not in (PREFIX + "MODEL_DIR", PREFIX + "STATUS_FILE",
                        PREFIX + "MODEL_SIGNING_KEY")}
    env.update(extra)
    return [option for name, value in sorted(env.items())
            for option in ("--env", f"{name}={value}")]


def _keys_mount() -> list[str]:
    directory = signing_keys.pair().directory
    return ["-v", f"{directory}:{directory}:ro"]


def _wait_healthy(name: str, timeout: float = 90) -> str:
    """Until the image's HEALTHCHECK passes in the container; its last output."""
    def healthy() -> bool:
        running = pm.podman("inspect", "--format", "{{.State.Running}}", name).stdout.strip()
        if running != "true":
            logs = pm.podman("logs", name, check=False)
            raise AssertionError(f"the container stopped:\n{logs.stdout[-3000:]}"
                                 f"{logs.stderr[-3000:]}")
        return pm.podman("healthcheck", "run", name, check=False).returncode == 0

    wait_for(healthy, lambda: f"the HEALTHCHECK to pass:\n"
                              f"{pm.podman('logs', name).stderr[-3000:]}", timeout, 0.5)
    state = json.loads(pm.podman("inspect", "--format", "{{json .State.Health}}",
                                 name).stdout)
    return str(state["Log"][-1]["Output"])


def _metrics(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as answer:
        return answer.read().decode()


def test_the_image_is_a_non_root_worker_with_fraudstream_as_entrypoint(
        images: dict[str, str]) -> None:
    image = pm.inspect_image(images["runtime"])
    assert image["Config"]["Entrypoint"] == ["fraudstream"]
    assert image["Config"]["Cmd"] == ["worker"]
    assert image["Config"]["User"] == f"{USER_ID}:{USER_ID}"
    assert image["Healthcheck"]["Test"] == ["CMD", "fraudstream", "health"]


def test_the_runtime_image_has_no_compiler(images: dict[str, str]) -> None:
    found = pm.podman("run", "--rm", "--network", "none", "--entrypoint", "sh",
                      images["runtime"], "-c",
                      "for c in gcc cc c++ g++ clang tcc x86_64-linux-gnu-gcc-12; do "
                      "command -v $c; done; true").stdout.split()
    assert found == [], f"compilers in the runtime image: {found}"
    trainer = pm.podman("run", "--rm", "--network", "none", "--entrypoint", "sh",
                        images["trainer"], "-c", "command -v gcc").stdout.strip()
    assert trainer, "the trainer target needs gcc to compile the scorer"


def test_the_runtime_image_carries_neither_the_benchmark_nor_the_embedded_services(
        images: dict[str, str]) -> None:
    listed = pm.podman("run", "--rm", "--network", "none", "--entrypoint", "python3",
                       images["runtime"], "-c",
                       "import fraudstream, os; "
                       "print(*sorted(os.listdir(os.path.dirname(fraudstream.__file__))))"
                       ).stdout.split()
    assert {"stream", "features", "models", "cli.py"} <= set(listed), listed
    assert not {"bench", "services.py", "demo.py"} & set(listed), listed
    for command, extra in (("bench", "bench"), ("demo", "demo"), ("services", "demo")):
        result = pm.podman("run", "--rm", "--network", "none", images["runtime"], command,
                           check=False)
        assert result.returncode == 1, result.stdout + result.stderr
        ours = [line for line in result.stderr.splitlines()  # podman logs its own lines
                if not line.startswith("time=")]
        assert len(ours) == 1 and f"the '{extra}' extra" in ours[0], result.stderr


def test_the_healthcheck_fails_where_no_worker_runs(images: dict[str, str]) -> None:
    result = pm.podman("run", "--rm", "--network", "none", images["runtime"], "health",
                       check=False)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "unhealthy: no readable status file" in result.stdout


def test_the_image_runs_a_worker_that_decides_with_the_baked_model(
        settings: Settings, model_registry: Path, images: dict[str, str]) -> None:
    make_topics(settings, partitions=2)
    baked = Registry(model_registry).champion_version()
    metrics_port = services.free_port()
    name = f"fraudstream-worker-{uuid.uuid4().hex[:8]}"
    pm.podman("run", "--detach", "--name", name, "--network", "host",
              "--health-interval", "disable",  # no systemd timers here: run it by hand
              *_container_env(settings, FRAUDSTREAM_METRICS_PORT=str(metrics_port)),
              *_keys_mount(), images["runtime"], "worker")
    try:
        health = _wait_healthy(name)
        assert health.startswith("healthy:"), health
        answers = []

        def ready_now() -> bool:
            answers.append(pm.podman("exec", name, "fraudstream", "health", "--ready",
                                     check=False))
            return answers[-1].returncode == 0

        wait_for(ready_now, lambda: "readiness: " + answers[-1].stdout + answers[-1].stderr,
                 60, 0.5)
        ready = answers[-1]
        assert "processing 2 input partitions" in ready.stdout, ready.stdout

        frame = simulate(recent(2))
        produce_frame(settings, frame)
        records = read_topic(settings, settings.topic_decisions, expect=len(frame))
        decisions = [decision_decoder.decode(r.value) for r in records]
        assert len({d.transaction_id for d in decisions}) == len(frame)
        assert {d.model_version for d in decisions} == {baked}
        assert not any(d.degraded for d in decisions), "scored on real features"

        assert pm.podman("exec", name, "id", "-u").stdout.strip() == USER_ID
        assert 'backend="compiled"' in _metrics(metrics_port), \
            "the scorer TL2cgen compiled at training loads in the image"
        assert pm.podman("healthcheck", "run", name, check=False).returncode == 0

        pm.podman("stop", "--time", "30", name, timeout=60)
        code = pm.podman("inspect", "--format", "{{.State.ExitCode}}", name).stdout.strip()
        logs = pm.podman("logs", name).stderr
        assert code == "0", logs[-3000:]
        assert "worker stopped" in logs
    finally:
        pm.remove_container(name)


def test_the_trainer_target_trains_a_model_the_runtime_image_loads(
        images: dict[str, str], tmp_path: Path) -> None:
    registry = tmp_path / "registry"
    registry.mkdir()
    registry.chmod(0o777)  # written by the image's user
    keys = tmp_path / "keys"  # a pair of this test's, readable by the image's user
    signing.generate(keys / "signing.pem", keys / "signing.pub.pem")
    keys.chmod(0o755)
    (keys / "signing.pem").chmod(0o644)
    trust = ["-v", f"{keys}:/keys:ro", "--env",
             "FRAUDSTREAM_MODEL_PUBLIC_KEYS=/keys/signing.pub.pem"]
    # One OpenMP thread: threads spinning on a busy 2-core machine made training 5x slower.
    pm.podman("run", "--rm", "--network", "none", "-v", f"{registry}:/models", *trust,
              "--env", "FRAUDSTREAM_MODEL_SIGNING_KEY=/keys/signing.pem",
              "--env", "OMP_NUM_THREADS=1", images["trainer"], "train", "--customers", "300",
              "--terminals", "600", "--days", "40", "--seed", "3", timeout=300)
    version = Registry(registry).champion_version()
    assert version is not None
    manifest = json.loads((registry / version / "manifest.json").read_text())
    assert manifest["compiled"] == "scorer.so", "the trainer compiles the scorer"

    load = ("from fraudstream import model_trust; from fraudstream.settings import Settings; "
            "model_trust.configure(Settings.from_env()); "
            "from fraudstream.features.definitions import FEATURE_NAMES; "
            "from fraudstream.models.registry import Registry; "
            "from fraudstream.models.scorer import Scorer; "
            "s = Scorer(Registry('/models').load_champion(), FEATURE_NAMES); "
            "print(s.version, s.backend)")
    loaded = pm.podman("run", "--rm", "--network", "none", "-v", f"{registry}:/models:ro",
                       *trust, "--entrypoint", "python", images["runtime"], "-c", load)
    assert loaded.stdout.split() == [version, "compiled"], loaded.stdout + loaded.stderr
