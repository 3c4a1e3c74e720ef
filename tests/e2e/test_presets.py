"""Presets in the browser: write one on the Presets page, start a new chat from it."""

from __future__ import annotations

import re
import uuid

import pytest
from playwright.sync_api import expect

from tests.e2e.chat import (
    CONVERSATION_URL,
    echo,
    new_conversation,
    send,
    settled,
    wait_until_finished,
)

pytestmark = pytest.mark.e2e


def test_a_new_chat_starts_from_a_preset_with_its_prompt_and_model(tab):
    name = f"Brief {uuid.uuid4().hex[:6]}"  # the stack's database outlives one test
    tab.goto("/")
    tab.get_by_role("link", name="Presets", exact=True).first.click()
    tab.wait_for_url(re.compile(r"/presets/$"))
    tab.get_by_label("Name").fill(name)
    tab.get_by_label("System prompt").fill("Answer in one short sentence.")
    tab.get_by_label("Model").select_option("demo/demo-mini")
    tab.get_by_label("Temperature (0 to 2)").fill("0.5")
    tab.get_by_role("button", name="Save preset").click()
    row = tab.locator("#own-presets li", has_text=name)
    expect(row).to_contain_text("Model: demo/demo-mini")
    expect(row).to_contain_text("Temperature: 0.5")
    expect(tab.locator("#new-preset [role=status]")).to_have_text("Saved.")
    expect(tab.get_by_label("Name")).to_have_value("")  # a fresh form for the next one

    new_conversation(tab)
    choice = tab.get_by_label("Preset", exact=True)
    choice.focus()
    choice.select_option(label=name)
    expect(tab.locator("#preset-summary")).to_contain_text("the model demo/demo-mini")
    expect(tab.locator("#preset-summary")).to_contain_text("Answer in one short sentence.")
    send(tab, echo("ahoy"))
    tab.wait_for_url(CONVERSATION_URL)
    answer = wait_until_finished(tab)
    settled(tab)

    expect(tab.locator(".preset-origin")).to_have_text(f"Started from preset: {name}")
    expect(tab.locator("#model-select")).to_have_value("demo/demo-mini")
    expect(answer.locator(".usage-model")).to_have_text("demo-mini")
    expect(tab.locator("#system-prompt summary")).to_contain_text("· on")
    expect(tab.locator("#system-prompt textarea")).to_have_value("Answer in one short sentence.")
    tab.reload()
    expect(tab.locator(".preset-origin")).to_have_text(f"Started from preset: {name}")


def test_a_preset_is_edited_in_place_refused_when_bad_and_deleted(page, browser_log):
    browser_log.allow(r"status of 422")
    name = f"Edit me {uuid.uuid4().hex[:6]}"
    page.goto("/presets/")
    page.get_by_label("Name").fill(name)
    page.get_by_role("button", name="Save preset").click()
    row = page.locator("#own-presets li", has_text=name)
    expect(row).to_contain_text("Model: your default")
    settled(page)

    row.get_by_role("link", name=f"Edit {name}").click()
    editing = page.locator("#own-presets li.is-editing")
    expect(editing.get_by_label("Name")).to_be_focused()
    temperature = editing.get_by_label("Temperature (0 to 2)")
    temperature.fill("7")
    editing.get_by_role("button", name="Save").click()
    expect(editing.get_by_role("alert")).to_have_text(
        "The temperature must be a number from 0 to 2 (or blank)."
    )
    expect(temperature).to_have_value("7")  # what was typed stays
    temperature.fill("1.5")
    editing.get_by_role("button", name="Save").click()
    expect(row).to_contain_text("Temperature: 1.5")
    expect(row.get_by_role("status")).to_have_text("Saved.")
    settled(page)

    row.get_by_role("button", name=f"Delete {name}").click()
    expect(page.locator("#own-presets li", has_text=name)).to_have_count(0)
    page.reload()
    expect(page.get_by_text(name)).to_have_count(0)
