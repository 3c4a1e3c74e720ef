"""Search in a real browser, on both stacks: type in the sidebar, open a result, land on it."""

from __future__ import annotations

import re
import uuid

import pytest
from playwright.sync_api import expect

from tests.e2e.chat import echo, long_echo, send, start_conversation, wait_until_finished

pytestmark = pytest.mark.e2e


def test_type_a_word_open_the_result_and_land_on_the_message(tab):
    word = "zq" + uuid.uuid4().hex[:10]  # only this test's conversation has it
    start_conversation(tab, echo("the", word, "is here"))
    wait_until_finished(tab)
    for _ in range(3):  # enough text below it that the message is out of view at the end
        prompt, _answer = long_echo(120)
        send(tab, prompt)
        wait_until_finished(tab)

    tab.goto("/")
    box = tab.get_by_role("searchbox", name="Search your conversations")
    box.press_sequentially(word[:6])  # as you type: a prefix already finds it
    box.press_sequentially(word[6:])
    results = tab.locator("#search-results")
    expect(results).to_have_attribute("aria-live", "polite")
    result = results.locator("a.search-result")
    expect(result).to_have_count(1)
    expect(result.locator("mark").first).to_have_text(word)
    expect(tab.locator("#search-note")).to_have_text("1 conversation found")

    result.focus()  # keyboard reachable: a link, opened with Enter
    tab.keyboard.press("Enter")
    tab.wait_for_url(re.compile(r"\?at=[0-9a-f-]{36}#msg-[0-9a-f-]{36}$"))
    message_id = tab.url.rsplit("#msg-", 1)[1]
    found = tab.locator(f"#msg-{message_id}")
    expect(found).to_be_in_viewport()
    expect(found).to_contain_text(word)
    assert found.evaluate("el => el.matches(':target')")
    assert found.evaluate("el => getComputedStyle(el).outlineStyle") == "solid"
    # The latest answer is out of view: the page did not scroll to the end.
    expect(tab.locator("#transcript article.msg").last).not_to_be_in_viewport()
