"""`fraudstream serve` and `api-key`: bad arguments and settings end in one line, before
any server starts."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from fraudstream.cli import main


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """No platform or FRAUDSTREAM_ variable leaks in; main()'s logging setup is undone."""
    for name in list(os.environ):
        if name.startswith(("FRAUDSTREAM_", "AIP_", "SAGEMAKER_")):
            monkeypatch.delenv(name)
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    yield
    root.handlers[:], level = saved
    root.setLevel(level)


@pytest.mark.parametrize("argv, fragment", [
    (["serve", "--port", "0"], "0 is not a port in 1..65535"),
    (["serve", "--port", "http"], "invalid port_number value"),
    (["serve", "--workers", "0"], "0 is not a positive integer"),
    (["api-key"], "the following arguments are required: api_key_command"),
    (["api-key", "create"], "the following arguments are required: name"),
])
def test_bad_arguments_exit_2_with_one_line(argv: list[str], fragment: str,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as caught:
        main(argv)
    assert caught.value.code == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and fragment in lines[0]


def test_bad_settings_exit_2_with_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    keys = tmp_path / "keys"
    keys.write_text("")
    cases = [
        ({}, "no API keys: set FRAUDSTREAM_API_KEYS_FILE"),
        ({"FRAUDSTREAM_API_KEYS_FILE": str(tmp_path / "absent")},
         "cannot read the API keys file"),
        ({"FRAUDSTREAM_API_KEYS_FILE": str(keys.with_name("bad"))}, "line 1"),
        ({"FRAUDSTREAM_API_AUTH": "open"}, "api_auth must be keys or platform"),
        ({"FRAUDSTREAM_API_BURST": "10"}, "api_burst must be >= api_max_batch"),
        ({"FRAUDSTREAM_API_AUTH": "platform", "AIP_HTTP_PORT": "eighty"},
         "AIP_HTTP_PORT='eighty' is not a port number"),
        ({"FRAUDSTREAM_API_AUTH": "platform", "AIP_PREDICT_ROUTE": "predict"},
         "must be a path starting with /"),
        ({"FRAUDSTREAM_API_AUTH": "platform"}, "no Redis configured"),
        ({"FRAUDSTREAM_API_AUTH": "platform", "FRAUDSTREAM_REDIS_URL": "redis://127.0.0.1:1",
          "FRAUDSTREAM_MODEL_DIR": str(tmp_path / "none")}, "no champion model"),
    ]
    keys.with_name("bad").write_text("alice\n")
    for env, fragment in cases:
        with monkeypatch.context() as patch:
            for name, value in env.items():
                patch.setenv(name, value)
            code = main(["serve"])
        lines = capsys.readouterr().err.strip().splitlines()
        assert code == 2 or "no champion" in fragment, (env, code)
        assert code != 0 and len(lines) == 1 and fragment in lines[0], (env, lines)


def test_revoke_needs_a_keys_file(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["api-key", "revoke", "alice"]) == 2
    assert "no keys file" in capsys.readouterr().err
