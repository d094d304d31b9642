"""docker-compose.yml: valid against the Compose specification (offline, check-jsonschema's
bundled schema), every fraudstream service runs a real `fraudstream` command, every file
it references exists, `depends_on` brings the stack up in order, no secret value is in
the repository and nothing is published beyond loopback by default.

check-jsonschema lives in ``.venv-tools`` (``scripts/setup.sh``: it needs a newer click
than faust allows). Without it the schema test skips, except under CI, where it fails.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from fraudstream.stream.http.keys import find_key, parse_keys
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
                                                 "service_finished"))
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


def test_the_scorer_reads_generated_keys_and_follows_the_registry() -> None:
    services = _compose()["services"]
    scorer = services["scorer"]
    keys_file = scorer["environment"]["FRAUDSTREAM_API_KEYS_FILE"]
    mount = next(str(v) for v in scorer["volumes"]
                 if keys_file.startswith(str(v).split(":")[1] + "/"))
    assert mount.split(":")[0] == "fraudstream-secrets", "keys come from the secrets volume"
    assert "models:/models:ro" in scorer["volumes"]
    assert "models:/models" in services["trainer"]["volumes"]


SECRET_NAMES = re.compile(r"(PASSWORD|SECRET|TOKEN|API_KEY|PRIVATE|REQUIREPASS)$")


def _environment_items() -> list[tuple[str, str, str]]:
    return [(name, str(k), str(v)) for name, service in _services().items()
            for k, v in (service.get("environment") or {}).items()]


def test_no_secret_value_is_in_the_repository() -> None:
    """Every secret-looking variable is empty unless the shell sets it, or names a file
    in a volume the `secrets` service fills at the first start."""
    for name, key, value in _environment_items():
        if SECRET_NAMES.search(key):
            assert _default(value) == "", f"{name}: {key} has a value in the repository"
    text = COMPOSE.read_text()
    assert not re.search(r"fsk_[A-Za-z0-9_-]{8}", text), "an API key"
    assert not re.search(r"requirepass [A-Za-z0-9_-]{8}", text), "a Redis password"
    assert not (ROOT / "deploy" / "compose" / "api-keys").exists()
    mounted = {str(m).split(":", 1)[0] for service in _services().values()
               for m in service.get("volumes") or []}
    for source in sorted(s for s in mounted if s.startswith(".")):
        root = ROOT / source
        for path in root.rglob("*") if root.is_dir() else [root]:
            if path.is_file():
                content = path.read_text(errors="replace")
                assert not re.search(r"fsk_[A-Za-z0-9_-]{8}", content), path
                assert "PRIVATE KEY" not in content, path


def test_secrets_are_made_first_and_each_volume_reaches_only_its_reader() -> None:
    services = _services()
    secrets = services["secrets"]
    assert secrets["command"][0] == "compose-secrets" and secrets["restart"] == "no"
    for name, service in services.items():
        mounts = [str(m).split(":")[0] for m in service.get("volumes") or []]
        if "signing-key" in mounts:
            assert name in ("secrets", "trainer"), f"{name} can read the signing key"
        if "grafana-secrets" in mounts:
            assert name in ("secrets", "grafana"), name
        if "redis-secrets" in mounts:
            assert name in ("secrets", "redis"), name
    trainer = services["trainer"]["environment"]
    assert trainer["FRAUDSTREAM_MODEL_SIGNING_KEY"].startswith("/run/fraudstream-signing/")
    for name, service in services.items():
        if _is_fraudstream(service) and name != "secrets":
            environment = service["environment"]
            assert environment["FRAUDSTREAM_MODEL_PUBLIC_KEYS"], name
            assert environment["FRAUDSTREAM_REDIS_PASSWORD_FILE"], name
            assert "FRAUDSTREAM_DEV_KEYS" not in environment, name


def test_nothing_is_published_on_all_interfaces_by_default() -> None:
    published = {}
    for name, service in _services().items():
        for port in service.get("ports") or []:
            spec = _default(str(port))
            parts = spec.split(":")
            assert len(parts) == 3 and parts[0] == "127.0.0.1", f"{name}: {port}"
            published[name] = parts[1]
    assert published == {"scorer": "8080", "grafana": "3000"}, "only what a user needs"


def test_grafana_has_a_generated_password_and_no_anonymous_access() -> None:
    grafana = _services()["grafana"]["environment"]
    assert grafana["GF_AUTH_ANONYMOUS_ENABLED"] == "false"
    assert "GF_SECURITY_ADMIN_PASSWORD" not in grafana
    assert grafana["GF_SECURITY_ADMIN_PASSWORD__FILE"].startswith("/run/grafana/")


def test_redis_has_a_password_persistence_and_never_evicts_feature_keys() -> None:
    redis_service = _services()["redis"]
    command = [str(c) for c in redis_service["command"]]
    assert command[1].endswith("redis.conf"), "the generated config with requirepass"
    assert command[command.index("--appendonly") + 1] == "yes"
    assert command[command.index("--maxmemory-policy") + 1] == "noeviction"
    assert "--save" not in command or command[command.index("--save") + 1] != ""
    assert any(str(m).startswith("redis-data:/data") for m in redis_service["volumes"])
    assert "ports" not in redis_service
    assert "-a" in str(redis_service["healthcheck"]["test"]), "the health check logs in"


def test_compose_secrets_makes_each_secret_once_and_prints_it_once(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from fraudstream import compose_secrets

    assert compose_secrets.run(tmp_path) == 0
    first = capsys.readouterr().out
    key = first.split("shown once: ")[1].split()[0]
    assert key.startswith("fsk_") and "grafana user admin" in first
    keys = parse_keys((tmp_path / "fraudstream" / "api-keys").read_text())
    assert find_key(keys, key) is not None
    conf = (tmp_path / "redis" / "redis.conf").read_text()
    assert conf == f"requirepass {(tmp_path / 'fraudstream' / 'redis-password').read_text()}\n"
    assert (tmp_path / "signing" / "model-signing.pem").stat().st_mode & 0o077 == 0
    assert (tmp_path / "fraudstream" / "model-signing.pub.pem").is_file()
    assert not (tmp_path / "fraudstream" / "model-signing.pem").exists(), "trainer only"
    assert compose_secrets.run(tmp_path) == 0
    again = capsys.readouterr().out
    assert key not in again and "exist already" in again


def test_a_secret_setting_is_read_from_the_file_its_FILE_variable_names(tmp_path: Path) -> None:
    from fraudstream.errors import ConfigError
    from fraudstream.settings import Settings

    secret = tmp_path / "redis-password"
    secret.write_text("from-the-file\n")
    settings = Settings.from_env({"FRAUDSTREAM_REDIS_PASSWORD_FILE": str(secret)})
    assert settings.redis_password is not None
    assert settings.redis_password.reveal() == "from-the-file"
    direct = Settings.from_env({"FRAUDSTREAM_REDIS_PASSWORD": "given",
                                "FRAUDSTREAM_REDIS_PASSWORD_FILE": str(secret)})
    assert direct.redis_password is not None and direct.redis_password.reveal() == "given"
    with pytest.raises(ConfigError, match="cannot read the secret file"):
        Settings.from_env({"FRAUDSTREAM_REDIS_PASSWORD_FILE": str(tmp_path / "none")})
