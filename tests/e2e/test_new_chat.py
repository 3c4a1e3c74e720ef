"""A new chat in a real browser, on both stacks: a composer that stores nothing until its
first send, which lands on the new conversation with its answer streaming; and offline, a
clear notice, "Not sent" with Retry, and no console error."""

from __future__ import annotations

import re
import uuid

import pytest
from playwright.sync_api import expect

from tests.e2e.chat import (
    CONVERSATION_URL,
    NEW_CHAT_URL,
    composer_box,
    echo,
    last_answer,
    long_echo,
    send,
    sign_up,
    wait_for_text,
    wait_until_finished,
)

pytestmark = pytest.mark.e2e


def listed(page):
    return page.locator("#conversation-list a[id^='conv-']")


def test_a_new_chat_is_stored_by_its_first_send_only(new_context, stack):
    page = new_context(on=stack.first).new_page()
    sign_up(page, f"new-chat-{uuid.uuid4().hex[:8]}@example.com")
    expect(page.get_by_role("heading", name="Start a conversation")).to_be_visible()
    expect(composer_box(page)).to_be_focused()  # the landing page is a new chat

    for _ in range(2):  # "+ New chat" twice: a composer each time, nothing stored
        page.get_by_role("link", name="New chat").click()
        page.wait_for_url(NEW_CHAT_URL)
        expect(page).to_have_title("New chat · StreamChat")
        expect(page.get_by_text("No conversations yet.")).to_be_visible()
    page.reload()
    expect(page.get_by_text("No conversations yet.")).to_be_visible()

    prompt, full = long_echo(60)
    send(page, prompt)

    page.wait_for_url(CONVERSATION_URL)  # landed on the conversation the send created
    answer = last_answer(page)
    seen = wait_for_text(answer, 20)  # streaming there
    assert full.startswith(seen)
    expect(page.locator("#transcript .msg-user")).to_have_count(1)
    expect(page.locator("#transcript .msg-user .msg-body")).to_have_text(prompt)
    expect(listed(page)).to_have_count(1)
    expect(page.locator("#sidebar [aria-current=page]")).to_contain_text("echo: word0")
    expect(page).to_have_title(re.compile(r"^echo: word0 .* · StreamChat$"))
    expect(wait_until_finished(page).locator(".msg-body")).to_have_text(full)

    send(page, echo("and a second message"))  # the next send goes to this conversation
    expect(wait_until_finished(page).locator(".msg-body")).to_have_text("and a second message")
    url = page.url
    page.reload()
    assert page.url == url
    expect(page.locator("#transcript .msg-user")).to_have_count(2)
    expect(listed(page)).to_have_count(1)


def test_offline_a_first_send_waits_for_retry_and_is_stored_once(new_context, stack):
    """Nothing is tried while offline, so nothing is logged: the console check passes with
    no allowance."""
    page = new_context(on=stack.first).new_page()
    sign_up(page, f"offline-{uuid.uuid4().hex[:8]}@example.com")
    notice = page.locator("#notice")

    page.context.set_offline(True)
    expect(notice).to_contain_text("You're offline")
    send(page, echo("Sent while offline"))

    bubble = page.locator("#transcript .msg-user", has_text="Sent while offline")
    expect(bubble.get_by_text("Not sent")).to_be_visible()
    expect(bubble.get_by_role("alert")).to_have_text("You're offline. Retry once you're back.")
    bubble.get_by_role("button", name="Retry").click()  # still offline: still not sent
    expect(bubble.get_by_text("Not sent")).to_be_visible()
    expect(page).to_have_url(re.compile(r"/$"))  # still the new chat: nothing stored
    expect(page.get_by_text("No conversations yet.")).to_be_visible()

    page.context.set_offline(False)
    expect(notice).to_be_hidden()
    bubble.get_by_role("button", name="Retry").click()

    page.wait_for_url(CONVERSATION_URL)
    expect(wait_until_finished(page).locator(".msg-body")).to_have_text("Sent while offline")
    expect(page.get_by_text("Not sent")).to_have_count(0)
    page.reload()
    expect(page.locator("#transcript .msg-user")).to_have_count(1)
    expect(listed(page)).to_have_count(1)
