"""A conversation's system prompt and the line under each answer, in the browser."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from tests.e2e.chat import echo, new_conversation, send, settled, wait_until_finished

pytestmark = pytest.mark.e2e


def test_the_system_prompt_is_set_from_the_keyboard_and_kept(tab):
    new_conversation(tab)
    send(tab, echo("first"))
    wait_until_finished(tab)
    settled(tab)
    summary = tab.locator("#system-prompt summary")
    expect(summary).to_have_text("System prompt")
    summary.focus()
    tab.keyboard.press("Enter")  # a <details>: opens from the keyboard
    box = tab.get_by_role("textbox", name="System prompt")
    expect(box).to_be_visible()
    box.fill("Answer in French.")
    tab.get_by_role("button", name="Save", exact=True).click()
    expect(tab.locator("#system-prompt [role=status]")).to_contain_text("Saved.")
    expect(summary).to_contain_text("· on")
    expect(box).to_have_value("Answer in French.")

    tab.reload()
    expect(tab.locator("#system-prompt")).not_to_have_attribute("open", "")  # folded again
    expect(tab.locator("#system-prompt summary")).to_contain_text("· on")
    expect(tab.locator("#system-prompt textarea")).to_have_value("Answer in French.")


def test_an_overlong_system_prompt_is_refused_in_place(tab, browser_log):
    browser_log.allow(r"status of 422")
    new_conversation(tab)
    send(tab, echo("first"))
    wait_until_finished(tab)
    settled(tab)
    tab.locator("#system-prompt summary").click()
    box = tab.get_by_role("textbox", name="System prompt")
    # The box caps typing at the limit; a page that sends more (a stale one) gets the error.
    box.evaluate("(el, text) => { el.removeAttribute('maxlength'); el.value = text; }", "x" * 4001)
    tab.get_by_role("button", name="Save", exact=True).click()
    expect(tab.locator("#system-prompt [role=alert]")).to_have_text(
        re.compile("at most 4000 characters")
    )
    tab.reload()
    expect(tab.locator("#system-prompt textarea")).to_have_value("")


def test_a_finished_answer_shows_its_model_and_speed(tab):
    new_conversation(tab)
    send(tab, echo("one two three four five six"))
    answer = wait_until_finished(tab)
    usage = answer.locator(".msg-usage")
    expect(usage).to_contain_text("demo")
    expect(usage).to_contain_text(re.compile(r"\d+ in\s+\d+ out\s+first token \d+\.\d s"))
    expect(usage).to_contain_text(re.compile(r"\d+ tokens/s"))
