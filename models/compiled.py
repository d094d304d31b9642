"""Compiled tree ensembles: the model as a TL2cgen shared library, 30x faster per batch.

The library is part of the artifact and hashed in its signed manifest like every other
file. Loading it runs native code, so it is loaded only from the bytes the artifact
check verified, through a private copy this process writes into a directory only it can
reach and hashes again before loading it; and it is used only if it reproduces
scikit-learn's probabilities on a probe matrix.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

log = logging.getLogger("fraudstream.models")

LIBRARY_FILE = "scorer.so"
TOLERANCE = 1e-6


class CompiledScorerError(RuntimeError):
    """The compiled library cannot be built, loaded or trusted."""


def compile_model(model: Any, directory: Path) -> str | None:
    """Build ``directory/scorer.so`` for a tree ensemble; None when it is not one or when
    no compiler is available (the scikit-learn model is then scored directly)."""
    try:
        import tl2cgen
        import treelite
    except ImportError:
        log.warning("treelite/tl2cgen not installed: no compiled scorer")
        return None
    try:
        # treelite leaves import_model unannotated
        imported = treelite.sklearn.import_model(model)  # type: ignore[no-untyped-call]
    except Exception as exc:  # not a tree ensemble treelite knows
        log.info("model not compiled: %s", exc)
        return None
    path = directory / LIBRARY_FILE
    try:
        tl2cgen.export_lib(imported, toolchain=os.environ.get("CC", "gcc"), libpath=str(path),
                           params={"parallel_comp": 4}, verbose=False)
    except Exception as exc:
        log.warning("compiling the model failed, it will be scored by scikit-learn: %s", exc)
        path.unlink(missing_ok=True)
        return None
    return LIBRARY_FILE


_LOW_WORD = np.uint64(0xFFFFFFFF)


@contextlib.contextmanager
def private_copy(library: bytes) -> Iterator[Path]:
    """``library`` written to a fresh 0700 directory of this process, read back and
    hashed against the verified bytes, removed once loaded (the loader has mapped it)."""
    directory = tempfile.mkdtemp(prefix="fraudstream-scorer-")  # mode 0700
    try:
        path = Path(directory) / LIBRARY_FILE
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o500)
        with os.fdopen(fd, "wb") as handle:
            handle.write(library)
        if hashlib.sha256(path.read_bytes()).digest() != hashlib.sha256(library).digest():
            raise CompiledScorerError("the private copy of the compiled library changed "
                                      "before it was loaded")
        yield path
    finally:
        shutil.rmtree(directory, ignore_errors=True)


def split_thresholds(model: Any, n_features: int) -> list[np.ndarray]:
    """Every numerical split threshold of a HistGradientBoosting model, per feature."""
    found: list[list[float]] = [[] for _ in range(n_features)]
    for iteration in getattr(model, "_predictors", []):
        for tree in iteration:
            nodes = tree.nodes[~tree.nodes["is_leaf"].astype(bool)]
            for feature, threshold in zip(nodes["feature_idx"], nodes["num_threshold"],
                                          strict=True):
                found[int(feature)].append(float(threshold))
    return [np.unique(np.asarray(t, dtype=np.float64)) for t in found]


class CompiledScorer:
    """Fraud probabilities from the compiled library, one thread, any batch size.

    TL2cgen's generated code reads a row as ``union {int missing; double fvalue;}`` and
    takes ``missing == -1`` for a missing value, so a double whose low 32 bits are all
    ones silently follows the missing-value branch. Such values are moved by one ulp
    first, upwards unless that would cross a split threshold of their feature, in which
    case downwards: every split then sends the row where scikit-learn does."""

    def __init__(self, library: bytes, thresholds: list[np.ndarray] | None = None) -> None:
        try:
            import tl2cgen

            self._dmatrix = tl2cgen.DMatrix
            with private_copy(library) as path:
                self._predictor = tl2cgen.Predictor(str(path), nthread=1, verbose=False)
        except CompiledScorerError:
            raise
        except Exception as exc:
            raise CompiledScorerError(f"cannot load the compiled library: {exc}") from None
        self._thresholds = thresholds or []

    def _unalias_missing(self, matrix: np.ndarray) -> np.ndarray:
        matrix = np.ascontiguousarray(matrix, dtype=np.float64)
        aliased = (matrix.view(np.uint64) & _LOW_WORD) == _LOW_WORD
        if not aliased.any():
            return matrix
        matrix = matrix.copy()
        for row, column in zip(*np.nonzero(aliased), strict=True):
            value = matrix[row, column]
            known = self._thresholds[column] if column < len(self._thresholds) else None
            crosses = known is not None and np.any(known == value)
            matrix[row, column] = np.nextafter(value, -np.inf if crosses else np.inf)
        return matrix

    def predict(self, matrix: np.ndarray) -> np.ndarray:
        matrix = self._unalias_missing(matrix)
        raw = self._predictor.predict(self._dmatrix(matrix, dtype="float64"))
        return np.asarray(raw, dtype=np.float64).reshape(matrix.shape[0], -1)[:, -1]

    def verify(self, model: Any, probe: np.ndarray) -> None:
        expected = model.predict_proba(probe)[:, 1]
        actual = self.predict(probe)
        worst = float(np.max(np.abs(actual - expected))) if probe.size else 0.0
        if not worst <= TOLERANCE:
            raise CompiledScorerError(
                f"compiled scorer differs from the model by {worst:.2e} (> {TOLERANCE:g})")


def probe_matrix(means: list[float], stds: list[float], rows: int = 256,
                 seed: int = 0) -> np.ndarray:
    """Rows spread around the training distribution, to check a compiled scorer."""
    rng = np.random.default_rng(seed)
    mean = np.asarray(means, dtype=np.float64)
    std = np.asarray(stds, dtype=np.float64)
    probe = np.abs(mean + rng.standard_normal((rows, mean.size)) * std * 2)
    # Values whose low word reads as TL2cgen's "missing" marker: the verified path must
    # cover them.
    bits = probe.view(np.uint64)
    bits[: rows // 8] |= _LOW_WORD
    return probe
