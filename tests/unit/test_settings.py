"""Settings.from_env: defaults, parsing, and one error naming every problem; the checks a
directly built Settings makes too (app id, no http:// without ALLOW_HTTP)."""

from __future__ import annotations

import pytest
from cryptography.fernet import Fernet

from settings import APP_ARI_PREFIX, Settings, SettingsError

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
    assert s.jwks_cache_seconds == 600.0 and s.allow_http is False


def test_full_ari_is_kept_and_knobs_are_parsed():
    s = Settings.from_env(
        {
            "FORGE_APP_ID": "ari:cloud:ecosystem::app/" + UUID,
            "SECRET_KEY": KEY,
            "API_BASE_URL_ALLOWLIST": "http://127.0.0.1:8001/ex/, https://api.atlassian.com/",
            "PUBLIC_BASE_URL": "https://desk.example.com/",
            "UPSTREAM_CONCURRENCY": "8",
            "BACKGROUND_WORKER": "off",
            "FORGE_JWKS_CACHE_SECONDS": "120",
            "ALLOW_HTTP": "1",
        }
    )
    assert s.jwks_cache_seconds == 120.0 and s.allow_http is True
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


@pytest.mark.parametrize(
    "app_id",
    [
        "nope",
        "ari:cloud:ecosystem::app/nope",
        "ari:cloud:ecosystem::installation/" + UUID,
        UUID + "0",
        "app/" + UUID,
        UUID.replace("-", ""),
    ],
)
def test_an_app_id_that_is_neither_an_ari_nor_a_uuid_stops_the_start(app_id):
    with pytest.raises(SettingsError) as info:
        Settings.from_env(
            {"FORGE_APP_ID": app_id, "SECRET_KEY": "short", "UPSTREAM_CONCURRENCY": "0"}
        )
    problems = info.value.problems
    assert len(problems) == 3
    assert problems[0].startswith(f"FORGE_APP_ID={app_id!r} is invalid")
    assert APP_ARI_PREFIX + "<uuid>" in problems[0]


def test_an_upper_case_uuid_is_an_app_id_too():
    s = Settings.from_env({"FORGE_APP_ID": UUID.upper(), "SECRET_KEY": KEY})
    assert s.app_id == APP_ARI_PREFIX + UUID.upper()


@pytest.mark.parametrize(
    "variable", ["API_BASE_URL_ALLOWLIST", "GRAPHQL_URL", "FORGE_JWKS_URL", "PERSONAL_DATA_URL"]
)
def test_http_urls_need_the_explicit_opt_in(variable):
    url = (
        "http://127.0.0.1:8001/ex/"
        if variable == "API_BASE_URL_ALLOWLIST"
        else "http://127.0.0.1:8001/x"
    )
    env = {"FORGE_APP_ID": UUID, "SECRET_KEY": KEY, variable: url}
    with pytest.raises(SettingsError) as info:
        Settings.from_env(env)
    [problem] = info.value.problems
    assert problem.startswith(f"{variable} has an http:// URL") and "ALLOW_HTTP=1" in problem
    with pytest.raises(SettingsError):
        Settings.from_env({**env, "ALLOW_HTTP": "0"})
    assert Settings.from_env({**env, "ALLOW_HTTP": "1"}).allow_http is True


def test_a_mixed_allowlist_is_refused_for_its_http_entry():
    with pytest.raises(SettingsError) as info:
        Settings.from_env(
            {
                "FORGE_APP_ID": UUID,
                "SECRET_KEY": KEY,
                "API_BASE_URL_ALLOWLIST": "https://api.atlassian.com/, http://insecure.example/",
            }
        )
    assert "'http://insecure.example/'" in info.value.problems[0]


def test_settings_built_directly_are_checked_too():
    with pytest.raises(SettingsError) as info:
        Settings(app_id="nope", secret_key=KEY, api_base_url_allowlist=("http://127.0.0.1:1/",))
    assert [p.split("=")[0].split(" ")[0] for p in info.value.problems] == [
        "FORGE_APP_ID",
        "API_BASE_URL_ALLOWLIST",
    ]
    ok = Settings(
        app_id=APP_ARI_PREFIX + UUID,
        secret_key=KEY,
        api_base_url_allowlist=("http://127.0.0.1:1/",),
        allow_http=True,
    )
    assert ok.allow_http


def test_allowlist_prefixes_are_kept_in_canonical_form():
    s = Settings.from_env(
        {
            "FORGE_APP_ID": UUID,
            "SECRET_KEY": KEY,
            "API_BASE_URL_ALLOWLIST": "HTTPS://API.Atlassian.com:443/, https://api.atlassian.com/ex/./confluence/",
        }
    )
    assert s.api_base_url_allowlist == (
        "https://api.atlassian.com/",
        "https://api.atlassian.com/ex/confluence/",
    )


@pytest.mark.parametrize(
    "prefix",
    ["https://api.atlassian.com@evil.example/", "https://api.atlassian.com/../", "https://x/%2e/"],
)
def test_allowlist_prefixes_that_are_not_plain_urls_are_refused(prefix):
    with pytest.raises(SettingsError) as info:
        Settings.from_env(
            {"FORGE_APP_ID": UUID, "SECRET_KEY": KEY, "API_BASE_URL_ALLOWLIST": prefix}
        )
    assert "is not a plain URL" in info.value.problems[0]


@pytest.mark.parametrize("raw", ["0", "-5", "soon"])
def test_jwks_cache_seconds_must_be_positive(raw):
    with pytest.raises(SettingsError) as info:
        Settings.from_env(
            {"FORGE_APP_ID": UUID, "SECRET_KEY": KEY, "FORGE_JWKS_CACHE_SECONDS": raw}
        )
    assert info.value.problems[0].startswith("FORGE_JWKS_CACHE_SECONDS=")


def test_personal_data_settings():
    s = Settings.from_env({"FORGE_APP_ID": UUID, "SECRET_KEY": KEY})
    assert s.personal_data_url == "https://api.atlassian.com/app/report-accounts/"
    assert (s.personal_data_report_days, s.personal_data_retention_days) == (7, 90)
    s = Settings.from_env(
        {
            "FORGE_APP_ID": UUID,
            "SECRET_KEY": KEY,
            "PERSONAL_DATA_URL": "https://privacy.example/app/report-accounts/",
            "PERSONAL_DATA_REPORT_DAYS": "0",
            "PERSONAL_DATA_RETENTION_DAYS": "30",
        }
    )
    assert s.personal_data_url == "https://privacy.example/app/report-accounts/"
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


def test_follow_up_delays_seconds():
    s = Settings.from_env({"FORGE_APP_ID": UUID, "SECRET_KEY": KEY})
    assert s.follow_up_delays_seconds == (3600.0, 86400.0)
    s = Settings.from_env(
        {"FORGE_APP_ID": UUID, "SECRET_KEY": KEY, "FOLLOW_UP_DELAYS_SECONDS": "2, 3600"}
    )
    assert s.follow_up_delays_seconds == (2.0, 3600.0)
    for raw in ("0,10", "10,5", "5,5", "nan", "an hour"):
        with pytest.raises(SettingsError) as info:
            Settings.from_env(
                {"FORGE_APP_ID": UUID, "SECRET_KEY": KEY, "FOLLOW_UP_DELAYS_SECONDS": raw}
            )
        assert info.value.problems[0].startswith("FOLLOW_UP_DELAYS_SECONDS="), raw


def test_lookup_cache_seconds():
    assert Settings.from_env({"FORGE_APP_ID": UUID, "SECRET_KEY": KEY}).lookup_cache_seconds == 300
    env = {"FORGE_APP_ID": UUID, "SECRET_KEY": KEY, "LOOKUP_CACHE_SECONDS": "0"}
    assert Settings.from_env(env).lookup_cache_seconds == 0  # off
    for raw in ("-1", "soon", "nan", "inf"):
        with pytest.raises(SettingsError) as info:
            Settings.from_env({**env, "LOOKUP_CACHE_SECONDS": raw})
        assert info.value.problems[0].startswith("LOOKUP_CACHE_SECONDS=")
