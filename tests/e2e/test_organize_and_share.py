"""Pin, archive, rate and share a conversation in the browser."""

from __future__ import annotations

import re
import uuid

import pytest
from playwright.sync_api import expect

from tests.e2e.chat import echo, settled, start_conversation, wait_until_finished

pytestmark = pytest.mark.e2e


def sidebar_link(tab, title: str):
    return tab.locator("#conversation-list a").filter(has_text=title)


def test_pin_heads_the_list_and_archive_moves_it_to_the_archived_view(tab):
    words = f"organize {uuid.uuid4().hex[:8]}"
    start_conversation(tab, echo(words))
    wait_until_finished(tab)
    settled(tab)
    title = f"echo: {words}"

    pin = tab.get_by_role("button", name="Pin to the top")
    pin.click()
    expect(pin).to_have_attribute("aria-pressed", "true")
    expect(tab.locator("#conversation-list li").first).to_contain_text(title)
    expect(sidebar_link(tab, title).locator(".conv-pinned")).to_be_visible()

    archive = tab.get_by_role("button", name="Archive")
    archive.click()
    expect(tab.locator("#chat-title")).to_contain_text("Archived")
    expect(sidebar_link(tab, title)).to_have_count(0)  # out of the list, by the live socket

    tab.get_by_role("link", name="Archived").click()
    row = tab.locator(".archived-list li").filter(has_text=title)
    expect(row).to_be_visible()
    row.get_by_role("button", name=f"Unarchive {title}").click()
    expect(row).to_have_count(0)
    expect(sidebar_link(tab, title)).to_have_count(1)


def test_a_thumb_down_with_a_comment_is_kept_after_a_reload(tab):
    start_conversation(tab, echo("rate me"))
    answer = wait_until_finished(tab)
    settled(tab)

    answer.get_by_role("button", name="Bad answer").click()
    comment = answer.get_by_role("textbox", name="Why? (optional)")
    expect(comment).to_be_visible()
    comment.fill("Too short.")
    comment.press("Enter")
    expect(answer.locator(".feedback-status")).to_have_text("Thanks: your feedback is saved.")

    tab.reload()
    answer = tab.locator("#transcript article.msg-assistant").last
    expect(answer.get_by_role("button", name="Bad answer")).to_have_attribute(
        "aria-pressed", "true"
    )
    expect(answer.get_by_role("textbox", name="Why? (optional)")).to_have_value("Too short.")


def test_a_shared_link_is_read_signed_out_and_a_revoked_one_is_gone(
    tab, new_context, stack, browser_log
):
    browser_log.allow(r"status of 404")
    start_conversation(tab, echo("shared **words**"))
    wait_until_finished(tab)
    settled(tab)

    tab.get_by_role("button", name="Share").click()
    url = tab.get_by_role("textbox", name=re.compile("Anyone with this link")).input_value()
    assert re.search(r"/s/[A-Za-z0-9_-]{32}$", url)

    reader = new_context(on=stack.other).new_page()  # signed out, on the other process
    reader.goto(url)
    expect(reader.locator(".msg-assistant .msg-body strong")).to_have_text("words")
    expect(reader.locator("#composer")).to_have_count(0)
    expect(reader.get_by_role("button", name="Regenerate")).to_have_count(0)

    tab.get_by_role("link", name="Your links").click()
    row_id = (
        tab.locator(".share-list li")
        .filter(has=tab.locator(f'input[value="{url}"]'))
        .get_attribute("id")
    )
    row = tab.locator(f"#{row_id}")
    row.get_by_role("button", name=re.compile("^Revoke")).click()
    expect(row).to_contain_text("Revoked")
    response = reader.goto(url)
    assert response is not None and response.status == 404
