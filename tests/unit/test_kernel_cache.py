"""Where compiled kernels are cached: a directory this user owns alone and can write, or
none (the kernels then compile in memory), as in a read-only root file system."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from fraudstream.features import jit


def _unwritable(tmp_path: Path) -> Path:
    """A path no one can create (its parent is a file): root's permissions cannot help."""
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    return blocker / "cache"


def test_an_unusable_numba_cache_dir_falls_back_to_the_user_cache(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NUMBA_CACHE_DIR", str(_unwritable(tmp_path)))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    chosen = jit.choose_cache_dir()
    assert chosen == str(tmp_path / "xdg" / "fraudstream" / "numba")
    assert (Path(chosen).stat().st_mode & 0o777) == 0o700


def test_a_directory_others_can_write_to_is_never_used(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o777)
    monkeypatch.setenv("NUMBA_CACHE_DIR", str(shared))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert jit.choose_cache_dir() == str(tmp_path / "xdg" / "fraudstream" / "numba")


def test_no_writable_directory_means_no_cache(tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NUMBA_CACHE_DIR", str(_unwritable(tmp_path)))
    monkeypatch.setenv("XDG_CACHE_HOME", str(_unwritable(tmp_path)))
    monkeypatch.setattr(tempfile, "tempdir", str(_unwritable(tmp_path)))
    assert jit.choose_cache_dir() is None


def test_without_any_cache_directory_the_kernels_compile_in_memory(tmp_path: Path) -> None:
    bad = _unwritable(tmp_path)
    script = (
        "import logging, sys, tempfile\n"
        f"tempfile.tempdir = {str(bad)!r}\n"
        "logging.basicConfig(level=logging.DEBUG, stream=sys.stdout, format='%(message)s')\n"
        "from fraudstream.features.online import OnlineFeatureStore, TransactionBatch\n"
        "from fraudstream.features.store import MemoryStateStore\n"
        "import numpy as np\n"
        "fs = OnlineFeatureStore(MemoryStateStore())\n"
        "m, _ = fs.fetch(TransactionBatch(['c'], ['t'], np.array([86_400_000]),"
        " np.array([12.5]), np.array([0]), np.array([0])))\n"
        "print('amount', m[0, 0])\n")
    env = {**os.environ, "NUMBA_CACHE_DIR": str(bad), "XDG_CACHE_HOME": str(bad),
           "HOME": str(bad)}
    done = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True,
                          text=True, timeout=240, cwd=Path(__file__).parents[2], check=False)
    assert done.returncode == 0, done.stderr
    assert "no writable cache directory: compiled in memory" in done.stdout
    assert "amount 12.5" in done.stdout
