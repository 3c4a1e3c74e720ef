"""Single sign-on (OpenID Connect through allauth): off unless configured; configured, a
login through a local fake provider (tests/oidc_provider.py) ends signed in."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from django.conf import settings

from tests.oidc_provider import FakeOpenIDProvider

ROOT = Path(__file__).resolve().parent.parent


def _environment(**extra: str) -> dict[str, str]:
    """Ours, on the embedded stack: a process of its own must not share our test database."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OIDC_", "DATABASE_"))}
    for name in ("REDIS_URL", "TEST_DATABASE_NAME"):
        env.pop(name, None)
    return {**env, "DJANGO_SETTINGS_MODULE": "chatsite.settings", **extra}


def test_without_configuration_socialaccount_is_not_installed(client, db):
    assert "allauth.socialaccount" not in settings.INSTALLED_APPS
    assert client.get("/accounts/oidc/sso/login/").status_code == 404
    assert "Sign in with" not in client.get("/accounts/login/").content.decode()


def test_a_client_id_without_the_rest_stops_start_up():
    result = subprocess.run(
        [sys.executable, "-c", "import django; django.setup()"],
        env=_environment(OIDC_CLIENT_ID="chat"),
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert result.returncode != 0
    assert "OIDC_CLIENT_SECRET and OIDC_SERVER_URL must be" in result.stderr


def test_a_login_through_the_provider_ends_signed_in():
    user = {
        "sub": "carol-sub-42",
        "email": "carol@example.com",
        "email_verified": True,
        "name": "Carol",
        "preferred_username": "carol",
    }
    with FakeOpenIDProvider(client_id="chat", client_secret="s3cret", user=user) as provider:
        env = _environment(
            OIDC_CLIENT_ID="chat",
            OIDC_CLIENT_SECRET="s3cret",
            OIDC_SERVER_URL=provider.url,
            OIDC_NAME="Acme SSO",
        )
        result = subprocess.run(
            [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", "tests/sso_flow.py"],
            env=env,
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=300,
        )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert "5 passed" in result.stdout
    assert "POST /token" in provider.requests
    assert "GET /userinfo" in provider.requests
    assert "GET /jwks" in provider.requests
