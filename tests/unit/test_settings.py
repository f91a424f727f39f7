"""Settings.from_env: defaults, parsing, and one error naming every problem."""

from __future__ import annotations

import pytest
from cryptography.fernet import Fernet

from settings import Settings, SettingsError

KEY = Fernet.generate_key().decode()
UUID = "0b0e9ee5-4d6c-4c8a-9a5e-2f2a7c1e1a11"


def test_minimal_environment_gives_documented_defaults():
    s = Settings.from_env({"FORGE_APP_ID": UUID, "SECRET_KEY": KEY})
    assert s.app_id == "ari:cloud:ecosystem::app/" + UUID
    assert s.jwks_url == "https://forge.cdn.prod.atlassian-dev.net/.well-known/jwks.json"
    assert s.api_base_url_allowlist == ("https://api.atlassian.com/",)
    assert s.graphql_url == "https://api.atlassian.com/graphql"
    assert s.database_url == "sqlite:///var/access-desk.sqlite3"
    assert s.public_base_url is None
    assert s.call_deadline_seconds == 20.0 and s.upstream_concurrency == 4


def test_full_ari_is_kept_and_knobs_are_parsed():
    s = Settings.from_env(
        {
            "FORGE_APP_ID": "ari:cloud:ecosystem::app/" + UUID,
            "SECRET_KEY": KEY,
            "API_BASE_URL_ALLOWLIST": "http://127.0.0.1:8001/ex/, https://api.atlassian.com/",
            "PUBLIC_BASE_URL": "https://desk.example.com/",
            "UPSTREAM_CONCURRENCY": "8",
            "BACKGROUND_WORKER": "off",
        }
    )
    assert s.app_id == "ari:cloud:ecosystem::app/" + UUID
    assert s.api_base_url_allowlist == ("http://127.0.0.1:8001/ex/", "https://api.atlassian.com/")
    assert s.public_base_url == "https://desk.example.com"
    assert s.upstream_concurrency == 8
    assert s.background_worker is False


def test_every_problem_is_named_at_once():
    with pytest.raises(SettingsError) as info:
        Settings.from_env(
            {"SECRET_KEY": "not-a-key", "UPSTREAM_CONCURRENCY": "zero", "FORGE_JWKS_URL": "ftp://x"}
        )
    text = str(info.value)
    assert len(info.value.problems) == 4
    for name in ("FORGE_APP_ID", "SECRET_KEY", "UPSTREAM_CONCURRENCY", "FORGE_JWKS_URL"):
        assert name in text


def test_missing_secret_key_and_bad_allowlist_prefix():
    with pytest.raises(SettingsError) as info:
        Settings.from_env(
            {"FORGE_APP_ID": UUID, "API_BASE_URL_ALLOWLIST": "https://api.atlassian.com"}
        )
    problems = info.value.problems
    assert any("SECRET_KEY is required" in p for p in problems)
    assert any("must end with '/'" in p for p in problems)


def test_personal_data_settings():
    s = Settings.from_env({"FORGE_APP_ID": UUID, "SECRET_KEY": KEY})
    assert s.personal_data_url == "https://api.atlassian.com/app/report-accounts/"
    assert (s.personal_data_report_days, s.personal_data_retention_days) == (7, 90)
    s = Settings.from_env(
        {
            "FORGE_APP_ID": UUID,
            "SECRET_KEY": KEY,
            "PERSONAL_DATA_URL": "http://127.0.0.1:8000/app/report-accounts/",
            "PERSONAL_DATA_REPORT_DAYS": "0",
            "PERSONAL_DATA_RETENTION_DAYS": "30",
        }
    )
    assert s.personal_data_url == "http://127.0.0.1:8000/app/report-accounts/"
    assert (s.personal_data_report_days, s.personal_data_retention_days) == (0, 30)
    with pytest.raises(SettingsError) as info:
        Settings.from_env(
            {
                "FORGE_APP_ID": UUID,
                "SECRET_KEY": KEY,
                "PERSONAL_DATA_URL": "ftp://x",
                "PERSONAL_DATA_REPORT_DAYS": "-1",
                "PERSONAL_DATA_RETENTION_DAYS": "0",
            }
        )
    assert len(info.value.problems) == 3
