"""The whole flow with the keyboard alone: log in, start a chat, send, stop, retry, rename."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import Locator, Page, expect

from tests.e2e.chat import (
    composer_box,
    last_answer,
    long_echo,
    settled,
    wait_for_text,
    wait_until_finished,
)
from tests.e2e.conftest import DEMO_EMAIL, DEMO_PASSWORD

pytestmark = pytest.mark.e2e


def tab_to(page: Page, target: Locator, *, backwards: bool = False, limit: int = 120) -> None:
    """Press Tab (or Shift+Tab) until `target` has the focus, as a keyboard user would (past
    a sidebar of 50 conversations, when the way round goes through it)."""
    key = "Shift+Tab" if backwards else "Tab"
    for _ in range(limit):
        if target.evaluate("el => el === document.activeElement"):
            return
        page.keyboard.press(key)
    raise AssertionError(f"{target} cannot be reached with {key}")


def test_everything_works_from_the_keyboard(new_context):
    page = new_context().new_page()
    page.goto("/accounts/login/")
    tab_to(page, page.get_by_label("Email"))
    page.keyboard.type(DEMO_EMAIL)
    tab_to(page, page.get_by_label("Password"))
    page.keyboard.type(DEMO_PASSWORD)
    page.keyboard.press("Enter")
    expect(page.get_by_role("heading", name="Start a conversation")).to_be_visible()

    tab_to(page, page.get_by_role("link", name="New chat").first)
    page.keyboard.press("Enter")
    box = composer_box(page)
    expect(box).to_be_focused()  # ready to type at once

    page.keyboard.type("echo: Hello from the keyboard")
    page.keyboard.press("Enter")
    expect(last_answer(page).locator(".msg-body")).to_have_text("Hello from the keyboard")
    expect(box).to_be_focused()
    wait_until_finished(page)

    prompt, _ = long_echo(150)
    page.keyboard.insert_text(prompt)
    page.keyboard.press("Enter")
    wait_for_text(last_answer(page), 30)
    page.keyboard.press("Escape")  # stops the streaming answer
    expect(last_answer(page).get_by_text("Stopped")).to_be_visible()
    expect(box).to_be_focused()

    retry = last_answer(page).get_by_role("button", name="Retry")
    tab_to(page, retry, backwards=True)
    page.keyboard.press("Enter")
    wait_until_finished(page)

    rename = page.get_by_role("link", name="Rename")
    tab_to(page, rename)
    settled(page)
    page.keyboard.press("Enter")
    title = page.get_by_role("textbox", name="Conversation title")
    expect(title).to_be_focused()
    page.keyboard.press("Escape")  # changed my mind: back to the title
    expect(page.get_by_role("link", name="Rename")).to_be_focused()
    settled(page)
    page.keyboard.press("Enter")
    expect(title).to_be_focused()
    page.keyboard.press("ControlOrMeta+a")
    page.keyboard.type("Typed, not clicked")
    settled(page)
    page.keyboard.press("Enter")
    expect(page.get_by_role("heading", name="Typed, not clicked")).to_be_visible()
    expect(page.get_by_role("link", name="Rename")).to_be_focused()
    expect(page.locator("#sidebar")).to_contain_text("Typed, not clicked")

    page.keyboard.press("Shift+Tab")  # from Rename, back up to the skip link works too
    tab_to(page, page.get_by_role("link", name="Skip to content"), backwards=True)
    page.keyboard.press("Enter")
    expect(page).to_have_url(re.compile("#main$"))
