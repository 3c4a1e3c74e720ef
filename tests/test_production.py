"""The production profile (DJANGO_ENV=production), started as an operator would: a fresh
process with only the environment. Settings are read once at import, so each check runs in
a subprocess rather than under this test run's development settings."""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# What a request through the proxy sees: a page, the hashed static file it names, a redirect.
SERVE = """
import json, logging, re
import django
django.setup()
from django.core.management import call_command
from django.test import Client

call_command("collectstatic", "--noinput", verbosity=0)
proxied = Client(HTTP_HOST="chat.example.com", HTTP_X_FORWARDED_PROTO="https")
page = proxied.get("/accounts/login/")
script = re.search(r'src="(/static/js/chat/sync\\.[0-9a-f]{12}\\.js)"', page.text).group(1)
asset = proxied.get(script)
plain = Client(HTTP_HOST="chat.example.com").get("/accounts/login/")
probe = Client(HTTP_HOST="chat.example.com").get("/healthz")
logging.getLogger("conversations").warning("served", extra={"message_id": "m-1"})
print(json.dumps({
    "result": True,
    "page": page.status_code,
    "headers": dict(page.headers),
    "cookies": {name: dict(morsel) for name, morsel in page.cookies.items()},
    "asset": asset.status_code,
    "asset_cache": asset.headers.get("Cache-Control", ""),
    "plain": plain.status_code,
    "plain_location": plain.headers.get("Location", ""),
    "probe": probe.status_code,
}))
"""


def production_env(tmp_path: Path, **overrides: str | None) -> dict[str, str]:
    env = {
        name: value
        for name, value in os.environ.items()
        if name not in ("DATABASE_URL", "REDIS_URL", "TEST_DATABASE_NAME", "DJANGO_DEBUG")
        and not name.startswith(("EMAIL_", "LOG_", "SECURE_"))
    }
    env.update(
        DJANGO_ENV="production",
        DJANGO_SETTINGS_MODULE="chatsite.settings",
        SECRET_KEY=secrets.token_urlsafe(50),
        ALLOWED_HOSTS="chat.example.com",
        SQLITE_PATH=str(tmp_path / "db.sqlite3"),
        STATIC_ROOT=str(tmp_path / "static"),
    )
    env.update(overrides)
    return {name: value for name, value in env.items() if value is not None}


def run(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )


def test_deploy_check_is_clean(tmp_path):
    result = run(
        production_env(tmp_path), "manage.py", "check", "--deploy", "--fail-level", "WARNING"
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout


@pytest.mark.parametrize("missing", ["SECRET_KEY", "ALLOWED_HOSTS"])
def test_start_up_without_a_required_setting_fails_naming_it(tmp_path, missing):
    result = run(production_env(tmp_path, **{missing: None}), "manage.py", "check")
    assert result.returncode != 0
    last_line = result.stderr.strip().splitlines()[-1]
    assert last_line == (
        "django.core.exceptions.ImproperlyConfigured: "
        f"{missing} must be set when DJANGO_ENV=production"
    )


def test_served_pages_are_secure_and_static_files_are_hashed_and_cached(tmp_path):
    result = run(production_env(tmp_path), "-c", SERVE)
    assert result.returncode == 0, result.stderr
    lines = [json.loads(line) for line in result.stdout.splitlines() if line.strip()]
    served = next(line for line in lines if line.get("result"))

    assert served["page"] == 200
    headers = served["headers"]
    assert headers["Strict-Transport-Security"].startswith("max-age=31536000")
    assert "script-src 'self' 'nonce-" in headers["Content-Security-Policy"]
    assert "'unsafe-inline'" not in headers["Content-Security-Policy"]
    assert served["cookies"]["csrftoken"]["secure"] is True
    assert served["asset"] == 200 and "immutable" in served["asset_cache"]
    assert served["plain"] == 301 and served["plain_location"].startswith("https://")
    assert served["probe"] == 200  # the load balancer's health check is not redirected
    # Logs are one JSON object per line on stdout, with the ids as fields.
    log = next(line for line in lines if line.get("msg") == "served")
    assert log["level"] == "WARNING" and log["message_id"] == "m-1"
