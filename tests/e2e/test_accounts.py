"""Accounts in a real browser: sign up, log out, log in; nobody sees another's conversation."""

from __future__ import annotations

import re
import uuid

import pytest
from playwright.sync_api import expect

from tests.e2e.chat import PASSWORD, new_conversation, sign_up
from tests.e2e.conftest import log_in

pytestmark = pytest.mark.e2e


def test_sign_up_log_out_and_log_in_again(new_context):
    page = new_context().new_page()
    email = f"new-{uuid.uuid4().hex[:8]}@example.com"
    page.goto("/")
    expect(page).to_have_url(re.compile("/accounts/login/"))  # the chat needs an account

    sign_up(page, email)

    expect(page.get_by_role("heading", name="Start a conversation")).to_be_visible()
    expect(page.get_by_text("No conversations yet.")).to_be_visible()
    expect(page.get_by_text(email)).to_be_visible()
    page.get_by_role("button", name="Log out").click()
    expect(page.get_by_role("heading", name="Sign In")).to_be_visible()
    page.goto("/")
    expect(page).to_have_url(re.compile("/accounts/login/"))

    log_in(page, email, PASSWORD)

    expect(page.get_by_role("heading", name="Start a conversation")).to_be_visible()


def test_wrong_password_is_refused_with_a_message(new_context):
    page = new_context().new_page()
    page.goto("/accounts/login/")
    page.get_by_label("Email").fill("demo@example.com")
    page.get_by_label("Password").fill("not-the-password")
    page.get_by_role("button", name="Sign In").click()
    expect(page.get_by_text(re.compile("not correct", re.IGNORECASE))).to_be_visible()
    expect(page).to_have_url(re.compile("/accounts/login/"))


def test_another_users_conversation_is_a_404_page(new_context, page, browser_log):
    browser_log.allow(r"status of 404")
    bob = new_context().new_page()
    sign_up(bob, f"bob-{uuid.uuid4().hex[:8]}@example.com")
    bobs_url = new_conversation(bob)

    response = page.goto(bobs_url)  # the demo user tries Bob's conversation

    assert response is not None and response.status == 404
    expect(page.get_by_role("heading", name="Not found")).to_be_visible()
    expect(page.get_by_role("link", name="Back to your conversations")).to_be_visible()
    response = page.goto(bobs_url + "rename")
    assert response is not None and response.status == 404
