"""The single sign-on flow, run by tests/test_sso.py in a process of its own whose
environment turns SSO on (OIDC_*) against the fake provider that test started."""

from __future__ import annotations

import http.client
import os
from urllib.parse import parse_qsl, urlencode, urlsplit

import pytest
from django.contrib.auth import get_user_model

pytestmark = pytest.mark.django_db

LOGIN = "/accounts/oidc/sso/login/"


def authorize(url: str) -> str:
    """Play the browser at the provider: the user agrees; where it sends us back."""
    parts = urlsplit(url)
    connection = http.client.HTTPConnection(parts.netloc, timeout=5)
    connection.request("GET", f"{parts.path}?{parts.query}")
    response = connection.getresponse()
    assert response.status == 302
    return response.getheader("Location")


def sign_in(client) -> object:
    to_provider = client.post(LOGIN)
    assert to_provider.status_code == 302
    assert to_provider["Location"].startswith(os.environ["OIDC_SERVER_URL"] + "/authorize?")
    back = urlsplit(authorize(to_provider["Location"]))
    assert back.path == "/accounts/oidc/sso/login/callback/"
    return client.get(f"{back.path}?{back.query}")


def test_the_login_page_offers_the_provider(client):
    page = client.get("/accounts/login/").content.decode()
    assert "Acme SSO" in page
    assert LOGIN in page


def test_signing_in_through_the_provider_creates_the_account_and_signs_in(client):
    done = sign_in(client)
    assert done.status_code == 302
    assert done["Location"] == "/"
    user = get_user_model().objects.get(email="carol@example.com")
    assert client.session["_auth_user_id"] == str(user.pk)
    assert user.socialaccount_set.get().uid == "carol-sub-42"
    assert client.get("/").status_code == 200


def test_a_second_sign_in_finds_the_same_account(client):
    sign_in(client)
    client.post("/accounts/logout/")
    assert "_auth_user_id" not in client.session
    sign_in(client)
    assert get_user_model().objects.filter(email="carol@example.com").count() == 1
    assert "_auth_user_id" in client.session


def test_a_forged_state_does_not_sign_in(client):
    to_provider = client.post(LOGIN)
    back = urlsplit(authorize(to_provider["Location"]))
    forged = back.query.replace("state=", "state=x")
    client.get(f"{back.path}?{forged}")
    assert "_auth_user_id" not in client.session


def test_the_providers_id_token_verifies_against_its_keys():
    """The code flow skips the signature (the token came straight from the token endpoint,
    over TLS in production); allauth's verifier checks the fake's RS256 signature and JWKS."""
    import requests
    from allauth.socialaccount.internal import jwtkit

    issuer = os.environ["OIDC_SERVER_URL"]
    query = {
        "client_id": "chat",
        "redirect_uri": "http://testserver/callback",
        "response_type": "code",
        "scope": "openid email",
        "state": "s",
        "nonce": "n-1",
    }
    back = urlsplit(authorize(f"{issuer}/authorize?{urlencode(query)}"))
    code = dict(parse_qsl(back.query))["code"]
    form = {
        "grant_type": "authorization_code",
        "code": code,
        "client_id": "chat",
        "client_secret": os.environ["OIDC_CLIENT_SECRET"],
        "redirect_uri": "http://testserver/callback",
    }
    id_token = requests.post(f"{issuer}/token", data=form, timeout=5).json()["id_token"]
    claims = jwtkit.verify_and_decode(
        credential=id_token,
        keys_url=f"{issuer}/jwks",
        issuer=issuer,
        audience="chat",
        lookup_kid=jwtkit.lookup_kid_jwk,
    )
    assert (claims["sub"], claims["nonce"]) == ("carol-sub-42", "n-1")
    with pytest.raises(Exception):  # noqa: B017 - whatever allauth raises for a forgery
        jwtkit.verify_and_decode(
            credential=id_token[:-4] + ("AAAA" if not id_token.endswith("AAAA") else "BBBB"),
            keys_url=f"{issuer}/jwks",
            issuer=issuer,
            audience="chat",
            lookup_kid=jwtkit.lookup_kid_jwk,
        )
