"""Choosing the model in the browser: mid-conversation, and for new chats."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from tests.e2e.chat import (
    answers,
    echo,
    new_conversation,
    send,
    settled,
    start_conversation,
    wait_until_finished,
)

pytestmark = pytest.mark.e2e


def picker(tab):
    return tab.get_by_role("combobox", name="Model")


def test_switching_model_mid_conversation_labels_each_answer_with_its_model(tab):
    start_conversation(tab, echo("first"))
    wait_until_finished(tab)
    settled(tab)
    expect(picker(tab)).to_have_value("demo/demo")

    picker(tab).focus()
    picker(tab).select_option("demo/demo-mini")
    expect(tab.locator("#model-status")).to_have_text("The next answers come from this model.")
    expect(picker(tab)).to_be_focused()  # the swap keeps the keyboard where it was
    send(tab, echo("second"))
    wait_until_finished(tab)

    labels = answers(tab).locator(".usage-model")
    expect(labels).to_have_text(["demo", "demo-mini"])
    tab.reload()
    expect(picker(tab)).to_have_value("demo/demo-mini")
    expect(answers(tab).locator(".usage-model")).to_have_text(["demo", "demo-mini"])


def test_a_new_chats_model_goes_with_its_first_send_and_becomes_the_default(tab):
    new_conversation(tab)
    picker(tab).select_option("demo/demo-mini")
    expect(tab.locator("#model-status")).to_have_text("New chats start with this model.")

    send(tab, echo("hello"))
    wait_until_finished(tab)
    expect(answers(tab).locator(".usage-model")).to_have_text(["demo-mini"])
    expect(picker(tab)).to_have_value("demo/demo-mini")

    new_conversation(tab)
    expect(picker(tab)).to_have_value("demo/demo-mini")


def test_a_model_no_longer_on_offer_is_refused_and_the_text_kept(tab, browser_log):
    """A stale page offers a model since taken off the list: the send says why, stores
    nothing, and the text stays in the box."""
    browser_log.allow(r"status of 400|Error Code 400")
    new_conversation(tab)
    picker(tab).evaluate(
        "el => { el.options[0].value = 'retired/model'; el.value = 'retired/model'; }"
    )

    send(tab, echo("keep me"))

    expect(tab.locator(".composer-error")).to_have_text(
        "Unknown model 'retired/model': choose one from the list."
    )
    expect(tab.get_by_role("textbox", name="Message")).to_have_value(echo("keep me"))
    expect(answers(tab)).to_have_count(0)
    tab.reload()
    expect(tab.get_by_role("heading", name="Start a conversation")).to_be_visible()
