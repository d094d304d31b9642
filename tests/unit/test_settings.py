"""fraudstream.settings: environment parsing, validation and Secret."""

from __future__ import annotations

import dataclasses

import pytest

from fraudstream.errors import ConfigError
from fraudstream.features.definitions import TERMINAL_RING_DAYS
from fraudstream.settings import PREFIX, Secret, Settings


def test_empty_environment_gives_the_documented_defaults() -> None:
    settings = Settings.from_env({})
    assert settings.kafka_bootstrap is None
    assert settings.redis_url is None
    assert settings.max_batch == 500
    assert settings.budget_ms == 1.0
    assert settings.emit_features is False
    assert settings.topic_transactions == "transactions"
    assert settings.log_format == "text"
    assert settings.max_event_age_days == 90.0
    assert settings.max_event_lead_s == 3600.0
    assert settings.feature_ttl_days == 40


def test_from_env_parses_int_float_bool_and_str() -> None:
    settings = Settings.from_env({
        "FRAUDSTREAM_MAX_BATCH": "50",
        "FRAUDSTREAM_BUDGET_MS": "2.5",
        "FRAUDSTREAM_EMIT_FEATURES": "yes",
        "FRAUDSTREAM_REDIS_URL": "redis://cache:6379/3",
        "FRAUDSTREAM_TOPIC_DLQ": "dead",
        "FRAUDSTREAM_METRICS_PORT": "9100",
        "FRAUDSTREAM_COMMIT_INTERVAL_S": "3",
    })
    assert settings.max_batch == 50 and type(settings.max_batch) is int
    assert settings.budget_ms == 2.5 and type(settings.budget_ms) is float
    assert settings.emit_features is True
    assert settings.redis_url == "redis://cache:6379/3"
    assert settings.topic_dlq == "dead"
    assert settings.metrics_port == 9100
    assert settings.commit_interval_s == 3.0 and type(settings.commit_interval_s) is float


def test_event_time_limits_parse_from_the_environment() -> None:
    settings = Settings.from_env({
        "FRAUDSTREAM_MAX_EVENT_AGE_DAYS": "7.5",
        "FRAUDSTREAM_MAX_EVENT_LEAD_S": "30",
        "FRAUDSTREAM_FEATURE_TTL_DAYS": "45",
    })
    assert settings.max_event_age_days == 7.5 and type(settings.max_event_age_days) is float
    assert settings.max_event_lead_s == 30.0 and type(settings.max_event_lead_s) is float
    assert settings.feature_ttl_days == 45


@pytest.mark.parametrize("name", ["FRAUDSTREAM_MAX_EVENT_AGE_DAYS",
                                  "FRAUDSTREAM_MAX_EVENT_LEAD_S"])
def test_event_time_limits_must_be_numbers(name: str) -> None:
    with pytest.raises(ConfigError, match=f"{name}='a week' is not a valid float"):
        Settings.from_env({name: "a week"})


def test_feature_ttl_must_exceed_the_39_day_terminal_ring() -> None:
    assert TERMINAL_RING_DAYS == 39
    with pytest.raises(ConfigError,
                       match="feature_ttl_days must exceed the 39-day terminal ring"):
        Settings(feature_ttl_days=39)
    with pytest.raises(ConfigError, match="feature_ttl_days"):
        Settings.from_env({"FRAUDSTREAM_FEATURE_TTL_DAYS": "39"})
    assert Settings(feature_ttl_days=40).feature_ttl_days == 40
    assert Settings.from_env({"FRAUDSTREAM_FEATURE_TTL_DAYS": "40"}).feature_ttl_days == 40


def test_variables_without_the_prefix_are_ignored() -> None:
    settings = Settings.from_env({"MAX_BATCH": "7", "fraudstream_max_batch": "8"})
    assert settings.max_batch == 500


@pytest.mark.parametrize("raw, expected", [
    ("1", True), ("true", True), ("TRUE", True), ("Yes", True), (" on ", True),
    ("0", False), ("false", False), ("no", False), ("OFF", False),
])
def test_bool_spellings(raw: str, expected: bool) -> None:
    settings = Settings.from_env({"FRAUDSTREAM_EMIT_FEATURES": raw})
    assert settings.emit_features is expected


def test_empty_value_means_default() -> None:
    settings = Settings.from_env({"FRAUDSTREAM_MAX_BATCH": "", "FRAUDSTREAM_REDIS_URL": ""})
    assert settings.max_batch == 500
    assert settings.redis_url is None


@pytest.mark.parametrize("name, raw, kind", [
    ("FRAUDSTREAM_MAX_BATCH", "ten", "int"),
    ("FRAUDSTREAM_MAX_BATCH", "12.5", "int"),
    ("FRAUDSTREAM_METRICS_PORT", "0x", "int"),
    ("FRAUDSTREAM_BUDGET_MS", "fast", "float"),
    ("FRAUDSTREAM_SHUTDOWN_TIMEOUT_S", "1,5", "float"),
    ("FRAUDSTREAM_EMIT_FEATURES", "maybe", "bool"),
    ("FRAUDSTREAM_EMIT_FEATURES", "2", "bool"),
])
def test_unparsable_value_names_the_variable(name: str, raw: str, kind: str) -> None:
    with pytest.raises(ConfigError) as caught:
        Settings.from_env({name: raw})
    message = str(caught.value)
    assert name in message
    assert repr(raw) in message
    assert f"not a valid {kind}" in message
    assert "\n" not in message
    assert caught.value.exit_code == 2


def test_overrides_win_over_the_environment_and_none_overrides_are_ignored() -> None:
    env = {"FRAUDSTREAM_LOG_LEVEL": "debug", "FRAUDSTREAM_MAX_BATCH": "10"}
    settings = Settings.from_env(env, log_level="error", max_batch=None)
    assert settings.log_level == "error"
    assert settings.max_batch == 10


def test_process_environment_is_the_default_source(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FRAUDSTREAM_GROUP_ID", "group-from-env")
    assert Settings.from_env().group_id == "group-from-env"


@pytest.mark.parametrize("changes, fragment", [
    ({"budget_ms": 0.0}, "budget_ms"),
    ({"budget_ms": -1.0}, "budget_ms"),
    ({"budget_ms": float("nan")}, "budget_ms"),
    ({"max_batch": 0}, "max_batch"),
    ({"max_wait_ms": -1}, "max_wait_ms"),
    ({"fetch_wait_ms": 0}, "fetch_wait_ms"),
    ({"commit_interval_s": 0.0}, "commit_interval_s"),
    ({"max_event_bytes": 63}, "max_event_bytes"),
    ({"feature_ttl_days": 30}, "feature_ttl_days"),
    ({"feature_ttl_days": 37}, "feature_ttl_days"),
    ({"feature_ttl_days": 39}, "feature_ttl_days"),
    ({"max_event_age_days": 0.0}, "max_event_age_days"),
    ({"max_event_age_days": -1.0}, "max_event_age_days"),
    ({"max_event_lead_s": -0.001}, "max_event_lead_s"),
    ({"metrics_port": -1}, "metrics_port"),
    ({"metrics_port": 65536}, "metrics_port"),
    ({"log_format": "xml"}, "log_format"),
    ({"log_level": "trace"}, "log_level"),
])
def test_validation_errors(changes: dict, fragment: str) -> None:
    with pytest.raises(ConfigError, match=fragment):
        Settings(**changes)


@pytest.mark.parametrize("changes", [
    {"budget_ms": 0.001},
    {"max_batch": 1},
    {"max_wait_ms": 0},
    {"fetch_wait_ms": 1},
    {"max_event_bytes": 64},
    {"feature_ttl_days": 40},
    {"max_event_age_days": 0.001},
    {"max_event_lead_s": 0.0},
    {"metrics_port": 0},
    {"metrics_port": 65535},
    {"log_format": "json"},
    {"log_level": "warning"},
])
def test_values_on_the_accepted_side_of_each_boundary(changes: dict) -> None:
    settings = Settings(**changes)
    for key, value in changes.items():
        assert getattr(settings, key) == value


def test_validation_applies_to_values_read_from_the_environment() -> None:
    with pytest.raises(ConfigError, match="budget_ms must be > 0"):
        Settings.from_env({"FRAUDSTREAM_BUDGET_MS": "0"})


def test_replace_validates_and_keeps_the_original() -> None:
    settings = Settings()
    with pytest.raises(ConfigError, match="max_batch"):
        settings.replace(max_batch=0)
    changed = settings.replace(max_batch=5)
    assert changed.max_batch == 5
    assert settings.max_batch == 500


def test_settings_are_frozen() -> None:
    settings = Settings()
    with pytest.raises(dataclasses.FrozenInstanceError):
        settings.max_batch = 3


def test_describe_lists_every_variable_once_with_its_default() -> None:
    rows = Settings.describe()
    names = [name for name, _, _ in rows]
    assert len(names) == len(set(names)) == len(dataclasses.fields(Settings))
    assert all(name.startswith(PREFIX) and name.isupper() for name in names)
    as_dict = {name: default for name, default, _ in rows}
    assert as_dict["FRAUDSTREAM_MAX_BATCH"] == "500"
    assert as_dict["FRAUDSTREAM_KAFKA_BOOTSTRAP"] == "None"
    assert all(doc for _, _, doc in rows)


# --- Secret -------------------------------------------------------------------------------

VALUE = "hunter2-very-secret"


def test_secret_hides_its_value_in_str_repr_and_formatting() -> None:
    secret = Secret(VALUE)
    shown = [
        str(secret), repr(secret), f"{secret}", f"{secret!s}", f"{secret!r}",
        format(secret), repr([secret]), repr({"password": secret}),
        "%s" % secret, "%r" % secret,  # noqa: UP031  (logging formats with %)
    ]
    for text in shown:
        assert VALUE not in text, text
    assert str(secret) == "***"
    assert f"{secret}" == "***"
    assert repr(secret) == "Secret('***')"


def test_secret_reveal_returns_the_value() -> None:
    secret = Secret(VALUE)
    assert secret.reveal() == VALUE
    assert type(secret.reveal()) is str
    assert secret == VALUE  # still a str for code that needs the value


def test_secret_hides_its_value_with_a_format_spec() -> None:
    secret = Secret(VALUE)
    assert VALUE not in f"{secret:>30}"
    assert VALUE not in f"{secret:<40}"
    assert VALUE not in format(secret, "s")


def test_repr_never_shows_the_redis_password() -> None:
    settings = Settings(redis_url="redis://worker:s3cr3t-pw@redis.internal:6380/0")
    text = repr(settings)
    assert "s3cr3t-pw" not in text
    assert "redis://worker:***@redis.internal:6380/0" in text
    assert settings.redis_url == "redis://worker:s3cr3t-pw@redis.internal:6380/0"
    assert "redis://plain:6379/0" in repr(Settings(redis_url="redis://plain:6379/0"))


def test_child_environ_hands_every_set_value_and_drops_stale_ones() -> None:
    settings = Settings(kafka_bootstrap="k:1", max_batch=7,
                        redis_url=Secret("redis://u:pw@h:1/0"))
    env = settings.child_environ({"PATH": "/bin", "FRAUDSTREAM_GROUP_ID": "stale"})
    assert env["PATH"] == "/bin"
    assert env["FRAUDSTREAM_KAFKA_BOOTSTRAP"] == "k:1"
    assert env["FRAUDSTREAM_MAX_BATCH"] == "7"
    assert env["FRAUDSTREAM_REDIS_URL"] == "redis://u:pw@h:1/0"  # revealed to the child only
    assert env["FRAUDSTREAM_GROUP_ID"] == "fraudstream-workers"
    assert "FRAUDSTREAM_STATUS_FILE" not in env  # unset settings stay unset
    assert Settings.from_env(env) == settings.replace(redis_url="redis://u:pw@h:1/0")
