"""Elasticsearch connection settings: precedence, parsing, redaction (no cluster needed)."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from ics_monitor.core.errors import ConfigError
from ics_monitor.sinks.elasticsearch import (
    ElasticsearchSettings,
    _backoff,
    load_settings,
    redact_url,
    settings_from_env,
)


def test_precedence_command_line_over_environment_over_file(tmp_path: Path) -> None:
    config = tmp_path / "config.yaml"
    config.write_text(
        "elasticsearch:\n"
        "  url: [https://file-1:9200, https://file-2:9200]\n"
        "  index_prefix: from-file\n"
        "  batch_size: 100\n"
        "  verify_certs: false\n"
        "other_section: {x: 1}\n"
    )
    environ = {"ICS_MONITOR_ES_INDEX_PREFIX": "from-env", "ICS_MONITOR_ES_API_KEY": "env-key"}
    settings = load_settings(config, environ, {"batch_size": 7})
    assert settings.urls == ("https://file-1:9200", "https://file-2:9200")
    assert settings.index_prefix == "from-env"
    assert settings.batch_size == 7 and settings.verify_certs is False
    assert settings.api_key == "env-key"
    assert load_settings(None, {}).urls == ("http://127.0.0.1:9200",)
    assert load_settings(None, {}).verify_certs is True


def test_environment_variables_cover_every_setting() -> None:
    settings = settings_from_env(
        {
            "ICS_MONITOR_ES_URL": "https://a:9200, https://b:9200",
            "ICS_MONITOR_ES_KINDS": "alert,flow",
            "ICS_MONITOR_ES_VERIFY_CERTS": "no",
            "ICS_MONITOR_ES_SPOOL_MAX_BYTES": "1048576",
            "ICS_MONITOR_ES_CLOSE_TIMEOUT": "2.5",
        }
    )
    assert settings.urls == ("https://a:9200", "https://b:9200")
    assert settings.kinds == {"alert", "flow"}
    assert settings.verify_certs is False and settings.spool_max_bytes == 1 << 20
    assert settings.close_timeout == 2.5


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        ("ICS_MONITOR_ES_VERIFY_CERTS", "maybe", "verify_certs"),
        ("ICS_MONITOR_ES_BATCH_SIZE", "many", "batch_size"),
        ("ICS_MONITOR_ES_KINDS", "alert,nonsense", "kinds"),
        # A NaN timeout once passed and made the run fail at its very end (thread join).
        ("ICS_MONITOR_ES_REQUEST_TIMEOUT", "nan", "request_timeout.*above 0"),
        ("ICS_MONITOR_ES_REQUEST_TIMEOUT", "0.0", "request_timeout"),
        ("ICS_MONITOR_ES_CLOSE_TIMEOUT", "inf", "close_timeout.*0 or more"),
        ("ICS_MONITOR_ES_BACKOFF_MAX", "-1", "backoff_max"),
        ("ICS_MONITOR_ES_SPOOL_MAX_BYTES", "0", "spool_max_bytes.*more than zero"),
    ],
)
def test_bad_values_are_configuration_errors(variable: str, value: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message) as caught:
        settings_from_env({variable: value})
    assert value not in str(caught.value), "values are not echoed (they may be secrets)"


def test_unknown_file_setting_is_refused(tmp_path: Path) -> None:
    config = tmp_path / "c.yaml"
    config.write_text("elasticsearch:\n  pasword: x\n")
    with pytest.raises(ConfigError, match="unknown Elasticsearch setting 'pasword'"):
        load_settings(config, {})


def test_secrets_never_in_repr_or_redacted_view() -> None:
    settings = ElasticsearchSettings(
        urls=("https://elastic:hunter2@es:9200",), api_key="abc123", username="u", password="pw-secret"
    )
    for text in (repr(settings), str(settings.redacted())):
        assert "hunter2" not in text and "abc123" not in text and "pw-secret" not in text
    assert settings.redacted()["urls"] == ["https://elastic:***@es:9200"]
    assert settings.redacted()["api_key"] == "***"
    assert redact_url("http://es:9200") == "http://es:9200"


def test_credentials_in_urls_become_basic_auth() -> None:
    options = ElasticsearchSettings(
        urls=("https://elastic:hunter2@es:9200/",), ca_file="/ca.pem"
    ).client_options()
    assert options["hosts"] == ["https://es:9200/"]
    assert options["basic_auth"] == ("elastic", "hunter2")
    assert options["verify_certs"] is True and options["ca_certs"] == "/ca.pem"


def test_backoff_grows_with_jitter_and_is_capped() -> None:
    rng = random.Random(1)
    delays = [_backoff(attempt, 0.5, 30.0, rng) for attempt in range(1, 12)]
    for attempt, delay in enumerate(delays, start=1):
        ceiling = min(30.0, 0.5 * 2 ** (attempt - 1))
        assert ceiling / 2 <= delay <= ceiling
    assert len({round(d, 6) for d in delays}) == len(delays), "jittered"
