"""podman for the container tests: the recipe that works on these machines (README, "The
image"): the runc runtime, deploy/podman/containers.conf, host networking, and a base
image made by debootstrap since no registry image can be pulled."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Iterable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CONTAINERS_CONF = ROOT / "deploy" / "podman" / "containers.conf"
BASE_SCRIPT = ROOT / "deploy" / "podman" / "base-image.sh"
BASE_IMAGE = "localhost/fraudstream-base:bookworm"
# What deploy/Dockerfile copies from the build context.
CONTEXT_ENTRIES = ("pyproject.toml", "uv.lock", "README.md", "fraudstream", "stream", "features",
                   "models", "bench", "deploy")


class PodmanError(AssertionError):
    pass


def environment() -> dict[str, str]:
    return {**os.environ, "CONTAINERS_CONF": str(CONTAINERS_CONF)}


def podman(*args: str, timeout: float = 120, check: bool = True,
           ) -> subprocess.CompletedProcess[str]:
    """``podman --runtime runc ARGS``; raises with podman's output when it fails."""
    result = subprocess.run(["podman", "--runtime", "runc", *args], env=environment(),
                            capture_output=True, text=True, timeout=timeout,
                            stdin=subprocess.DEVNULL)
    if check and result.returncode != 0:
        raise PodmanError(f"podman {' '.join(args[:3])} ... exited {result.returncode}:\n"
                          f"{result.stdout[-3000:]}\n{result.stderr[-3000:]}")
    return result


def why_podman_cannot_run() -> str | None:
    """None when podman can run containers here, else the reason."""
    if shutil.which("podman") is None:
        return "podman is not installed (Debian: apt-get install podman runc debootstrap)"
    if shutil.which("runc") is None:
        return "runc is not installed (Debian: apt-get install runc)"
    info = podman("info", "--format", "{{.Host.OCIRuntime.Name}}", check=False, timeout=60)
    if info.returncode != 0:
        return f"podman cannot run here: {(info.stderr or info.stdout).strip()[-500:]}"
    return None


def image_exists(image: str) -> bool:
    return podman("image", "exists", image, check=False).returncode == 0


def ensure_base_image() -> str:
    """The debootstrap base, made once and then reused (about a minute to make)."""
    if not image_exists(BASE_IMAGE):
        result = subprocess.run(["bash", str(BASE_SCRIPT), BASE_IMAGE], env=environment(),
                                capture_output=True, text=True, timeout=900,
                                stdin=subprocess.DEVNULL)
        if result.returncode != 0:
            raise PodmanError(f"making {BASE_IMAGE} failed:\n{result.stdout}\n{result.stderr}")
    return BASE_IMAGE


def build_context(directory: Path, model_registry: Path | None = None) -> Path:
    """A build context like the repository's, with ``model_registry`` at ``model/``."""
    for entry in CONTEXT_ENTRIES:
        source = ROOT / entry
        if source.is_dir():
            shutil.copytree(source, directory / entry,
                            ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        else:
            shutil.copy2(source, directory / entry)
    if model_registry is not None:
        shutil.copytree(model_registry, directory / "model")
    return directory


def build(context: Path, tag: str, build_args: dict[str, str],
          target: str | None = None) -> None:
    """Build deploy/Dockerfile in docker format (OCI images drop HEALTHCHECK), on the host
    network, with the machine's CA bundle for pip."""
    args = ["build", "--format", "docker", "--network", "host",
            "-v", "/etc/ssl/certs:/etc/ssl/certs:ro", "-f", str(context / "deploy" / "Dockerfile"),
            "-t", tag]
    for name, value in build_args.items():
        args += ["--build-arg", f"{name}={value}"]
    if target:
        args += ["--target", target]
    podman(*args, str(context), timeout=1200)


def inspect_image(image: str) -> dict:
    return json.loads(podman("image", "inspect", image).stdout)[0]


def remove_images(images: Iterable[str]) -> None:
    for image in images:
        podman("rmi", image, check=False)


def remove_container(name: str) -> None:
    podman("rm", "--force", "--time", "5", name, check=False, timeout=60)
