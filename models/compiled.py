"""Compiled tree ensembles: the model as a TL2cgen shared library, 30x faster per batch.

The library is part of the artifact and hashed in its signed manifest like every other
file. Loading it runs native code, so it is loaded only from the bytes the artifact
check verified, through a private copy this process writes into a directory only it can
reach and hashes again before loading it; and it is used only if it reproduces
scikit-learn's probabilities on a probe matrix.
"""

from __future__ import annotations

import contextlib
import ctypes
import hashlib
import logging
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numba
import numpy as np
from llvmlite import ir
from numba.core import types
from numba.extending import intrinsic

from fraudstream.features.jit import CACHE, warm_up

log = logging.getLogger(__name__)

LIBRARY_FILE = "scorer.so"
TOLERANCE = 1e-6


class CompiledScorerError(RuntimeError):
    """The compiled library cannot be built, loaded or trusted."""


def compiled_entries(model: Any, directory: Path, means: list[float],
                     stds: list[float]) -> dict[str, Any]:
    """Manifest entries for ``model`` compiled into ``directory``: the library's name and
    what a worker checks it against without scikit-learn (the model's probabilities on
    the probe matrix, its split thresholds). ``compiled`` is None when not compiled."""
    library = compile_model(model, directory)
    if library is None:
        return {"compiled": None}
    probe = probe_matrix(means, stds)
    return {"compiled": library, "compiled_check": {
        "probe_probabilities": model.predict_proba(probe)[:, 1].tolist(),
        "split_thresholds": [t.tolist() for t in split_thresholds(model, probe.shape[1])]}}


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


# The generated library's own entry point for one row:
# void predict(union Entry* row, int pred_margin, double* result), result += per output.
ROW_FUNCTION = ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.c_int, ctypes.c_void_p)


# no-untyped-def: numba calls an intrinsic's typer with its own typing objects
@intrinsic
def _call_row(typingctx: Any, address: Any, row: Any, margin: Any, result: Any):  # type: ignore[no-untyped-def]
    """``predict(row, margin, result)`` of the library whose entry point is at the integer
    ``address`` (the C signature of ROW_FUNCTION). Taking the address as a number, not a
    ctypes function object, is what lets numba cache the loop that calls it: compiled
    once per machine, not at every start."""
    signature = types.void(address, row, margin, result)

    def codegen(context: Any, builder: Any, sig: Any, args: Any) -> None:
        address_value, row_value, margin_value, result_value = args
        bytes_pointer = ir.IntType(8).as_pointer()
        doubles_pointer = ir.DoubleType().as_pointer()
        function = ir.FunctionType(ir.VoidType(), [bytes_pointer, ir.IntType(32),
                                                   doubles_pointer])
        builder.call(builder.inttoptr(address_value, function.as_pointer()),
                     [builder.inttoptr(row_value, bytes_pointer),
                      builder.trunc(margin_value, ir.IntType(32)),
                      builder.inttoptr(result_value, doubles_pointer)])
    return signature, codegen


@numba.njit(cache=CACHE, nogil=True)
def predict_rows(predict_row: int, matrix: np.ndarray, outputs: int, thresholds: np.ndarray,
                 starts: np.ndarray) -> np.ndarray:
    """The library's ``predict`` (at address ``predict_row``) on every row of a
    C-contiguous float64 ``matrix``,
    probabilities (``pred_margin`` 0); the last output of each row. A value whose low 32
    bits are all ones (TL2cgen's missing marker) is moved by one ulp in a copy of its row
    first, upwards unless a split threshold of its feature (``thresholds[starts[j]:
    starts[j + 1]]``) is that very value, then downwards (see ``CompiledScorer``)."""
    n, width = matrix.shape
    probabilities = np.empty(n, np.float64)
    result = np.zeros(outputs, np.float64)
    row = np.empty(width, np.float64)
    bits = matrix.reshape(n * width).view(np.uint64)
    base, row_bytes = matrix.ctypes.data, width * 8
    for i in range(n):
        aliased = False
        for j in range(width):
            if bits[i * width + j] & _LOW_WORD == _LOW_WORD:
                aliased = True
                break
        result[:] = 0.0  # the generated code adds each tree's leaf to it
        if aliased:  # a copy of the row with its aliased values moved
            for j in range(width):
                value = matrix[i, j]
                if bits[i * width + j] & _LOW_WORD == _LOW_WORD:
                    crosses = False
                    for q in range(starts[j], starts[j + 1]):
                        if thresholds[q] == value:
                            crosses = True
                    value = np.nextafter(value, -np.inf if crosses else np.inf)
                row[j] = value
            # call-arg: numba supplies the typing context, the first argument of the typer
            _call_row(predict_row, row.ctypes.data, 0, result.ctypes.data)  # type: ignore[call-arg]
        else:
            _call_row(predict_row, base + i * row_bytes, 0, result.ctypes.data)  # type: ignore[call-arg]
        probabilities[i] = result[outputs - 1]
    return probabilities


def _no_row(_row: int, _margin: int, _result: int) -> None:
    return None


_WARM_UP_ROW = ROW_FUNCTION(_no_row)


def function_address(function: Any) -> int:
    """The address of a ctypes function (a library's entry point, or a callback)."""
    address = ctypes.cast(function, ctypes.c_void_p).value
    if not address:
        raise CompiledScorerError("the compiled library has no predict function")
    return address


def compile_row_loop() -> float:
    """Compile ``predict_rows`` before any batch (once per process; ``jit.warm_up``)."""
    return warm_up("compiled tree loop", [predict_rows],
                   lambda: predict_rows(function_address(_WARM_UP_ROW),
                                        np.zeros((1, 1), np.float64), 1,
                                        *_flat_thresholds([], 1)))


class CompiledScorer:
    """Fraud probabilities from the compiled library, one thread, any batch size: its
    ``predict`` is called row by row from compiled code, so a batch of one costs a few
    microseconds (TL2cgen's Python predictor spends some 20 building its matrix).

    TL2cgen's generated code reads a row as ``union {int missing; double fvalue;}`` and
    takes ``missing == -1`` for a missing value, so a double whose low 32 bits are all
    ones silently follows the missing-value branch. Such values are moved by one ulp
    first, upwards unless that would cross a split threshold of their feature, in which
    case downwards: every split then sends the row where scikit-learn does."""

    def __init__(self, library: bytes, thresholds: list[np.ndarray] | None = None) -> None:
        compile_row_loop()
        try:
            with private_copy(library) as path:
                self._library = ctypes.CDLL(str(path))  # kept: it must stay loaded
            get_num_feature = self._library.get_num_feature
            get_num_feature.restype = ctypes.c_int32
            get_num_target = self._library.get_num_target
            get_num_target.restype = ctypes.c_int32
            targets = int(get_num_target())
            classes = (ctypes.c_int32 * max(1, targets))()
            self._library.get_num_class(classes)
            self._row = function_address(ROW_FUNCTION(("predict", self._library)))
        except OSError as exc:
            raise CompiledScorerError(f"cannot load the compiled library: {exc}") from None
        except AttributeError as exc:
            raise CompiledScorerError(f"not a TL2cgen library: {exc}") from None
        self._features = int(get_num_feature())
        self._outputs = targets * max(classes)
        self._thresholds = _flat_thresholds(thresholds or [], self._features)

    def predict(self, matrix: np.ndarray) -> np.ndarray:
        if matrix.ndim != 2 or matrix.shape[1] != self._features:
            raise CompiledScorerError(f"the compiled model reads {self._features} features, "
                                      f"the batch has shape {matrix.shape}")
        return np.asarray(predict_rows(self._row, np.ascontiguousarray(matrix, np.float64),
                                       self._outputs, *self._thresholds))

    def check(self, probe: np.ndarray, expected: np.ndarray) -> None:
        """Refuse the library unless it gives the model's probabilities on ``probe``."""
        actual = self.predict(probe)
        if actual.shape != expected.shape:
            raise CompiledScorerError(f"compiled scorer gave {actual.shape[0]} probabilities "
                                      f"for {expected.shape[0]} probe rows")
        worst = float(np.max(np.abs(actual - expected))) if probe.size else 0.0
        if not worst <= TOLERANCE:
            raise CompiledScorerError(
                f"compiled scorer differs from the model by {worst:.2e} (> {TOLERANCE:g})")


def _flat_thresholds(thresholds: list[np.ndarray], features: int,
                     ) -> tuple[np.ndarray, np.ndarray]:
    """Each feature's split thresholds back to back, and where each feature's start
    (``features + 1`` entries; a feature without any has an empty range)."""
    lengths = [len(thresholds[j]) if j < len(thresholds) else 0 for j in range(features)]
    starts = np.zeros(features + 1, np.int64)
    starts[1:] = np.cumsum(lengths)
    flat = (np.concatenate([np.asarray(t, np.float64) for t in thresholds[:features]])
            if any(lengths) else np.zeros(0, np.float64))
    return np.ascontiguousarray(flat, np.float64), starts


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
