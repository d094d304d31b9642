"""What a wheel installs: one import name, and a worker that runs on the default
dependencies alone (issue: one import name, extras, a lock file)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from tests.tools import tool_missing

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow


def _uv() -> str:
    found = ROOT / ".uv" / "bin" / "uv"
    if found.exists():
        return str(found)
    on_path = shutil.which("uv")
    if on_path is None:
        tool_missing("uv is missing", "bash scripts/setup.sh installs it into .uv")
    return on_path


def _run(argv: list[str], cwd: Path | None = None,
         env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, capture_output=True, text=True, timeout=600, check=False,
                          stdin=subprocess.DEVNULL, cwd=cwd, env=env)


def _pip() -> list[str]:
    """pip, from the virtual environment scripts/setup.sh made for uv (.venv has none)."""
    python = ROOT / ".uv" / "bin" / "python"
    if not python.exists():
        tool_missing("pip is missing", "bash scripts/setup.sh makes .uv with pip in it")
    return [str(python), "-m", "pip"]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``pip wheel --no-deps .``, as a packager would build it."""
    out = tmp_path_factory.mktemp("wheel")
    built = _run([*_pip(), "wheel", "--quiet", "--disable-pip-version-check", "--no-deps",
                  "--wheel-dir", str(out), "."], cwd=ROOT)
    assert built.returncode == 0, built.stderr[-3000:]
    (found,) = out.glob("fraudstream-*.whl")
    return found


def _environment(wheel: Path, tmp_path: Path, extras: tuple[str, ...] = (),
                 ) -> tuple[Path, dict[str, str]]:
    """A fresh virtual environment with the locked dependencies of ``extras`` (none: the
    default ones) and the wheel; its directory and the environment to run it in."""
    uv = _uv()
    requirements = tmp_path / "requirements.txt"
    exported = _run([uv, "export", "--frozen", "--no-emit-project", "--no-hashes",
                     "--no-dev", *(f"--extra={extra}" for extra in extras),
                     "-o", str(requirements)], cwd=ROOT)
    assert exported.returncode == 0, exported.stderr
    venv = tmp_path / "venv"
    python = venv / "bin" / "python"
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("FRAUDSTREAM_")},
           "VIRTUAL_ENV": str(venv)}
    for argv in ([uv, "venv", "--quiet", "--python", sys.executable, str(venv)],
                 [uv, "pip", "install", "--quiet", "--python", str(python),
                  "-r", str(requirements)],
                 [uv, "pip", "install", "--quiet", "--python", str(python), "--no-deps",
                  str(wheel)]):
        result = _run(argv, env=env, cwd=tmp_path)
        assert result.returncode == 0, result.stderr[-3000:]
    return venv, env


def test_the_wheel_claims_one_top_level_name(wheel: Path) -> None:
    names = zipfile.ZipFile(wheel).namelist()
    top_level = {name.split("/", 1)[0] for name in names}
    top_level = {name for name in top_level if not name.endswith(".dist-info")}
    assert top_level == {"fraudstream"}, top_level
    # Every package of the source tree is in the wheel (pyproject.toml lists them).
    folders = {"fraudstream": "fraudstream", "stream": "fraudstream/stream",
               "features": "fraudstream/features", "models": "fraudstream/models",
               "bench": "fraudstream/bench"}
    for folder, installed in folders.items():
        for init in (ROOT / folder).rglob("__init__.py"):
            inside = init.relative_to(ROOT / folder).as_posix()
            assert f"{installed}/{inside}" in names, f"{folder}/{inside} is not in the wheel"


def test_a_fresh_environment_with_the_default_dependencies_runs_the_worker(
        wheel: Path, tmp_path: Path) -> None:
    venv, env = _environment(wheel, tmp_path)
    python = venv / "bin" / "python"
    helped = _run([str(venv / "bin" / "fraudstream"), "worker", "--help"], cwd=tmp_path,
                  env=env)
    assert helped.returncode == 0, helped.stderr
    assert "--processes" in helped.stdout
    # Only the worker's dependencies: no Faust, FastAPI, ONNX Runtime, matplotlib, pandas;
    # and the supervisor does not pull in the embedded-service harness.
    probe = _run([str(python), "-c",
                  "import importlib.util, sys\n"
                  "import fraudstream.stream.supervisor, fraudstream.stream.worker\n"
                  "print('services' if 'fraudstream.services' in sys.modules else 'clean')\n"
                  "for name in ('faust', 'fastapi', 'onnxruntime', 'matplotlib', 'pandas'):\n"
                  "    print(name, importlib.util.find_spec(name) is not None)\n"],
                 cwd=tmp_path, env=env)
    assert probe.returncode == 0, probe.stderr
    assert probe.stdout.split("\n")[0] == "clean"
    assert all(line.endswith("False") for line in probe.stdout.strip().split("\n")[1:]), \
        probe.stdout
    # A command whose extra is missing says which one, in one line.
    bench = _run([str(venv / "bin" / "fraudstream"), "bench", "--quick"], cwd=tmp_path,
                 env=env)
    assert bench.returncode == 1
    (line,) = bench.stderr.strip().splitlines()
    assert re.fullmatch(r"fraudstream: this command needs the 'bench' extra \((pandas|pyarrow) "
                        r"is not installed\): pip install 'fraudstream\[bench\]'", line), line


def test_bench_runs_from_an_installed_wheel_with_its_extra(wheel: Path, tmp_path: Path,
                                                           ) -> None:
    """No checkout: the benchmark starts its embedded services, measures and writes its
    results where it is told, and nothing lands inside site-packages."""
    venv, env = _environment(wheel, tmp_path, ("bench",))
    site = next((venv / "lib").glob("python3*/site-packages"))
    before = {path for path in site.iterdir()}
    out = tmp_path / "results"
    bench = _run([str(venv / "bin" / "fraudstream"), "bench", "--quick", "--only", "memory",
                  "--out", str(out)], cwd=tmp_path, env={**env, "CI": "true"})
    assert bench.returncode == 0, (bench.stdout + bench.stderr)[-3000:]
    assert (out / "memory.json").exists() and (out / "memory.md").exists()
    assert {path for path in site.iterdir()} == before
