"""The platforms' contracts that need no server: ports, routes, content negotiation,
the Azure ML model directory and environment."""

from __future__ import annotations

import csv
import io
import re
import tomllib
from pathlib import Path

import pytest
import yaml

from fraudstream.errors import ConfigError
from fraudstream.stream.decisions import Decision
from fraudstream.stream.http.azureml import find_registry
from fraudstream.stream.http.platforms import (
    CSV,
    CSV_ANSWER_COLUMNS,
    JSON,
    VertexRoutes,
    answer_type,
    decisions_csv,
    media_type,
    resolve_port,
)

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("cli, environ, expected", [
    (None, {}, 8080),
    (None, {"AIP_HTTP_PORT": "7080"}, 7080),
    (None, {"SAGEMAKER_BIND_TO_PORT": "9000"}, 9000),
    (None, {"AIP_HTTP_PORT": ""}, 8080),
    (5000, {"AIP_HTTP_PORT": "7080"}, 5000),
])
def test_the_port_is_the_cli_then_the_platform_then_the_setting(
        cli: int | None, environ: dict[str, str], expected: int) -> None:
    assert resolve_port(cli, 8080, environ) == expected


@pytest.mark.parametrize("value", ["http", "0", "70000"])
def test_a_bad_platform_port_is_one_line(value: str) -> None:
    with pytest.raises(ConfigError, match=f"AIP_HTTP_PORT='{value}'"):
        resolve_port(None, 8080, {"AIP_HTTP_PORT": value})


def test_vertex_routes_come_from_its_variables() -> None:
    assert VertexRoutes.from_env({}) is None
    routes = VertexRoutes.from_env({
        "AIP_HEALTH_ROUTE": "/v1/endpoints/1/deployedModels/2",
        "AIP_PREDICT_ROUTE": "/v1/endpoints/1/deployedModels/2:predict"})
    assert routes == VertexRoutes("/v1/endpoints/1/deployedModels/2",
                                  "/v1/endpoints/1/deployedModels/2:predict")
    with pytest.raises(ConfigError, match="must be a path starting with /"):
        VertexRoutes.from_env({"AIP_PREDICT_ROUTE": "predict"})


@pytest.mark.parametrize("header, expected", [
    (None, JSON), ("application/json; charset=utf-8", JSON), ("TEXT/CSV", CSV)])
def test_media_types(header: str | None, expected: str) -> None:
    assert media_type(header) == expected


@pytest.mark.parametrize("accept, expected", [
    (None, JSON), ("*/*", JSON), ("application/json", JSON), ("text/csv", CSV),
    ("text/csv, application/json", CSV), ("application/json;q=1, text/csv", JSON),
    ("text/*", CSV), ("application/xml", None)])
def test_the_answer_follows_accept(accept: str | None, expected: str | None) -> None:
    assert answer_type(accept) == expected


def test_csv_answers_keep_every_digit_of_the_score() -> None:
    decision = Decision(transaction_id="t,1", customer_id="c", score=0.1234567890123456,
                        decision="review", model_version="v1", reasons=["amount", "x"],
                        degraded=["features"], scored_at=1, latency_ms=0.5)
    rows = list(csv.reader(io.StringIO(decisions_csv([decision]).decode())))
    assert rows == [["t,1", "c", "0.1234567890123456", "review", "v1", "amount;x",
                     "features"]]
    assert len(rows[0]) == len(CSV_ANSWER_COLUMNS)


def test_the_azure_model_dir_is_the_registry_or_holds_one(tmp_path: Path) -> None:
    (tmp_path / "CHAMPION").write_text("v1\n")
    assert find_registry(tmp_path) == tmp_path
    mounted = tmp_path / "mounted"
    (mounted / "fraudstream-registry" / "model-registry").mkdir(parents=True)
    (mounted / "fraudstream-registry" / "model-registry" / "CHAMPION").write_text("v1\n")
    assert find_registry(mounted) == mounted / "fraudstream-registry" / "model-registry"
    with pytest.raises(ConfigError, match="no model registry"):
        find_registry(tmp_path / "empty")
    (mounted / "second").mkdir()
    (mounted / "second" / "CHAMPION").write_text("v2\n")
    with pytest.raises(ConfigError, match="2 model registry"):
        find_registry(mounted)


def _locked_pins(requirements: list[str]) -> list[str]:
    """Each requirement pinned at the version uv.lock holds for it."""
    locked = {p["name"]: p["version"]
              for p in tomllib.loads((ROOT / "uv.lock").read_text())["package"]}
    pins = []
    for requirement in requirements:
        found = re.match(r"([A-Za-z0-9_.-]+)(\[[^\]]+\])?", requirement)
        assert found is not None, requirement
        name, extras = found.group(1), found.group(2) or ""
        pins.append(f"{name}{extras}=={locked[name.lower().replace('_', '-')]}")
    return pins


def test_the_azure_environment_pins_what_the_project_locks() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    conda = yaml.safe_load((ROOT / "deploy/azureml/conda.yml").read_text())
    pip = next(d["pip"] for d in conda["dependencies"] if isinstance(d, dict))
    wanted = _locked_pins(project["dependencies"] + project["optional-dependencies"]["serve"])
    assert [p for p in pip if not p.startswith("azureml-")] == wanted
    assert all("==" in p for p in pip)
    deployment = yaml.safe_load((ROOT / "deploy/azureml/deployment.yml").read_text())
    script = ROOT / "deploy/azureml" / deployment["code_configuration"]["code"] / \
        deployment["code_configuration"]["scoring_script"]
    assert script.resolve() == (ROOT / "deploy/azureml/score.py").resolve()
