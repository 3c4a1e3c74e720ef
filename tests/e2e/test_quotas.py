"""A send over quota in the browser: the reason under the composer, the text kept, no
"Not sent" bubble (a retry would fail until the quota resets). The server's side (what it
counts, refuses and stores) is tests/test_quotas.py; here the page's handling of its 429."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from tests.e2e.chat import answers, composer_box, echo, new_conversation, send

pytestmark = pytest.mark.e2e

REFUSAL = (
    "You have used your daily quota of 100 tokens. It resets at 00:00 UTC on 8 December 2026 "
    "(in 11 h 3 min)."
)


def test_a_send_over_quota_keeps_the_text_and_says_when_it_resets(tab, browser_log):
    browser_log.allow(r"status of 429|Error Code 429")
    new_conversation(tab)
    tab.route(
        "**/messages",
        lambda route: route.fulfill(
            status=429,
            headers={"Retry-After": "39780", "X-Refusal": "quota"},
            content_type="text/plain; charset=utf-8",
            body=REFUSAL,
        ),
    )

    send(tab, echo("keep me"))

    expect(tab.locator(".composer-error")).to_have_text(REFUSAL)
    expect(composer_box(tab)).to_have_value(echo("keep me"))
    expect(answers(tab)).to_have_count(0)
    expect(tab.locator(".status-failed")).to_have_count(0)


def test_an_answer_shows_on_the_usage_page(tab, stack):
    """Counted when the answer ends, per day and model; reached from "Your data"."""
    from tests.e2e.chat import start_conversation, wait_until_finished

    start_conversation(tab, echo("count my tokens"))
    wait_until_finished(tab)
    tab.goto(stack.first.url + "/me/data")
    tab.get_by_role("link", name="Your usage").click()
    expect(tab.get_by_role("heading", name="Your usage")).to_be_visible()
    row = tab.locator(".usage-table tbody tr").filter(has_text="demo/demo")
    expect(row.first).to_be_visible()
