"""docker-compose.yml: valid against the Compose specification (offline, check-jsonschema's
bundled schema), every fraudstream service runs a real `fraudstream` command, every file
it references exists, and `depends_on` brings the stack up in order.

check-jsonschema lives in ``.venv-tools`` (``scripts/setup.sh``: it needs a newer click
than faust allows). Without it the schema test skips, except under CI, where it fails.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import yaml

from stream.http.keys import find_key, parse_keys
from tests.command_lines import refusal
from tests.tools import tool_missing

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "docker-compose.yml"
PROMETHEUS_CONFIG = ROOT / "deploy" / "prometheus" / "prometheus.yml"


def _compose() -> dict[str, Any]:
    return yaml.safe_load(COMPOSE.read_text())


def _services() -> dict[str, dict[str, Any]]:
    return _compose()["services"]


def _check_jsonschema() -> str:
    found = ROOT / ".venv-tools" / "bin" / "check-jsonschema"
    if found.is_file():
        return str(found)
    on_path = shutil.which("check-jsonschema")
    if on_path:
        return on_path
    tool_missing("check-jsonschema is not installed", "scripts/setup.sh puts it in .venv-tools")


def _validate(path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([_check_jsonschema(), "--builtin-schema", "vendor.compose-spec",
                           str(path)], capture_output=True, text=True, timeout=120,
                          stdin=subprocess.DEVNULL)


def _is_fraudstream(service: dict[str, Any]) -> bool:
    build = service.get("build") or {}
    return "deploy/Dockerfile" in str(build.get("dockerfile", "")) or \
        str(service.get("image", "")).startswith("fraudstream")


def _default(value: str) -> str:
    """``${NAME:-default}`` as compose reads it with NAME unset."""
    return re.sub(r"\$\{[A-Z_]+:-([^}]*)\}", r"\1", value)


def test_the_file_follows_the_compose_specification() -> None:
    result = _validate(COMPOSE)
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_schema_check_catches_a_wrong_condition(tmp_path: Path) -> None:
    wrong = tmp_path / "docker-compose.yml"
    wrong.write_text(COMPOSE.read_text().replace("service_completed_successfully",
                                                 "service_finished", 1))
    result = _validate(wrong)
    assert result.returncode != 0, "a depends_on condition compose does not know must fail"


def test_every_fraudstream_service_runs_a_real_command() -> None:
    services = {name: s for name, s in _services().items() if _is_fraudstream(s)}
    assert {"topics", "trainer", "worker", "simulator", "monitor"} <= set(services)
    for name, service in services.items():
        command = service.get("command")
        assert isinstance(command, list) and command, f"{name}: command as an exec list"
        problem = refusal([str(part) for part in command])
        assert problem is None, f"{name}: {problem}"
        test = (service.get("healthcheck") or {}).get("test") or []
        if test[1:2] == ["fraudstream"]:
            assert test[0] == "CMD", f"{name}: healthcheck without a shell"
            problem = refusal(test[2:])
            assert problem is None, f"{name} healthcheck: {problem}"


def test_a_command_that_is_not_fraudstreams_would_be_caught() -> None:
    assert refusal(["worker", "--max-batch", "10"]) is None
    assert refusal(["wroker"]) is not None
    assert refusal(["topics", "create", "--partitions", "0"]) is not None


def test_every_referenced_file_exists() -> None:
    compose = _compose()
    declared_volumes = set(compose.get("volumes") or {})
    stages = set(re.findall(r"^FROM\s+\S+\s+AS\s+(\S+)", (ROOT / "deploy" / "Dockerfile")
                            .read_text(), re.MULTILINE | re.IGNORECASE))
    for name, service in compose["services"].items():
        build = service.get("build")
        if build:
            context = ROOT / build.get("context", ".")
            assert context.is_dir(), f"{name}: build context {context}"
            assert (context / build.get("dockerfile", "Dockerfile")).is_file(), name
            if "target" in build:
                assert build["target"] in stages, f"{name}: no stage {build['target']}"
        for mount in service.get("volumes") or []:
            source = str(mount).split(":", 1)[0]
            if source.startswith((".", "/")):
                assert (ROOT / source).exists(), f"{name}: {source} does not exist"
            else:
                assert source in declared_volumes, f"{name}: volume {source} not declared"
        for env_file in service.get("env_file") or []:
            assert (ROOT / env_file).is_file(), f"{name}: {env_file}"


def test_container_paths_the_services_read_are_mounted_files() -> None:
    """Grafana's home dashboard and Prometheus' rule files are where the mounts put them."""
    services = _services()
    grafana = services["grafana"]
    home = grafana["environment"]["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]
    mounts = [str(m).split(":")[:2] for m in grafana["volumes"]]
    host = next(ROOT / source / Path(home).relative_to(target) for source, target in mounts
                if source.startswith(".") and home.startswith(target + "/"))
    assert host.is_file(), f"{home} would be {host}"

    config = yaml.safe_load(PROMETHEUS_CONFIG.read_text())
    for rules in config["rule_files"]:
        assert (PROMETHEUS_CONFIG.parent / rules).is_file(), rules
    assert any(str(m).startswith("./deploy/prometheus:/etc/prometheus")
               for m in services["prometheus"]["volumes"])


def test_the_stack_comes_up_in_order() -> None:
    services = _services()
    for name, service in services.items():
        for target, rule in (service.get("depends_on") or {}).items():
            assert target in services, f"{name} depends on unknown {target}"
            condition = rule["condition"]
            check = services[target].get("healthcheck") or {}
            if condition == "service_healthy":
                assert check.get("test") and not check.get("disable"), \
                    f"{name} waits for {target} to be healthy, which has no health check"
            elif condition == "service_completed_successfully":
                assert services[target].get("restart") == "no", \
                    f"{name} waits for {target} to finish, which is not a one-shot"
    worker = services["worker"]["depends_on"]
    assert worker["topics"]["condition"] == "service_completed_successfully"
    assert worker["trainer"]["condition"] == "service_completed_successfully"
    assert services["simulator"]["depends_on"]["worker"]["condition"] == "service_healthy"
    assert services["topics"]["depends_on"]["kafka"]["condition"] == "service_healthy"


def test_workers_scale_and_prometheus_finds_every_replica() -> None:
    """`--scale worker=N` needs no fixed name or host port; Prometheus resolves the
    service name to every replica, on the port the workers serve metrics on."""
    worker = _services()["worker"]
    assert "container_name" not in worker and "ports" not in worker
    port = int(_default(str(worker["environment"]["FRAUDSTREAM_METRICS_PORT"])))
    assert str(port) in [str(p) for p in worker["expose"]]
    config = yaml.safe_load(PROMETHEUS_CONFIG.read_text())
    job = next(j for j in config["scrape_configs"] if j["job_name"] == "fraudstream-worker")
    assert job["dns_sd_configs"][0]["names"] == ["worker"]
    assert job["dns_sd_configs"][0]["port"] == port


def test_the_security_settings_are_passed_through() -> None:
    """Every Kafka and Redis security setting (names shared with branch security) reaches
    the fraudstream services, empty unless set in the shell or .env."""
    names = ["KAFKA_SECURITY_PROTOCOL", "KAFKA_SASL_MECHANISM", "KAFKA_SASL_USERNAME",
             "KAFKA_SASL_PASSWORD", "KAFKA_SSL_CA_LOCATION", "KAFKA_SSL_CERTIFICATE_LOCATION",
             "KAFKA_SSL_KEY_LOCATION", "KAFKA_SSL_KEY_PASSWORD", "KAFKA_OAUTH_TOKEN_ENDPOINT",
             "KAFKA_OAUTH_CLIENT_ID", "KAFKA_OAUTH_CLIENT_SECRET", "KAFKA_OAUTH_SCOPE",
             "REDIS_USERNAME", "REDIS_PASSWORD", "REDIS_TLS_CA_FILE", "REDIS_TLS_CERT_FILE",
             "REDIS_TLS_KEY_FILE"]
    for name, service in _services().items():
        if not _is_fraudstream(service):
            continue
        environment = service["environment"]
        for setting in names:
            variable = f"FRAUDSTREAM_{setting}"
            assert environment.get(variable) == f"${{{variable}:-}}", f"{name}: {variable}"


def test_the_scorer_takes_the_documented_local_key_and_follows_the_registry() -> None:
    services = _compose()["services"]
    scorer = services["scorer"]
    keys_file = scorer["environment"]["FRAUDSTREAM_API_KEYS_FILE"]
    host_file = next(v.split(":")[0] for v in scorer["volumes"] if f":{keys_file}" in v)
    keys = parse_keys((ROOT / host_file).read_text())
    found = find_key(keys, "fsk_compose-local-development-only")
    assert found is not None and found.name == "compose-dev" and not found.revoked
    assert "models:/models:ro" in scorer["volumes"]
    assert "models:/models" in services["trainer"]["volumes"]
