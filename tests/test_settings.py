"""Settings.from_env: defaults, parsing, and one error naming every problem; the checks a
directly built Settings makes too (app id, no http:// without ALLOW_HTTP)."""

from __future__ import annotations

import pytest
from cryptography.fernet import Fernet

from access_desk.settings import APP_ARI_PREFIX, Settings, SettingsError

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
    allowlist = "https://api.atlassian.com/, http://127.0.0.1:8001/ex/"
    env = {"FORGE_APP_ID": UUID, "SECRET_KEY": KEY, "API_BASE_URL_ALLOWLIST": allowlist}
    env[variable] = url if variable != "API_BASE_URL_ALLOWLIST" else allowlist
    with pytest.raises(SettingsError) as info:
        Settings.from_env(env)
    problems = [p for p in info.value.problems if p.startswith(f"{variable} has an http:// URL")]
    assert len(problems) == 1 and "ALLOW_HTTP=1" in problems[0]
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
        "GRAPHQL_URL",  # not on an allowlisted host: the defaults are api.atlassian.com's
        "PERSONAL_DATA_URL",
    ]
    ok = Settings(
        app_id=APP_ARI_PREFIX + UUID,
        secret_key=KEY,
        api_base_url_allowlist=("http://127.0.0.1:1/",),
        graphql_url="http://127.0.0.1:1/graphql",
        personal_data_url="http://127.0.0.1:1/app/report-accounts/",
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
            "API_BASE_URL_ALLOWLIST": "https://api.atlassian.com/, https://privacy.example/",
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


def test_settings_that_start_silently_wrong_are_refused_in_one_message():
    """Issue 16, item 5: each of these was accepted and went wrong only at run time (or never)."""
    env = {
        "FORGE_APP_ID": UUID,
        "SECRET_KEY": KEY,
        "GRAPHQL_URL": "https://graphql.evil.example/graphql",
        "PERSONAL_DATA_URL": "https://api.atlassian.com.evil.example/app/report-accounts/",
        "FIT_LEEWAY_SECONDS": "86400",
        "CALL_DEADLINE_SECONDS": "nan",
        "UPSTREAM_TIMEOUT_SECONDS": "inf",
        "PUBLIC_BASE_URL": "http://desk.example.com",
        "MAX_CALLS_PER_INSTALLATION": "50",
        "JOB_LEASE_SECONDS": "2",
    }
    with pytest.raises(SettingsError) as info:
        Settings.from_env(env)
    problems = info.value.problems
    named = [p.split("=")[0].split(" ")[0] for p in problems]
    assert sorted(named) == sorted(
        [
            "GRAPHQL_URL",
            "PERSONAL_DATA_URL",
            "FIT_LEEWAY_SECONDS",
            "CALL_DEADLINE_SECONDS",
            "UPSTREAM_TIMEOUT_SECONDS",
            "PUBLIC_BASE_URL",
            "MAX_CALLS_PER_INSTALLATION",
            "JOB_LEASE_SECONDS",
        ]
    )
    text = str(info.value)
    assert "not on an API_BASE_URL_ALLOWLIST host" in text and "at most 60" in text
    assert "twice JOB_STEP_SECONDS=15" in text and "GUNICORN_THREADS=8" in text
    assert "finite" in text and "http:// URL ('http://desk.example.com')" in text


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("call_deadline_seconds", float("nan")),
        ("job_step_seconds", float("inf")),
        ("fit_leeway_seconds", 61.0),
        ("job_lease_seconds", 30.0),
        ("max_calls_per_installation", 8),
        ("public_base_url", "http://desk.example.com"),
    ],
)
def test_settings_built_directly_refuse_the_same(field, value):
    with pytest.raises(SettingsError):
        Settings(app_id=APP_ARI_PREFIX + UUID, secret_key=KEY, **{field: value})


def test_busy_limits_must_fit_the_threads():
    env = {"FORGE_APP_ID": UUID, "SECRET_KEY": KEY, "GUNICORN_THREADS": "4"}
    assert Settings.from_env(env).threads == 4
    assert Settings.from_env({**env, "MAX_CALLS_PER_INSTALLATION": "3"}).threads == 4
    for extra in (
        {"MAX_CALLS_PER_INSTALLATION": "4"},  # every thread
        {"MAX_CALLS_PER_USER": "3"},  # more than the installation's derived 2
        {"MAX_CALLS_PER_INSTALLATION": "2", "MAX_CALLS_PER_USER": "3"},
    ):
        with pytest.raises(SettingsError) as info:
            Settings.from_env({**env, **extra})
        assert len(info.value.problems) == 1 and "MAX_CALLS_PER_" in info.value.problems[0]
    one = Settings.from_env({**env, "GUNICORN_THREADS": "1", "MAX_CALLS_PER_INSTALLATION": "1"})
    assert one.max_calls_per_installation == 1


def test_a_lease_just_over_twice_the_step_and_the_longest_leeway_start():
    s = Settings.from_env(
        {
            "FORGE_APP_ID": UUID,
            "SECRET_KEY": KEY,
            "JOB_STEP_SECONDS": "10",
            "JOB_LEASE_SECONDS": "20.5",
            "FIT_LEEWAY_SECONDS": "60",
            "PUBLIC_BASE_URL": "http://127.0.0.1:9000",
            "ALLOW_HTTP": "1",
        }
    )
    assert (s.job_lease_seconds, s.fit_leeway_seconds) == (20.5, 60.0)
    assert s.public_base_url == "http://127.0.0.1:9000"
