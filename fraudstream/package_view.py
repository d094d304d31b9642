"""``fraudstream`` laid out as the wheel has it, in a directory of links.

In a checkout, ``stream/``, ``features/``, ``models/`` and ``bench/`` sit beside
``fraudstream/`` and become its subpackages only through the installation's package-dir
mapping, which neither a python without fraudstream installed (the Quix peer's) nor mypy
can follow. The view links every part from wherever it lives (a checkout's folders or an
installed package) into one ``fraudstream/`` tree.

    python -m fraudstream.package_view DIR     # DIR/fraudstream, made afresh
"""

from __future__ import annotations

import importlib
import shutil
import sys
from pathlib import Path

import fraudstream

SUBPACKAGES = ("stream", "features", "models", "bench")


def build_package_view(view: Path) -> Path:
    """``view``/fraudstream made afresh; returns ``view`` (for PYTHONPATH)."""
    package = view / "fraudstream"
    shutil.rmtree(view, ignore_errors=True)
    package.mkdir(parents=True)
    for entry in Path(fraudstream.__file__).parent.iterdir():
        if entry.name != "__pycache__":
            (package / entry.name).symlink_to(entry.resolve())
    for name in SUBPACKAGES:
        if not (package / name).exists():  # an installed package holds them already
            module = importlib.import_module(f"fraudstream.{name}")
            (package / name).symlink_to(Path(str(module.__file__)).parent.resolve())
    return view


if __name__ == "__main__":
    build_package_view(Path(sys.argv[1]))
