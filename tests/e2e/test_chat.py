"""The chat page in a real browser: streaming, Markdown, stop, reload, offline, XSS."""

from __future__ import annotations

import itertools
import re
import time
import uuid
from urllib.parse import urlsplit

import pytest
from playwright.sync_api import expect

from tests.e2e.chat import (
    CONVERSATION_URL,
    answer_text,
    answers,
    composer_box,
    echo,
    last_answer,
    long_echo,
    new_conversation,
    send,
    start_conversation,
    wait_for_text,
    wait_until_finished,
)
from tests.e2e.conftest import LONG_CONVERSATION, LONG_MESSAGES

pytestmark = pytest.mark.e2e

# Records the streaming answer's text at every DOM change, until its final bubble arrives.
RECORD_STREAM = """() => {
  window.streamStates = [];
  window.typingShown = false;
  // The body, not the transcript: a new chat's first send swaps in the conversation's.
  new MutationObserver(() => {
    const transcript = document.getElementById("transcript");
    const answer = transcript && transcript.querySelector("article.msg-assistant:last-of-type");
    if (!answer || window.streamStates.at(-1) === "<final>") return;
    const body = answer.querySelector(".msg-body.streaming");
    if (!body) { window.streamStates.push("<final>"); return; }
    const typing = answer.querySelector(".typing");
    if (!body.textContent && typing && getComputedStyle(typing).display !== "none") {
      window.typingShown = true;
    }
    if (body.textContent && window.streamStates.at(-1) !== body.textContent) {
      window.streamStates.push(body.textContent);
    }
  }).observe(document.body, { childList: true, subtree: true, characterData: true });
}"""


def test_answer_grows_token_by_token_then_renders(tab):
    new_conversation(tab)
    expect(tab.get_by_text("Start a conversation")).to_be_visible()  # the empty state
    answer = "Streaming answers arrive a few words at a time, " * 3
    tab.evaluate(RECORD_STREAM)

    send(tab, echo(answer.strip()))

    expect(tab.locator("#transcript .msg-user")).to_have_text(re.compile("Streaming answers"))
    final = wait_until_finished(tab)
    states = tab.evaluate("window.streamStates")
    assert states[-1] == "<final>"
    growing = states[:-1]
    assert len(growing) >= 3, growing
    for shorter, longer in itertools.pairwise(growing):
        assert longer.startswith(shorter) and len(longer) > len(shorter)
    assert all(answer.strip().startswith(state) for state in growing)
    assert tab.evaluate("window.typingShown"), "no typing indicator before the first token"
    expect(final.locator(".msg-body")).to_have_text(answer.strip())
    expect(final.locator("time")).to_have_text("just now")  # relative, the date in its title:
    year = str(time.localtime().tm_year)  # in the reader's locale and time zone (times.js)
    expect(final.locator("time")).to_have_attribute("title", re.compile(year))
    expect(tab.get_by_text("Start a conversation")).to_have_count(0)
    expect(tab).to_have_url(CONVERSATION_URL)  # the first send created the conversation
    # The first message names the conversation, in the header and in the sidebar.
    expect(tab.locator("h1")).to_have_text(re.compile("^echo: Streaming answers"))
    expect(tab.locator("#sidebar [aria-current=page]")).to_contain_text("echo: Streaming")


def test_markdown_code_block_is_highlighted_and_copyable(page):
    page.context.grant_permissions(["clipboard-read", "clipboard-write"])
    new_conversation(page)
    code = "def add(a, b):\n    return a + b"
    send(page, echo(f"Use **this**:\n\n```python\n{code}\n```\n\nThat is all."))

    answer = wait_until_finished(page)
    expect(answer.locator(".msg-body strong")).to_have_text("this")
    block = answer.locator("pre")
    expect(block.locator("code .tok-k").first).to_have_text("def")  # Pygments' keyword class
    block.get_by_role("button", name="Copy").click()
    expect(block.get_by_role("button", name="Copied")).to_be_visible()
    assert page.evaluate("navigator.clipboard.readText()").strip() == code


def test_stop_mid_stream_keeps_the_partial_answer(tab):
    new_conversation(tab)
    prompt, full = long_echo(150)
    send(tab, prompt)
    answer = last_answer(tab)
    wait_for_text(answer, 40)

    answer.get_by_role("button", name="Stop").click()

    expect(answer.get_by_text("Stopped")).to_be_visible()
    stopped = answer_text(answer)
    assert 40 <= len(stopped) < len(full) and full.startswith(stopped)
    expect(answer.get_by_role("button", name="Retry")).to_be_visible()
    expect(composer_box(tab)).to_be_focused()
    time.sleep(0.3)
    assert answer_text(answer) == stopped  # it really stopped
    tab.reload()
    expect(last_answer(tab).get_by_text("Stopped")).to_be_visible()
    assert answer_text(last_answer(tab)) == stopped


def test_reload_mid_stream_continues_the_answer(tab):
    new_conversation(tab)
    prompt, full = long_echo(120)
    send(tab, prompt)
    before = wait_for_text(last_answer(tab), 60)

    tab.reload()

    answer = last_answer(tab)
    expect(answer.get_by_role("button", name="Stop")).to_be_visible()  # still streaming
    during = wait_for_text(answer, len(before) + 20)
    assert full.startswith(during)
    final = wait_until_finished(tab)
    assert answer_text(final) == full  # nothing lost, nothing repeated


def test_two_tabs_follow_each_other_and_either_can_stop(tab, other_tab):
    """On the production stack the tabs talk to two processes: the message reaches the
    other tab over the channel layer, its answer over the Redis relay, and its Stop goes
    back to the process that generates the answer."""
    url = start_conversation(tab, echo("first"))
    wait_until_finished(tab)
    other = other_tab()
    other.goto(url)
    prompt, full = long_echo(150)

    send(tab, prompt)

    expect(other.locator("#transcript .msg-user .msg-body").last).to_have_text(prompt)  # sync
    seen = wait_for_text(last_answer(other), 40)  # streaming in the other tab too
    assert full.startswith(seen)
    last_answer(other).get_by_role("button", name="Stop").click()
    for page in (tab, other):
        expect(last_answer(page).get_by_text("Stopped")).to_be_visible()
    time.sleep(0.3)
    stopped = answer_text(last_answer(tab))
    assert len(seen) <= len(stopped) < len(full) and full.startswith(stopped)
    assert answer_text(last_answer(other)) == stopped
    send(other, echo("and back"))
    expect(tab.locator("#transcript .msg-user", has_text="and back")).to_be_visible()
    expect(wait_until_finished(tab).locator(".msg-body")).to_have_text("and back")


def test_offline_send_offers_retry_and_is_stored_once(page):
    """Offline, nothing is tried (htmx would log each failed request): no console error."""
    new_conversation(page)
    page.context.set_offline(True)

    send(page, "Sent while offline")

    bubble = page.locator("#transcript .msg-user", has_text="Sent while offline")
    expect(bubble.get_by_text("Not sent")).to_be_visible()
    expect(bubble.get_by_role("alert")).to_have_text(re.compile("offline"))
    expect(composer_box(page)).to_be_focused()  # whoever is typing keeps typing
    page.context.set_offline(False)
    bubble.get_by_role("button", name="Retry").click()

    wait_until_finished(page)
    expect(page.locator("#transcript .msg-user")).to_have_count(1)
    expect(page.get_by_text("Not sent")).to_have_count(0)
    page.reload()
    expect(page.locator("#transcript .msg-user", has_text="Sent while offline")).to_have_count(1)
    expect(answers(page)).to_have_count(1)


def test_a_stop_that_cannot_reach_the_server_says_so(page):
    new_conversation(page)
    prompt, _ = long_echo(1000)  # 30 s: still streaming on a loaded machine
    send(page, prompt)
    answer = last_answer(page)
    wait_for_text(answer, 20)
    notice = page.locator("#notice")
    page.context.set_offline(True)  # new requests fail; the open stream goes on

    answer.get_by_role("button", name="Stop").click()

    expect(notice).to_contain_text("Could not reach the server")
    expect(notice).to_have_attribute("role", "alert")
    notice.get_by_role("button", name="Dismiss").click()
    expect(notice).to_be_hidden()
    page.context.set_offline(False)
    answer.get_by_role("button", name="Stop").click()  # and again, now that it can
    expect(answer.get_by_text("Stopped")).to_be_visible()


def test_load_earlier_keeps_the_message_being_read_in_place(page):
    page.goto(f"/c/{LONG_CONVERSATION}/")
    first_shown = page.locator("#msg-" + str(uuid.UUID(int=LONG_MESSAGES - 49)))
    first_shown.scroll_into_view_if_needed()
    page.evaluate("window.scrollTo(0, 0)")
    top_before = first_shown.bounding_box()["y"]

    page.get_by_role("link", name="Load earlier messages").click()

    expect(page.locator("#msg-" + str(uuid.UUID(int=LONG_MESSAGES - 99)))).to_be_attached()
    assert abs(first_shown.bounding_box()["y"] - top_before) < 2  # the page did not jump


# Sends `count` messages straight to the conversation shown, one after the other: each waits
# for the answer before (a send while an answer is written is refused with a 409).
FILL_CONVERSATION = """async (count) => {
  const url = document.getElementById("transcript").dataset.sendUrl;
  const token = document.cookie.match(/(?:^|;\\s*)csrftoken=([^;]+)/)[1];
  for (let i = 0; i < count; i++) {
    const body = new FormData();
    body.set("content", "echo: filler " + i);
    body.set("client_id", crypto.randomUUID());
    let response;
    for (let attempt = 0; attempt < 200; attempt++) {
      response = await fetch(url, { method: "POST", body, headers: { "X-CSRFToken": token } });
      if (response.status !== 409) break;
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    if (!response.ok) throw new Error("send " + i + ": " + response.status);
  }
}"""


def test_a_failed_load_earlier_does_not_move_the_page_at_the_next_swap(tab, browser_log):
    """The place "Load earlier messages" keeps is for its own swap: when that request fails,
    the next swap (a message sent) still scrolls to the latest and follows the answer."""
    browser_log.allow("status of 500|Response Status Error Code 500|status of 409")
    start_conversation(tab, echo("filler"))
    tab.evaluate(FILL_CONVERSATION, 25)  # 52 messages: more than one page
    tab.reload()
    tab.route(
        re.compile(r"\?before=\d+$"),
        lambda route: route.fulfill(
            status=500, content_type="text/html", body="<!doctype html><h1>Server Error</h1>"
        ),
    )
    tab.evaluate("window.scrollTo(0, 0)")

    tab.get_by_role("link", name="Load earlier messages").click()

    expect(tab.locator("#notice")).to_contain_text("The server had a problem (500)")
    assert tab.evaluate("scrollY") == 0
    lines = "\n\n".join(f"Line {i}" for i in range(90))
    send(tab, "echo: " + lines)
    answer = last_answer(tab)
    wait_for_text(answer, 300)
    at_bottom = "() => innerHeight + scrollY >= document.documentElement.scrollHeight - 100"
    tab.wait_for_function(at_bottom)  # it followed the growing answer
    expect(tab.get_by_role("button", name=re.compile("Jump to latest"))).to_be_hidden()
    wait_until_finished(tab)
    tab.wait_for_function(at_bottom)
    expect(tab.get_by_role("button", name=re.compile("Jump to latest"))).to_be_hidden()


def test_a_paste_cut_to_the_length_limit_says_so(new_context, demo_state):
    context = new_context(storage_state=demo_state)
    context.grant_permissions(["clipboard-read", "clipboard-write"])
    page = context.new_page()
    new_conversation(page)
    box = composer_box(page)
    box.fill("Dear model, ")
    page.evaluate("text => navigator.clipboard.writeText(text)", "x" * 10_000)

    box.press("Control+V")

    expect(page.locator("#composer .composer-error")).to_have_text(
        "The pasted text was cut to 10,000 characters, the most a message can have."
    )
    assert len(box.input_value()) == 10_000
    box.press("Backspace")  # typing again puts the message away
    expect(page.locator("#composer .composer-error")).to_have_text("")


def lose_responses(page, path: str = "**/messages") -> list[str]:
    """The server handles each matching request, but the browser never hears back."""
    lost: list[str] = []

    def handle(route):
        route.fetch()
        lost.append(route.request.url)
        route.abort()

    page.route(path, handle)
    return lost


def test_lost_response_is_healed_by_live_sync(page, browser_log):
    """The server stored the message but its answer got lost: the page's socket brings it.
    (A new chat's first send has no conversation the socket could show yet: its Retry
    finds the stored send, as in the next test.)"""
    browser_log.allow(r"net::ERR_FAILED|^htmx:(afterRequest|sendError), ")
    start_conversation(page, echo("first"))
    wait_until_finished(page)
    lost = lose_responses(page)

    send(page, "Did this arrive?")

    answer = wait_until_finished(page)
    assert len(lost) == 1
    expect(answer.locator(".msg-body")).to_contain_text("Demo answer")
    expect(page.locator("#transcript .msg-user")).to_have_count(2)
    expect(page.get_by_text("Not sent")).to_have_count(0)


def test_retry_after_a_lost_response_does_not_duplicate(page, browser_log):
    """Without the live socket, Retry resends the same client_id and finds the stored send."""
    browser_log.allow(r"net::ERR_FAILED|^htmx:(afterRequest|sendError), ")
    page.route_web_socket("**/ws/sync/", lambda ws: None)  # a socket that never says anything
    new_conversation(page)
    lost = lose_responses(page)
    send(page, "Did this arrive?")
    bubble = page.locator("#transcript .msg-user", has_text="Did this arrive?")
    expect(bubble.get_by_text("Not sent")).to_be_visible()
    page.unroute("**/messages")

    bubble.get_by_role("button", name="Retry").click()

    wait_until_finished(page)
    assert len(lost) == 1
    expect(page.locator("#transcript .msg-user")).to_have_count(1)
    page.reload()
    expect(page.locator("#transcript .msg-user", has_text="Did this arrive?")).to_have_count(1)
    expect(answers(page)).to_have_count(1)


def test_a_send_refused_with_an_error_page_shows_a_short_reason(page, browser_log):
    """Only a plain-text reason from the server goes on the bubble, never an HTML page."""
    browser_log.allow("status of 404|Response Status Error Code 404")
    new_conversation(page)
    page.route(
        "**/messages",
        lambda route: route.fulfill(
            status=404, content_type="text/html", body="<!doctype html><h1>Not Found</h1>"
        ),
    )

    send(page, "Where did it go?")

    bubble = page.locator("#transcript .msg-user", has_text="Where did it go?")
    expect(bubble.get_by_role("alert")).to_have_text("Sending failed (404).")


def test_a_message_the_server_refuses_says_why_under_the_box(page, browser_log):
    """A NUL character passes the browser's checks; the server's 422 re-renders the
    composer with its reason, the text kept, under the enforced CSP."""
    browser_log.allow("status of 422")
    new_conversation(page)
    box = composer_box(page)
    box.fill("before\x00after")
    box.press("Enter")

    expect(page.get_by_role("alert")).to_have_text("Null characters are not allowed.")
    box = composer_box(page)
    expect(box).to_have_attribute("aria-invalid", "true")
    described = box.get_attribute("aria-describedby")
    expect(page.locator(f"#{described}")).to_have_text("Null characters are not allowed.")
    assert "before" in box.input_value()
    expect(page.locator("#transcript .msg-user", has_text="before")).to_have_count(0)


def test_rate_limit_is_shown_on_the_message(page, browser_log):
    browser_log.allow("status of 429|Response Status Error Code 429")
    new_conversation(page)
    page.route(
        "**/messages",
        lambda route: route.fulfill(
            status=429,
            headers={"Retry-After": "42", "Content-Type": "text/plain"},
            body="Limit of 20 messages per minute reached. Try again in 42 s.",
        ),
    )

    send(page, "One too many")

    bubble = page.locator("#transcript .msg-user", has_text="One too many")
    expect(bubble.get_by_role("alert")).to_have_text(re.compile("Limit of 20 messages.*42 s"))
    expect(bubble.get_by_role("button", name="Retry")).to_be_visible()


XSS = [
    "<img src=x onerror=alert('img')>",
    "<script>alert('script')</script>",
    "<svg onload=alert('svg')></svg>",
    "[link](javascript:alert('link'))",
    '<a href="javascript:alert(1)">raw link</a>',
    "![img](x\" onerror=\"alert('md'))",
]
NO_INJECTION = """() => {
  const t = document.getElementById("transcript");
  const handlers = [...t.querySelectorAll("*")].flatMap((el) => [...el.attributes]
    .filter((a) => a.name.startsWith("on")).map((a) => `${el.tagName} ${a.name}`));
  return {
    scripts: document.querySelectorAll("script:not([src])").length,
    injected: t.querySelectorAll("script, img, svg, iframe, object, embed").length,
    handlers,
    jsLinks: t.querySelectorAll("a[href^='javascript' i]").length,
  };
}"""


def test_xss_in_user_text_and_model_output_stays_text(page, browser_log):
    new_conversation(page)
    payload = "\n\n".join(XSS)

    send(page, payload)  # user text; the demo model answers with its own text
    wait_until_finished(page)
    send(page, "echo: " + payload)  # model output: the payload comes back as the answer
    wait_until_finished(page)
    page.reload()
    wait_until_finished(page)

    assert page.evaluate(NO_INJECTION) == {
        "scripts": 0,
        "injected": 0,
        "handlers": [],
        "jsLinks": 0,
    }
    expect(page.locator("#transcript .msg-user").first).to_contain_text("<script>alert('script')")
    expect(last_answer(page)).to_contain_text("<img src=x onerror=alert('img')>")
    assert browser_log.dialogs == []


def test_csp_refuses_inline_script_and_the_suite_notices(page, browser_log):
    new_conversation(page)
    page.evaluate(
        """() => {
          const script = document.createElement("script");
          script.textContent = "window.inlineRan = true";
          document.body.appendChild(script);
          const div = document.createElement("div");
          div.innerHTML = '<img src="/static/img/favicon.svg" onload="window.handlerRan = true">';
          document.body.appendChild(div);
        }"""
    )
    page.wait_for_function("document.querySelector('img[onload]').complete")
    assert page.evaluate("[window.inlineRan, window.handlerRan]") == [None, None]
    refused = [e for e in browser_log.errors if "Content Security Policy" in e]
    assert len(refused) == 2, browser_log.errors
    browser_log.errors.clear()  # provoked on purpose; any other violation fails a test


def test_regenerate_is_offered_on_the_last_answer_only(page):
    new_conversation(page)
    send(page, echo("first answer"))
    wait_until_finished(page)
    send(page, echo("second answer"))
    wait_until_finished(page)

    regenerate = page.get_by_role("button", name="Regenerate")
    expect(regenerate).to_have_count(1)
    expect(regenerate).to_be_visible()
    expect(last_answer(page).get_by_role("button", name="Regenerate")).to_be_visible()

    regenerate.click()
    final = wait_until_finished(page)
    # The new answer takes the old one's place; the old one is its version 1 of 2.
    expect(answers(page)).to_have_count(2)
    expect(final.locator(".msg-body")).to_have_text("second answer")
    expect(final.locator(".version-count")).to_have_text("2 / 2")
    expect(page.get_by_role("button", name=re.compile("^(Regenerate|Retry)$"))).to_have_count(1)
    expect(page.get_by_text("Replaced by a later answer")).to_have_count(0)


def test_auto_scroll_pauses_when_scrolled_up(page):
    new_conversation(page)
    lines = "\n\n".join(f"Line {i}" for i in range(90))
    send(page, "echo: " + lines)
    answer = last_answer(page)
    wait_for_text(answer, 200)
    page.wait_for_function("scrollY > 200")  # it followed the growing answer
    jump = page.get_by_role("button", name=re.compile("Jump to latest"))
    expect(jump).to_be_hidden()

    page.mouse.move(640, 300)
    page.mouse.wheel(0, -150)
    expect(jump).to_be_visible()
    held = page.evaluate("scrollY")
    wait_for_text(answer, len(answer_text(answer)) + 40)
    assert page.evaluate("scrollY") == held  # more text came, the reader was not moved

    jump.click()
    expect(jump).to_be_hidden()
    assert page.evaluate("innerHeight + scrollY >= document.documentElement.scrollHeight - 100")
    wait_until_finished(page)


def test_the_tab_title_follows_the_conversation_title_here_and_in_another_tab(tab, other_tab):
    """On the production stack the other tab is on the other server process."""
    new_conversation(tab)
    expect(tab).to_have_title("New chat · StreamChat")

    url = start_conversation(tab, "# Trip **plans** for May\n\nBy train, please.")

    # The first message names the conversation in plain text, on the page it lands on.
    title = "Trip plans for May By train, please."
    other = other_tab()
    other.goto(urlsplit(url).path)
    for page in (tab, other):
        expect(page.get_by_role("heading", name=title)).to_be_visible()
        expect(page).to_have_title(f"{title} · StreamChat")
    wait_until_finished(tab)

    tab.get_by_role("link", name="Rename").click()
    tab.get_by_role("textbox", name="Conversation title").fill("Lisbon")
    tab.get_by_role("button", name="Save").click()

    for page in (tab, other):
        expect(page).to_have_title("Lisbon · StreamChat")
    other.reload()
    expect(other).to_have_title("Lisbon · StreamChat")


def test_send_waits_while_an_answer_is_written_in_both_tabs(tab, other_tab, browser_log):
    url = start_conversation(tab, echo("first"))
    wait_until_finished(tab)
    other = other_tab()
    other.goto(url)
    prompt, _full = long_echo(150)
    hint = "Wait for the answer, or press Stop (Esc), to send."

    send(tab, prompt)
    wait_for_text(last_answer(tab), 10)
    composer_box(tab).fill(echo("A second question"))
    wait_for_text(last_answer(other), 10)  # live sync brought the answer to the other tab

    for page in (tab, other):
        expect(page.get_by_role("button", name="Send")).to_be_disabled()
        expect(page.get_by_text(hint)).to_be_visible()
    composer_box(tab).press("Enter")  # Enter does not send past it either
    expect(tab.locator("#transcript .msg-user")).to_have_count(2)

    # A send that gets through anyway (a page that missed the answer) is refused by the
    # server: the text comes back in the box, with the reason, and nothing is stored.
    browser_log.allow(r"409 \(Conflict\)|Response Status Error Code 409")
    browser_log.allow(r"^htmx:(afterRequest|responseError), ")
    tab.evaluate("document.querySelector('#composer .send').disabled = false")
    tab.get_by_role("button", name="Send").click()
    expect(tab.locator("#composer .composer-error")).to_have_text(
        "An answer is still being written: wait for it, or stop it, then send."
    )
    expect(composer_box(tab)).to_have_value(echo("A second question"))
    expect(tab.locator("#transcript .msg-user")).to_have_count(2)

    last_answer(other).get_by_role("button", name="Stop").click()
    for page in (tab, other):
        expect(last_answer(page).get_by_text("Stopped")).to_be_visible()
        expect(page.get_by_text(hint)).to_be_hidden()
    expect(tab.get_by_role("button", name="Send")).to_be_enabled()  # it has text
    expect(other.get_by_role("button", name="Send")).to_be_disabled()  # its box is empty
    composer_box(tab).press("Enter")
    expect(wait_until_finished(tab).locator(".msg-body")).to_have_text("A second question")


def test_copy_a_message_copies_its_markdown_source(page):
    page.context.grant_permissions(["clipboard-read", "clipboard-write"])
    new_conversation(page)
    markdown = "Use **bold**, `code` & <b>tags</b>:\n\n```python\nx = 1\n```\n\n- one\n- two"
    prompt = echo(markdown)
    send(page, prompt)

    answer = wait_until_finished(page)
    expect(answer.locator(".msg-body strong")).to_have_text("bold")  # rendered, not raw
    copy = answer.get_by_role("button", name="Copy message")
    copy.click()
    expect(answer.get_by_role("button", name="Copied")).to_be_visible()
    assert page.evaluate("navigator.clipboard.readText()") == markdown
    expect(copy).to_have_text("Copy")  # back after a moment

    question = page.locator("#transcript .msg-user").last
    question.get_by_role("button", name="Copy message").click()
    expect(question.get_by_role("button", name="Copied")).to_be_visible()
    assert page.evaluate("navigator.clipboard.readText()") == prompt


def test_a_copy_the_browser_refuses_says_so(page):
    new_conversation(page)
    send(page, echo("Hello"))
    answer = wait_until_finished(page)
    page.evaluate(
        "() => { navigator.clipboard.writeText = () => Promise.reject(new Error('no')); }"
    )
    answer.get_by_role("button", name="Copy message").click()
    expect(answer.get_by_role("button", name="Copy failed")).to_be_visible()
