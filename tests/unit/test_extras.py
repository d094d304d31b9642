"""fraudstream.extras: a command run without its extra says which one to install."""

from __future__ import annotations

from fraudstream.extras import absent_module, install_hint, missing_extra


def _missing(name: str) -> ModuleNotFoundError:
    return ModuleNotFoundError(f"No module named '{name}'", name=name)


def test_a_missing_library_names_the_extra_that_brings_it() -> None:
    assert missing_extra(_missing("fastapi")) == "serve"
    assert missing_extra(_missing("onnxruntime.capi")) == "onnx"
    assert missing_extra(_missing("fraudstream.bench")) == "bench"


def test_the_command_s_own_extra_wins() -> None:
    assert missing_extra(_missing("pandas")) == "batch"
    assert missing_extra(_missing("pandas"), "bench") == "bench"
    assert missing_extra(_missing("fraudstream.services"), "services") == "demo"


def test_an_unrelated_missing_module_is_not_explained_away() -> None:
    assert missing_extra(_missing("numpy")) is None
    assert missing_extra(_missing("pandasx")) is None
    assert install_hint(_missing("numpy"), "bench") is None


def test_the_hint_is_one_line_with_the_install_command() -> None:
    hint = install_hint(_missing("faust"))
    assert hint is not None and "\n" not in hint
    assert "pip install 'fraudstream[faust]'" in hint


def test_a_command_s_own_modules_are_checked_before_it_runs() -> None:
    assert absent_module("bench") is None  # a checkout has them all
    assert absent_module("worker") is None
