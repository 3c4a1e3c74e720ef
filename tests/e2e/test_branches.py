"""Edit and branch in a real browser, on both stacks: versions, switching, other tabs."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import Page, expect

from tests.e2e.chat import (
    answers,
    composer_box,
    echo,
    last_answer,
    long_echo,
    new_conversation,
    send,
    settled,
    start_conversation,
    wait_for_text,
    wait_until_finished,
)

pytestmark = pytest.mark.e2e


def questions(page: Page):
    return page.locator("#transcript article.msg-user")


def bodies(page: Page) -> list[str]:
    return page.locator("#transcript article.msg .msg-body").all_inner_texts()


def open_edit(page: Page, index: int):
    settled(page)
    questions(page).nth(index).get_by_role("link", name="Edit").click()
    box = page.get_by_role("textbox", name="Edit your message")
    expect(box).to_be_focused()
    return box


def test_edit_a_message_branches_and_the_original_is_one_click_away(tab):
    new_conversation(tab)
    send(tab, echo("about cats"))
    wait_until_finished(tab)
    send(tab, echo("more cats"))
    wait_until_finished(tab)

    box = open_edit(tab, 0)
    expect(box).to_have_value(echo("about cats"))
    box.fill(echo("about dogs"))
    box.press("Enter")

    final = wait_until_finished(tab)
    expect(final.locator(".msg-body")).to_have_text("about dogs")
    assert bodies(tab) == [echo("about dogs"), "about dogs"]  # the later turn is on the old branch
    edited = questions(tab).first
    expect(edited.locator(".version-count")).to_have_text("2 / 2")

    edited.get_by_role("button", name="Previous version").click()
    expect(questions(tab)).to_have_count(2)
    assert bodies(tab) == [echo("about cats"), "about cats", echo("more cats"), "more cats"]
    expect(questions(tab).first.locator(".version-count")).to_have_text("1 / 2")
    expect(questions(tab).first.get_by_role("button", name="Next version")).to_be_focused()

    tab.reload()  # remembered
    expect(questions(tab)).to_have_count(2)
    assert bodies(tab)[0] == echo("about cats")
    send(tab, echo("and kittens"))  # a send continues the branch shown
    wait_until_finished(tab)
    expect(answers(tab)).to_have_count(3)


def test_escape_cancels_an_edit_and_a_bad_edit_keeps_the_form(tab, browser_log):
    browser_log.allow("status of 422")
    new_conversation(tab)
    send(tab, echo("keep me"))
    wait_until_finished(tab)

    box = open_edit(tab, 0)
    box.fill("changed my mind")
    box.press("Escape")
    expect(questions(tab).first.locator(".msg-body")).to_have_text(echo("keep me"))
    expect(tab.get_by_role("textbox", name="Edit your message")).to_have_count(0)

    box = open_edit(tab, 0)
    box.fill("   ")
    tab.get_by_role("button", name="Save and send").click()
    expect(questions(tab).first.get_by_role("alert")).to_have_text("Type a message first.")
    expect(answers(tab)).to_have_count(1)
    box = tab.get_by_role("textbox", name="Edit your message")
    box.fill(echo("kept after all"))
    box.press("Enter")
    expect(wait_until_finished(tab).locator(".msg-body")).to_have_text("kept after all")


def test_an_edit_while_an_answer_streams_says_to_stop_it_first(tab, browser_log):
    browser_log.allow("status of 409|Response Status Error Code 409")
    new_conversation(tab)
    send(tab, echo("first"))
    wait_until_finished(tab)
    prompt, _ = long_echo(200)
    send(tab, prompt)
    wait_for_text(last_answer(tab), 20)

    box = open_edit(tab, 0)
    box.fill(echo("first, edited"))
    box.press("Enter")

    expect(tab.get_by_text("An answer is still being written: stop it, then edit.")).to_be_visible()
    expect(box).to_have_value(echo("first, edited"))  # nothing typed is lost
    last_answer(tab).get_by_role("button", name="Stop").click()
    expect(last_answer(tab).get_by_text("Stopped")).to_be_visible()
    box.press("Enter")
    expect(wait_until_finished(tab).locator(".msg-body")).to_have_text("first, edited")


def test_regenerated_answers_are_versions_to_flip_through(tab):
    new_conversation(tab)
    send(tab, echo("same every time"))
    wait_until_finished(tab)

    settled(tab)
    last_answer(tab).get_by_role("button", name="Regenerate").click()
    final = wait_until_finished(tab)
    expect(final.locator(".version-count")).to_have_text("2 / 2")
    final.get_by_role("button", name="Previous version").click()
    expect(last_answer(tab).locator(".version-count")).to_have_text("1 / 2")
    expect(answers(tab)).to_have_count(1)

    settled(tab)
    last_answer(tab).get_by_role("button", name="Regenerate").click()  # from version 1
    expect(wait_until_finished(tab).locator(".version-count")).to_have_text("3 / 3")


def test_a_switch_and_an_edit_in_one_tab_show_in_the_other(tab, other_tab):
    """On the production stack the other tab is on the other server process."""
    url = start_conversation(tab, echo("day"))
    wait_until_finished(tab)
    other = other_tab()
    other.goto(url)
    expect(other.locator("#transcript article.msg-assistant .msg-body")).to_have_text("day")

    box = open_edit(tab, 0)
    box.fill(echo("night"))
    box.press("Enter")
    wait_until_finished(tab)

    expect(other.locator("#transcript article.msg-assistant .msg-body")).to_have_text("night")
    expect(questions(other).first.locator(".version-count")).to_have_text("2 / 2")
    settled(other)
    questions(other).first.get_by_role("button", name="Previous version").click()
    expect(last_answer(tab).locator(".msg-body")).to_have_text("day")
    expect(questions(tab).first.locator(".version-count")).to_have_text("1 / 2")
    expect(composer_box(tab)).to_be_visible()
    assert re.search(r"day", " ".join(bodies(tab)))
