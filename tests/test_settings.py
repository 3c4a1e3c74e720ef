"""Settings from the environment, read as a fresh process reads them: any DATABASE_URL that
Django supports, and switches that mean what they say or stop start-up."""

from __future__ import annotations

import json
import sqlite3

import pytest

from tests.test_production import production_env, run

SHOW = """
import json
from django.conf import settings
mailer = settings.MAILERS["default"].get("OPTIONS", {})
print(json.dumps({
    "database": settings.DATABASES["default"],
    "debug": settings.DEBUG,
    "ssl_redirect": getattr(settings, "SECURE_SSL_REDIRECT", None),
    "use_tls": mailer.get("use_tls"),
    "demo_echo": settings.CHAT["DEMO_ECHO"],
    "formatter": settings.LOGGING["handlers"]["console"]["formatter"],
    "provider": settings.CHAT["PROVIDER"],
    "anthropic": [settings.CHAT[name] for name in
                  ("ANTHROPIC_API_KEY", "ANTHROPIC_BASE_URL", "ANTHROPIC_MAX_TOKENS")],
}, default=str))
"""


def settings_with(tmp_path, **variables: str | None) -> dict:
    env = production_env(tmp_path, **{"DJANGO_ENV": None, **variables})
    result = run(env, "-c", SHOW)  # settings only: no database driver is loaded
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.splitlines()[-1])


@pytest.mark.parametrize(
    ("url", "engine"),
    [
        ("postgres://u:p@db.example.com:5432/chat", "django.db.backends.postgresql"),
        ("postgresql://u@db.example.com/chat", "django.db.backends.postgresql"),
        ("postgis://u@db.example.com/chat", "django.contrib.gis.db.backends.postgis"),
        ("mysql://u:p@db.example.com:3306/chat", "django.db.backends.mysql"),
        ("oracle://u:p@db.example.com:1521/chat", "django.db.backends.oracle"),
        ("sqlite:////var/lib/chat/db.sqlite3", "django.db.backends.sqlite3"),
    ],
)
def test_every_database_url_gets_options_its_backend_accepts(tmp_path, url, engine):
    database = settings_with(tmp_path, DATABASE_URL=url)["database"]

    assert database["ENGINE"] == engine
    options = database.get("OPTIONS", {})
    assert ("pool" in options) == engine.endswith(("postgresql", "postgis"))
    assert ("init_command" in options) == engine.endswith("sqlite3")


def test_sqlite_through_a_url_runs_and_gets_the_defaults_wal(tmp_path):
    path = tmp_path / "through-url.sqlite3"
    env = production_env(tmp_path, DJANGO_ENV=None, DATABASE_URL=f"sqlite:///{path}")

    result = run(env, "manage.py", "migrate", "--noinput")

    assert result.returncode == 0, result.stderr  # was: Connection() got ... 'pool'
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert db.execute("SELECT count(*) FROM conversations_message").fetchone()[0] == 0
    database = settings_with(tmp_path, DATABASE_URL=f"sqlite:///{path}")["database"]
    assert database["OPTIONS"]["timeout"] == 20
    assert database["OPTIONS"]["transaction_mode"] == "IMMEDIATE"


def test_the_pool_can_be_turned_off(tmp_path):
    database = settings_with(
        tmp_path, DATABASE_URL="postgres://u@db.example.com/chat", DATABASE_POOL="false"
    )["database"]
    assert "pool" not in database.get("OPTIONS", {})


SWITCHES = ["DJANGO_DEBUG", "SECURE_SSL_REDIRECT", "EMAIL_USE_TLS", "DEMO_ECHO", "LOG_JSON",
            "DATABASE_POOL"]  # fmt: skip


SPELLINGS = [("true", True), ("YES", True), ("1", True), ("False", False), ("no", False),
             ("0", False), (" On ", True), ("off", False)]  # fmt: skip


@pytest.mark.parametrize(("raw", "on"), SPELLINGS)
def test_switches_read_every_spelling_of_on_and_off(tmp_path, raw, on):
    shown = settings_with(
        tmp_path,
        **dict.fromkeys(SWITCHES, raw),
        DJANGO_ENV="production",  # SECURE_SSL_REDIRECT exists only there
        EMAIL_BACKEND="django.core.mail.backends.smtp.EmailBackend",
        DATABASE_URL="postgres://u@db.example.com/chat",
    )

    assert shown["debug"] is on
    assert shown["ssl_redirect"] is on
    assert shown["use_tls"] is on
    assert shown["demo_echo"] is on
    assert shown["formatter"] == ("json" if on else "plain")
    assert ("pool" in shown["database"].get("OPTIONS", {})) is on


@pytest.mark.parametrize("variable", SWITCHES)
def test_a_switch_that_is_neither_on_nor_off_stops_start_up(tmp_path, variable):
    env = production_env(
        tmp_path,
        **{variable: "enabled", "EMAIL_BACKEND": "django.core.mail.backends.smtp.EmailBackend"},
        DATABASE_URL="postgres://u@db.example.com/chat",
    )

    result = run(env, "manage.py", "check")

    assert result.returncode != 0
    assert result.stderr.strip().splitlines()[-1] == (
        "django.core.exceptions.ImproperlyConfigured: "
        f"{variable} must be one of 1/0, true/false, yes/no, on/off; got 'enabled'"
    )


NO_PROVIDER = dict.fromkeys(
    ["CHAT_PROVIDER", "OPENAI_API_KEY", "ANTHROPIC_API_KEY", "ANTHROPIC_BASE_URL",
     "ANTHROPIC_MAX_TOKENS"]
)  # fmt: skip


@pytest.mark.parametrize(
    ("variables", "provider"),
    [
        ({}, "demo"),
        ({"OPENAI_API_KEY": "sk-o"}, "openai"),
        ({"ANTHROPIC_API_KEY": "sk-a"}, "anthropic"),
        ({"OPENAI_API_KEY": "sk-o", "ANTHROPIC_API_KEY": "sk-a"}, "openai"),
        ({"OPENAI_API_KEY": "sk-o", "CHAT_PROVIDER": "anthropic"}, "anthropic"),
        ({"ANTHROPIC_API_KEY": "sk-a", "CHAT_PROVIDER": "demo"}, "demo"),
    ],
)
def test_the_provider_is_the_one_named_or_the_one_with_a_key(tmp_path, variables, provider):
    assert settings_with(tmp_path, **{**NO_PROVIDER, **variables})["provider"] == provider


def test_anthropic_settings_come_from_the_environment(tmp_path):
    assert settings_with(tmp_path, **NO_PROVIDER)["anthropic"] == ["", "", 4096]
    shown = settings_with(
        tmp_path,
        **{
            **NO_PROVIDER,
            "ANTHROPIC_API_KEY": "sk-a",
            "ANTHROPIC_BASE_URL": "http://proxy.internal:4000",
            "ANTHROPIC_MAX_TOKENS": "16000",
        },
    )
    assert shown["anthropic"] == ["sk-a", "http://proxy.internal:4000", 16000]


def test_a_max_tokens_that_is_not_a_number_stops_start_up(tmp_path):
    env = production_env(tmp_path, DJANGO_ENV=None, ANTHROPIC_MAX_TOKENS="lots")

    result = run(env, "-c", SHOW)

    assert result.returncode != 0
    assert "ANTHROPIC_MAX_TOKENS must be a number, got 'lots'" in result.stderr
