"""Compile every kernel a worker uses into the cache, once, ahead of the processes that
need them: ``python -m fraudstream.warm_kernels``. README's test command runs it beside
the type check, so the first test processes of a fresh checkout load the kernels instead
of each compiling them at once on the same cores."""

from __future__ import annotations

from fraudstream.features import jit
from fraudstream.features.kernels import compile_kernels
from fraudstream.features.resp_pack import compile_packer
from fraudstream.models.compiled import compile_row_loop
from fraudstream.models.decision_kernel import compile_decisions


def warm_kernels() -> str:
    """Compile or load each kernel group; how each got ready."""
    for compile_group in (compile_kernels, compile_packer, compile_row_loop,
                          compile_decisions):
        compile_group()
    return jit.warm_up_report()


if __name__ == "__main__":
    print(warm_kernels())
