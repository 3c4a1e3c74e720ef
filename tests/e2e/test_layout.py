"""Layout, themes and the small page flows, plus the README's screenshots."""

from __future__ import annotations

import os
import re

import pytest
from playwright.sync_api import Page, expect

from tests.e2e.chat import (
    CONVERSATION_URL,
    echo,
    new_conversation,
    send,
    settled,
    sign_up,
    start_conversation,
    wait_until_finished,
)
from tests.e2e.conftest import DESKTOP, PHONE, SCREENSHOTS

pytestmark = pytest.mark.e2e

BACKGROUND = "getComputedStyle(document.body).backgroundColor"


def mark_page(page: Page) -> None:
    """A flag that only survives as long as the page is not reloaded."""
    page.evaluate("window.samePage = true")


def is_same_page(page: Page) -> bool:
    return page.evaluate("window.samePage === true")


def luminance(css_color: str) -> float:
    red, green, blue = (int(v) for v in re.findall(r"\d+", css_color)[:3])
    return (0.2126 * red + 0.7152 * green + 0.0722 * blue) / 255


def test_phone_sidebar_is_a_drawer(new_context, demo_state):
    page = new_context(storage_state=demo_state, viewport=PHONE, is_mobile=True).new_page()
    new_conversation(page)
    sidebar = page.get_by_role("complementary", name="Conversations")
    toggle = page.get_by_role("button", name="Conversations")
    expect(sidebar).to_be_hidden()
    expect(page.get_by_role("textbox", name="Message")).to_be_in_viewport()

    toggle.click()

    expect(sidebar).to_be_visible()
    expect(toggle).to_have_attribute("aria-expanded", "true")
    expect(sidebar.get_by_role("link", name="New chat")).to_be_in_viewport()
    page.keyboard.press("Escape")
    expect(sidebar).to_be_hidden()
    expect(toggle).to_be_focused()
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= PHONE["width"], "the page scrolls sideways on a phone"


def test_desktop_shows_the_sidebar_without_a_toggle(page):
    new_conversation(page)
    expect(page.get_by_role("complementary", name="Conversations")).to_be_visible()
    expect(page.get_by_role("button", name="Conversations")).to_be_hidden()


def test_theme_follows_the_system_setting(new_context, demo_state):
    light = new_context(storage_state=demo_state, color_scheme="light").new_page()
    dark = new_context(storage_state=demo_state, color_scheme="dark").new_page()
    light.goto("/")
    dark.goto("/")
    assert luminance(light.evaluate(BACKGROUND)) > 0.8
    assert luminance(dark.evaluate(BACKGROUND)) < 0.2


def test_rename_and_delete_happen_in_place(page, browser_log):
    browser_log.allow("status of 422")  # the empty title
    new_conversation(page)
    mark_page(page)
    send(page, echo("In place"))  # the first send lands on the new conversation, in place
    wait_until_finished(page)

    settled(page)
    page.get_by_role("link", name="Rename").click()
    title = page.get_by_role("textbox", name="Conversation title")
    expect(title).to_be_focused()
    settled(page)
    page.get_by_role("link", name="Cancel").click()
    expect(page.get_by_role("heading", name="echo: In place")).to_be_visible()
    settled(page)
    page.get_by_role("link", name="Rename").click()
    title.fill("   ")
    settled(page)  # else Enter submits the plain form: a full page load
    title.press("Enter")
    expect(page.get_by_role("alert")).to_have_text("A title cannot be empty.")
    title.fill("Trip planning")
    settled(page)  # else Enter submits the plain form: a full page load
    title.press("Enter")
    expect(page.get_by_role("heading", name="Trip planning")).to_be_visible()
    expect(page.locator("#sidebar [aria-current=page]")).to_contain_text("Trip planning")

    settled(page)
    page.get_by_role("link", name="Delete").click()
    expect(page.get_by_text("“Trip planning” and all its messages will be deleted")).to_be_visible()
    settled(page)
    page.get_by_role("link", name="Cancel").click()
    expect(page.get_by_role("heading", name="Trip planning")).to_be_visible()
    assert is_same_page(page), "rename and cancel reloaded the page"
    settled(page)
    page.get_by_role("link", name="Delete").click()
    settled(page)
    page.get_by_role("button", name="Delete").click()

    expect(page).to_have_url(re.compile(r"/$"))
    expect(page.locator("#sidebar")).not_to_contain_text("Trip planning")


def test_rename_and_delete_work_as_plain_pages(page):
    url = start_conversation(page, echo("A plain page"))
    wait_until_finished(page)

    page.goto(url + "rename")
    expect(page.get_by_role("heading", name="Rename conversation")).to_be_visible()
    page.get_by_role("textbox", name="Conversation title").fill("Plain page title")
    page.get_by_role("button", name="Save").click()
    expect(page).to_have_url(CONVERSATION_URL)
    expect(page.get_by_role("heading", name="Plain page title")).to_be_visible()

    page.goto(url + "delete")
    expect(page.get_by_role("heading", name="Delete this conversation?")).to_be_visible()
    page.get_by_role("link", name="Cancel").click()
    expect(page).to_have_url(url)
    page.goto(url + "delete")
    page.get_by_role("button", name="Delete").click()
    expect(page).to_have_url(re.compile(r"/$"))
    expect(page.locator("#sidebar")).not_to_contain_text("Plain page title")


def screenshot(page: Page, name: str) -> None:
    """Stable pictures: scrolled to the latest message, transitions finished."""
    page.wait_for_function("scrollY + innerHeight >= document.documentElement.scrollHeight - 2")
    page.screenshot(path=SCREENSHOTS / f"{name}.png", animations="disabled")


def test_screenshots_of_the_main_screens(new_context):
    """Saved to docs/screenshots/ for the README: a fresh account, a finished answer."""
    page = new_context(viewport=DESKTOP).new_page()
    sign_up(page, "you@example.com")  # fixed, so that a rerun makes the same pictures
    screenshot(page, "empty-state")
    for title in ("Ideas for a team offsite", "Why clocks lie"):
        new_conversation(page)
        send(page, title)
        wait_until_finished(page)
    new_conversation(page)
    send(page, "How do the answers stream into the page?")
    wait_until_finished(page)
    url = page.url
    page.mouse.move(0, 0)
    screenshot(page, "desktop-light")

    state = page.context.storage_state()
    dark = new_context(viewport=DESKTOP, color_scheme="dark", storage_state=state).new_page()
    dark.goto(url)
    screenshot(dark, "desktop-dark")

    phone = new_context(viewport=PHONE, is_mobile=True, storage_state=state).new_page()
    phone.goto(url)
    screenshot(phone, "phone")
    phone.get_by_role("button", name="Conversations").click()
    expect(phone.get_by_role("complementary", name="Conversations")).to_be_visible()
    screenshot(phone, "phone-sidebar")
    for name in ("desktop-light", "desktop-dark", "phone", "phone-sidebar", "empty-state"):
        assert (SCREENSHOTS / f"{name}.png").stat().st_size > 10_000


def test_the_sidebar_stays_open_past_its_first_page(page, new_context, demo_state):
    """A live-sync frame (here: a chat started in another tab) used to fold the list back
    to its first page."""
    new_conversation(page)
    items = page.locator("#conversation-list a[id^='conv-']")
    expect(items).to_have_count(50)
    page.get_by_role("link", name="Older conversations").click()
    expect(items).not_to_have_count(50)
    opened = items.count()
    other = new_context(storage_state=demo_state).new_page()

    started = start_conversation(other, echo("elsewhere")).rstrip("/").rsplit("/", 1)[-1]

    expect(page.locator(f"#conv-{started}")).to_be_attached()  # the frame came
    expect(items).to_have_count(opened + 1)


def _overlap(a: dict, b: dict) -> bool:
    return (
        a["x"] < b["x"] + b["width"]
        and b["x"] < a["x"] + a["width"]
        and a["y"] < b["y"] + b["height"]
        and b["y"] < a["y"] + a["height"]
    )


@pytest.mark.parametrize(
    "name",
    [
        "Weekend trip to Porto by train",
        "A much longer title that takes the most room a title can take",
    ],
    ids=["short", "long"],
)
def test_phone_header_leaves_the_title_room_and_nothing_overlaps(new_context, demo_state, name):
    page = new_context(storage_state=demo_state, viewport=PHONE, is_mobile=True).new_page()
    start_conversation(page, echo("On a phone"))
    wait_until_finished(page)
    settled(page)
    page.get_by_role("link", name="Rename").click()
    page.get_by_role("textbox", name="Conversation title").fill(name)
    page.get_by_role("button", name="Save").click()
    title = page.get_by_role("heading", name=name)
    expect(title).to_be_visible()
    if os.environ.get("LAYOUT_SCREENSHOT"):
        page.screenshot(path=os.environ["LAYOUT_SCREENSHOT"])

    # The title has the header's width (not a few letters of it), on two lines at most.
    assert title.evaluate("h => h.scrollWidth <= h.clientWidth"), "the title is cut sideways"
    assert title.bounding_box()["width"] >= PHONE["width"] * 0.7
    line = float(title.evaluate("h => parseFloat(getComputedStyle(h).lineHeight)"))
    assert title.bounding_box()["height"] <= 2 * line + 1
    if len(name) < 40:
        assert title.evaluate("h => h.scrollHeight <= h.clientHeight"), "a short title is cut"
    boxes = {
        "title": title.bounding_box(),
        "toggle": page.get_by_role("button", name="Conversations").bounding_box(),
        "rename": page.get_by_role("link", name="Rename").bounding_box(),
        "delete": page.get_by_role("link", name="Delete").bounding_box(),
        "model": page.get_by_role("combobox", name="Model").bounding_box(),
    }
    for key, box in boxes.items():
        assert box and box["x"] >= 0 and box["x"] + box["width"] <= PHONE["width"], key
    keys = list(boxes)
    for i, first in enumerate(keys):
        for second in keys[i + 1 :]:
            assert not _overlap(boxes[first], boxes[second]), f"{first} overlaps {second}"
    # The actions stay targets a thumb can hit, and the header does not cover the messages.
    assert boxes["rename"]["height"] >= 24 and boxes["delete"]["height"] >= 24
    head = page.locator(".chat-head").bounding_box()
    assert head and head["height"] <= 100


CODE_AND_COPY_BOXES = """pre => {
  const box = el => {
    const r = el.getBoundingClientRect();
    return [r.left, r.top, r.right, r.bottom];
  };
  return { copy: box(pre.querySelector(".copy-code")), code: box(pre.querySelector("code")),
           head: pre.querySelector(".code-head").textContent };
}"""


@pytest.mark.parametrize("viewport", [DESKTOP, PHONE], ids=["desktop", "phone"])
def test_the_copy_button_does_not_cover_the_code(new_context, demo_state, viewport):
    page = new_context(storage_state=demo_state, viewport=viewport).new_page()
    new_conversation(page)
    long_line = "x = " + " + ".join(f"value_{i}" for i in range(30))  # wider than a phone
    send(page, f"echo: ```python\n{long_line}\nprint(x)\n```")
    pre = wait_until_finished(page).locator("pre")
    expect(pre.get_by_role("button", name="Copy")).to_be_visible()

    boxes = pre.evaluate(CODE_AND_COPY_BOXES)
    (cl, ct, cr, cb), (xl, xt, xr, xb) = boxes["copy"], boxes["code"]
    assert cr <= xl or xr <= cl or cb <= xt or xb <= ct, (
        f"Copy {boxes['copy']} over code {boxes['code']}"
    )
    assert boxes["head"] == "python"  # the bar names the language
    # Scrolled sideways, the code moves under the bar, the button stays in view.
    pre.locator("code").evaluate("code => { code.scrollLeft = code.scrollWidth; }")
    expect(pre.get_by_role("button", name="Copy")).to_be_in_viewport()
