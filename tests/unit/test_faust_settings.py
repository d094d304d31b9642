"""The Faust runtime takes the worker's settings where the two share one, not its own."""

from __future__ import annotations

import pytest

from fraudstream.settings import Settings
from fraudstream.stream.faust_app import app_options, without_web


@pytest.mark.parametrize(("ours", "aiokafkas"),
                         [("earliest", "earliest"), ("latest", "latest"), ("error", "none")])
def test_auto_offset_reset_is_the_setting(ours: str, aiokafkas: str) -> None:
    settings = Settings(kafka_bootstrap="127.0.0.1:9", auto_offset_reset=ours)
    assert app_options(settings)["consumer_auto_offset_reset"] == aiokafkas


def test_the_agent_never_opens_fausts_web_server_unless_asked() -> None:
    assert without_web(["faust_app", "worker", "-l", "info"]) == [
        "faust_app", "worker", "--without-web", "-l", "info"]
    assert without_web(["faust_app", "worker", "--with-web"]) == [
        "faust_app", "worker", "--with-web"]
    assert without_web(["faust_app", "--help"]) == ["faust_app", "--help"]
