"""Accounts in a real browser: sign up, log out, log in; nobody sees another's conversation."""

from __future__ import annotations

import re
import uuid

import pytest
from playwright.sync_api import expect

from conversations.middleware import SIGNED_OUT
from tests.e2e.chat import (
    PASSWORD,
    composer_box,
    echo,
    new_conversation,
    send,
    sign_up,
    start_conversation,
    wait_until_finished,
)
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
    expect(page.locator(".who", has_text=email)).to_be_visible()
    page.get_by_role("button", name="Log out").click()
    expect(page.get_by_role("heading", name="Sign In")).to_be_visible()
    page.goto("/")
    expect(page).to_have_url(re.compile("/accounts/login/"))

    log_in(page, email, PASSWORD)

    expect(page.get_by_role("heading", name="Start a conversation")).to_be_visible()
    # Said on the page the login leads to, with the email signed in with; then dismissed.
    flash = page.get_by_role("status").filter(has_text="Signed in as")
    expect(flash).to_have_text(re.compile(rf"Signed in as {re.escape(email)}\.\s*Dismiss"))
    flash.get_by_role("button", name=re.compile("Dismiss")).click()
    expect(flash).to_have_count(0)
    page.get_by_role("link", name="New chat").filter(visible=True).first.click()
    expect(page.get_by_text("Signed in as")).to_have_count(0)  # once, not on the next page


def test_signed_out_in_another_tab_the_message_waits_to_be_retried(new_context, stack, browser_log):
    """Not the login page swapped into the chat, and not a lost message: the page says so,
    keeps the message, and sends it once the user signed in again (in another tab, on the
    other process of the production stack)."""
    browser_log.allow("status of 401|Response Status Error Code 401")
    context = new_context(on=stack.first)
    chat = context.new_page()
    email = f"out-{uuid.uuid4().hex[:8]}@example.com"
    sign_up(chat, email)
    new_conversation(chat)
    other = context.new_page()
    other.goto(stack.other.url + "/")
    other.get_by_role("button", name="Log out").click()
    notice = chat.locator("#notice")
    expect(notice).to_contain_text("signed out")  # told at once, before sending anything

    send(chat, echo("kept for later"))

    bubble = chat.locator("#transcript .msg-user", has_text="kept for later")
    expect(bubble.get_by_text("Not sent")).to_be_visible()
    expect(bubble.get_by_role("alert")).to_have_text(SIGNED_OUT)
    expect(chat.get_by_role("heading", name="Sign In")).to_have_count(0)
    expect(composer_box(chat)).to_be_focused()
    sign_in = notice.get_by_role("link", name=re.compile("Sign in"))
    expect(sign_in).to_have_attribute("target", "_blank")  # this page and its message stay
    log_in(other, email, PASSWORD, base=stack.other.url)  # a new session and CSRF token

    bubble.get_by_role("button", name="Retry").click()

    answer = wait_until_finished(chat)
    expect(answer.locator(".msg-body")).to_have_text("kept for later")
    expect(notice).to_be_hidden()
    # Live sync is back: what another tab sends shows here.
    other.goto(chat.url.replace(stack.first.url, stack.other.url))
    send(other, echo("from the other tab"))
    expect(chat.locator("#transcript .msg-user", has_text="from the other tab")).to_be_visible()
    chat.reload()
    expect(chat.locator("#transcript .msg-user", has_text="kept for later")).to_have_count(1)


def test_a_page_from_before_signing_in_again_sends_the_new_csrf_token(new_context, stack):
    """Signing in again (in another tab, after a sign-out or an expired session) gives the
    session a new CSRF token: the forms this page was rendered with still go through, the
    composer's and Log out's, never a 403."""
    context = new_context(on=stack.first)
    chat = context.new_page()
    email = f"csrf-{uuid.uuid4().hex[:8]}@example.com"
    sign_up(chat, email)
    new_conversation(chat)
    rendered_with = csrf_cookie(chat)
    other = context.new_page()
    other.goto(stack.other.url + "/")
    other.get_by_role("button", name="Log out").click()
    expect(chat.locator("#notice")).to_contain_text("signed out")
    log_in(other, email, PASSWORD, base=stack.other.url)
    assert csrf_cookie(chat) != rendered_with  # the page's forms hold the old token

    send(chat, echo("sent with the new token"))

    answer = wait_until_finished(chat)
    expect(answer.locator(".msg-body")).to_have_text("sent with the new token")
    chat.get_by_role("button", name="Log out").click()
    expect(chat.get_by_role("heading", name="Sign In")).to_be_visible()
    chat.goto("/")
    expect(chat).to_have_url(re.compile("/accounts/login/"))  # signed out for real


def csrf_cookie(page) -> str:
    return next(c["value"] for c in page.context.cookies() if c["name"] == "csrftoken")


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
    bobs_url = start_conversation(bob, echo("Bob's own"))
    wait_until_finished(bob)

    response = page.goto(bobs_url)  # the demo user tries Bob's conversation

    assert response is not None and response.status == 404
    expect(page.get_by_role("heading", name="Not found")).to_be_visible()
    expect(page.get_by_role("link", name="Back to your conversations")).to_be_visible()
    response = page.goto(bobs_url + "rename")
    assert response is not None and response.status == 404
