"""Numba set-up for the compiled kernels: where compiled code is cached, and the warm-up
that compiles them before a worker takes any work.

Numba caches compiled code next to the source file, which a read-only root file system
(the image's) refuses. The cache goes to the first directory of ``$NUMBA_CACHE_DIR``,
``$XDG_CACHE_HOME/fraudstream/numba`` (``~/.cache/...``) and ``$TMPDIR/fraudstream-numba-UID``
that this user owns alone and can write; with none, kernels compile in memory at every
start (a few seconds, logged). Cached code is native code that gets loaded: a directory
other users can write to is never used.
"""

from __future__ import annotations

import logging
import os
import stat
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numba

log = logging.getLogger(__name__)


def _private_writable(directory: Path) -> bool:
    try:
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        info = directory.stat()
        if info.st_uid != os.getuid() or info.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
            return False
        with tempfile.NamedTemporaryFile(dir=directory, prefix=".probe-"):
            pass
    except OSError:
        return False
    return True


def _cache_candidates() -> list[Path]:
    found = []
    if os.environ.get("NUMBA_CACHE_DIR"):
        found.append(Path(os.environ["NUMBA_CACHE_DIR"]))
    xdg = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    found.append(Path(xdg) / "fraudstream" / "numba")
    found.append(Path(tempfile.gettempdir()) / f"fraudstream-numba-{os.getuid()}")
    return found


def choose_cache_dir() -> str | None:
    """The cache directory to use, or None: no cache."""
    for candidate in _cache_candidates():
        if _private_writable(candidate):
            return str(candidate)
    return None


CACHE_DIR = choose_cache_dir()
CACHE = CACHE_DIR is not None
if CACHE:
    # numba read NUMBA_CACHE_DIR when it was imported; its cache locator reads this
    # setting when a kernel is declared (the environment is left as it was).
    # numba.config sets its attributes at run time, so the stubs do not know them.
    numba.config.CACHE_DIR = CACHE_DIR  # type: ignore[attr-defined]


_ready: set[str] = set()
warmed: dict[str, str] = {}  # kernel group -> how it got ready, in order


def warm_up(name: str, kernels: Sequence[Any], call: Callable[[], object]) -> float:
    """Compile (or load from the cache) ``kernels`` by running ``call`` on tiny inputs,
    once per process; then refuse to compile them again, so no live batch ever pays for
    it (arguments of another type raise instead). Logs and returns the seconds taken."""
    if name in _ready:
        return 0.0
    began = time.perf_counter()
    call()
    for kernel in kernels:
        kernel.disable_compile()
    seconds = time.perf_counter() - began
    _ready.add(name)
    loaded = sum(sum(kernel.stats.cache_hits.values()) for kernel in kernels)
    how = (f"cache {CACHE_DIR}, {'loaded' if loaded else 'compiled'}" if CACHE
           else "no writable cache directory: compiled in memory")
    warmed[name] = f"{name} {seconds:.2f} s ({how})"
    # Debug here: a command's output stays its own; long-running processes say it once
    # at start (warm_up_report).
    log.debug("%s ready in %.2f s (%s)", name, seconds, how)
    return seconds


def warm_up_report() -> str:
    """How each compiled kernel of this process got ready, for a start-up log line."""
    return "; ".join(warmed.values()) or "none"
