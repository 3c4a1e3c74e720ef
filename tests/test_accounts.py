"""Accounts through allauth: sign up, log in and out with an email, on our own pages."""

from __future__ import annotations

from io import StringIO

import pytest
from allauth.account.models import EmailAddress
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.test import Client

from tests.conftest import PASSWORD

User = get_user_model()


def sign_up(client: Client, email: str, password: str = PASSWORD, repeat: str | None = None):
    return client.post(
        "/accounts/signup/",
        {"email": email, "password1": password, "password2": repeat or password},
    )


def log_in(client: Client, email: str, password: str = PASSWORD):
    return client.post("/accounts/login/", {"login": email, "password": password})


def is_logged_in(client: Client) -> bool:
    return client.get("/").status_code == 200


def test_sign_up_with_email_and_password_logs_you_in(client, db):
    response = sign_up(client, "carol@example.com")

    assert response.status_code == 302 and response["Location"] == "/"
    user = User.objects.get(email="carol@example.com")
    assert user.check_password(PASSWORD)
    assert "carol@example.com" in client.get("/").content.decode()


def test_two_people_can_sign_up(db):
    # auth.User's username is unique: allauth must fill it in, not leave it blank for everyone.
    for email in ("dave@example.com", "erin@example.com"):
        assert sign_up(Client(), email).status_code == 302
    assert User.objects.filter(email__in=["dave@example.com", "erin@example.com"]).count() == 2


def test_sign_up_with_a_taken_email_is_refused(client, alice):
    response = sign_up(client, "alice@example.com")

    assert response.status_code == 200
    assert "already registered" in response.content.decode()
    assert User.objects.filter(email="alice@example.com").count() == 1


def test_sign_up_with_mismatched_passwords_is_refused(client, db):
    response = sign_up(client, "frank@example.com", repeat="something-else-entirely-42")

    assert response.status_code == 200
    assert "same password" in response.content.decode()
    assert not User.objects.filter(email="frank@example.com").exists()


def test_log_in_with_email_and_password(client, alice):
    response = log_in(client, "alice@example.com")

    assert response.status_code == 302 and response["Location"] == "/"
    assert is_logged_in(client)


def test_wrong_password_is_refused_with_a_message(client, alice):
    response = log_in(client, "alice@example.com", "not-the-password")

    assert response.status_code == 200
    assert "not correct" in response.content.decode()
    assert not is_logged_in(client)


def test_log_out_ends_the_session(alice_client):
    confirm = alice_client.get("/accounts/logout/")  # a GET only asks (no logout by link)
    assert confirm.status_code == 200 and is_logged_in(alice_client)

    response = alice_client.post("/accounts/logout/")

    assert response.status_code == 302 and response["Location"] == "/accounts/login/"
    assert not is_logged_in(alice_client)


def test_the_login_page_after_signing_out_says_signed_out_not_signed_in(client, alice):
    log_in(client, "alice@example.com")
    assert is_logged_in(client)  # the page the login leads to showed "Signed in as"
    client.post("/accounts/logout/")

    page = client.get("/accounts/login/").content.decode()

    assert "signed out" in page
    assert "signed in as" not in page.lower()


@pytest.mark.parametrize(
    "path", ["/accounts/login/", "/accounts/signup/", "/accounts/password/reset/"]
)
def test_account_pages_use_our_look(client, db, path):
    response = client.get(path)

    body = response.content.decode()
    assert response.status_code == 200
    assert '<p class="brand">StreamChat</p>' in body
    assert "· StreamChat</title>" in body
    assert 'href="/static/css/app.css"' in body
    assert "Content-Security-Policy" in response.headers


def test_logout_page_uses_our_look(alice_client):
    body = alice_client.get("/accounts/logout/").content.decode()
    assert '<p class="brand">StreamChat</p>' in body and 'href="/static/css/app.css"' in body


def test_ensure_demo_user_creates_a_working_login_and_is_idempotent(client, db):
    out = StringIO()
    call_command("ensure_demo_user", stdout=out)
    call_command("ensure_demo_user", stdout=out)

    assert (
        out.getvalue().count("Demo login: email demo@example.com  password demo-password-123") == 2
    )
    assert User.objects.filter(email="demo@example.com").count() == 1
    assert EmailAddress.objects.filter(email="demo@example.com", verified=True).count() == 1
    response = log_in(client, "demo@example.com", "demo-password-123")
    assert response.status_code == 302
    assert "demo@example.com" in client.get("/").content.decode()


def test_the_page_after_logging_in_says_signed_in_as_the_email_once(client, alice):
    response = log_in(client, "alice@example.com")
    assert response["Location"] == "/"

    landing = client.get("/").content.decode()

    assert landing.count("Signed in as alice@example.com.") == 2  # the text, Dismiss's label
    assert 'role="status"' in landing and "Successfully" not in landing
    assert "Signed in as" not in client.get("/").content.decode()  # shown once
