"""The model's reasoning in a real browser: a folded "Thinking" section above the answer,
which the reader can open and watch grow, apart from the answer's text, resumed after a
reload, the same after the reload as at the live end. The offline demo thinks first when
the prompt says "think" (providers/demo.py)."""

from __future__ import annotations

import uuid

import pytest
from playwright.sync_api import Locator, Page, expect

from conversations.providers.demo import demo_answer, demo_thinking
from tests.e2e.chat import (
    answer_text,
    echo,
    last_answer,
    new_conversation,
    send,
    start_conversation,
    wait_until_finished,
)

pytestmark = pytest.mark.e2e

# The bubble as a reader sees it, to compare the live end with a reload: its markup with
# the things that differ by design set aside (whether the reader opened the section, the
# relative time, which the page keeps current, and the forms' CSRF field, which only a
# page carries: core.js puts the cookie's token in every form it submits).
BUBBLE = """(answer) => {
  const copy = answer.cloneNode(true);
  copy.querySelectorAll("details").forEach((d) => d.removeAttribute("open"));
  copy.querySelectorAll("time").forEach((t) => t.textContent = "");
  copy.querySelectorAll("input[name=csrfmiddlewaretoken]").forEach((i) => i.remove());
  return copy.outerHTML.replace(/\\s+/g, " ");
}"""


def thinking(answer: Locator) -> Locator:
    return answer.locator("details.thinking")


def wait_for_thinking(page: Page, minimum_chars: int) -> str:
    """Wait until the live answer's Thinking section holds this much text; that text."""
    page.wait_for_function(
        """(n) => {
          const live = [...document.querySelectorAll("#transcript .thinking-text.live")].at(-1);
          return live && live.textContent.length >= n;
        }""",
        arg=minimum_chars,
    )
    return thinking(last_answer(page)).locator(".thinking-text").text_content() or ""


def test_thinking_streams_folded_above_the_answer_and_resumes_after_a_reload(tab):
    prompt = f"Please think about ordering ({uuid.uuid4().hex[:8]})"
    expected, answer_expected = demo_thinking(prompt), demo_answer(prompt)
    new_conversation(tab)

    send(tab, prompt)

    answer = last_answer(tab)
    section = thinking(answer)
    expect(section).to_be_visible()
    expect(section.locator("summary")).to_have_text("Thinking…", use_inner_text=True)
    expect(section).not_to_have_attribute("open", "")  # folded by default
    expect(section.locator(".thinking-text")).to_be_hidden()
    before = wait_for_thinking(tab, 40)
    assert expected.startswith(before) and len(before) < len(expected)
    assert answer_text(answer) == ""  # none of it in the answer

    tab.reload()  # in the middle of the thinking

    answer = last_answer(tab)
    section = thinking(answer)
    expect(answer.get_by_role("button", name="Stop")).to_be_visible()  # still live
    expect(section.locator("summary")).to_have_text("Thinking…", use_inner_text=True)
    section.locator("summary").click()  # open it, and watch it grow
    expect(section.locator(".thinking-text")).to_be_visible()
    during = wait_for_thinking(tab, len(before) + 20)
    assert expected.startswith(during)  # resumed: nothing lost, nothing twice
    # Once the answer's text starts, the section no longer says the model is thinking.
    expect(section.locator("summary")).to_have_text("Thinking", use_inner_text=True)

    final = wait_until_finished(tab)
    section = thinking(final)
    expect(section).to_have_attribute("open", "")  # the reader opened it: it stays open
    expect(section.locator("summary")).to_have_text("Thinking")
    expect(section.locator(".thinking-text")).to_have_text(expected)
    expect(final.locator(".msg-body")).to_contain_text("Demo answer")
    assert answer_expected.endswith("to talk to a real model.")
    expect(final.locator(".msg-body")).to_contain_text("to talk to a real model.")
    assert "no model is reasoning" not in answer_text(final)  # apart from the answer
    live_end = final.evaluate(BUBBLE)

    tab.reload()

    after = last_answer(tab)
    expect(thinking(after)).not_to_have_attribute("open", "")  # folded again on a new page
    expect(thinking(after).locator(".thinking-text")).to_have_text(expected)
    assert after.evaluate(BUBBLE) == live_end


def test_a_second_tab_follows_the_thinking_and_a_stop_while_thinking_keeps_it(tab, other_tab):
    """On the production stack the second tab is served by the other process: the thinking
    reaches it through the Redis relay, and its Stop goes back to the generating one."""
    url = start_conversation(tab, echo("first"))
    wait_until_finished(tab)
    other = other_tab()
    other.goto(url)
    prompt = f"Think it over ({uuid.uuid4().hex[:8]})"
    expected = demo_thinking(prompt)

    send(tab, prompt)

    seen = wait_for_thinking(other, 30)  # the other tab shows it growing, folded
    assert expected.startswith(seen)
    expect(thinking(last_answer(other))).not_to_have_attribute("open", "")
    last_answer(other).get_by_role("button", name="Stop").click()
    for page in (tab, other):
        answer = last_answer(page)
        expect(answer.get_by_text("Stopped")).to_be_visible()
        expect(answer.locator(".typing")).to_have_count(0)  # nothing left spinning
        kept = thinking(answer).locator(".thinking-text").text_content() or ""
        assert len(seen) <= len(kept) < len(expected) and expected.startswith(kept.strip())
        assert answer_text(answer).strip() == ""  # it stopped before the answer began
    tab.reload()
    expect(thinking(last_answer(tab)).locator(".thinking-text")).to_have_text(kept.strip())
