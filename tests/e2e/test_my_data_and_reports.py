"""A user's report and data download in a real browser (CSP on, htmx swaps, a real file)."""

from __future__ import annotations

import json
import uuid

import pytest
from playwright.sync_api import expect

from tests.e2e.chat import echo, last_answer, new_conversation, send, sign_up, wait_until_finished

pytestmark = pytest.mark.e2e


def test_reporting_an_answer_marks_it_reported(new_context):
    page = new_context().new_page()
    sign_up(page, f"reporter-{uuid.uuid4().hex[:8]}@example.com")
    new_conversation(page)
    send(page, echo("a dubious claim"))
    answer = wait_until_finished(page)

    answer.get_by_text("Report", exact=True).click()
    answer.get_by_role("textbox", name="Why you report this answer").fill("It is made up")
    answer.get_by_role("button", name="Send report").click()

    answer = last_answer(page)
    expect(answer.locator(".state", has_text="Reported")).to_be_visible()
    expect(answer.get_by_text("Report", exact=True)).to_have_count(0)


def test_esc_closes_the_report_form_and_the_focus_goes_back_to_report(page):
    new_conversation(page)
    send(page, echo("a claim"))
    answer = wait_until_finished(page)
    report = answer.get_by_text("Report", exact=True)
    reason = answer.get_by_role("textbox", name="Why you report this answer")

    report.click()
    reason.fill("Not sure yet")
    reason.press("Escape")

    expect(reason).to_be_hidden()
    expect(report).to_be_focused()
    report.press("Enter")  # open again from the keyboard: what was typed is still there
    expect(reason).to_have_value("Not sure yet")
    report.press("Escape")  # Esc on the summary itself closes it too
    expect(reason).to_be_hidden()
    expect(report).to_be_focused()


def test_your_data_downloads_the_users_own_conversations(new_context):
    page = new_context().new_page()
    email = f"portable-{uuid.uuid4().hex[:8]}@example.com"
    sign_up(page, email)
    new_conversation(page)
    send(page, echo("take me with you"))
    wait_until_finished(page)

    page.get_by_role("link", name="Your data").filter(visible=True).first.click()
    with page.expect_download() as download_info:
        page.get_by_role("link", name="JSON Lines (.jsonl)").click()
    download = download_info.value

    assert download.suggested_filename == "streamchat-my-data.jsonl"
    with open(download.path(), encoding="utf-8") as stream:
        records = [json.loads(line) for line in stream]
    assert records[0]["type"] == "header"
    assert {r["owner"] for r in records if r["type"] == "conversation"} == {email}
    assert "take me with you" in {r["content"] for r in records if r["type"] == "message"}
