"""Markdown while it streams, in a real browser: finished blocks as elements, no raw markers,
no reflow at `done`, the XSS corpus inert however it is cut, and a reload or a second tab
in the middle of a block ending with the same answer.

Every DOM state of the answer is recorded (a MutationObserver installed before the page
loads, so it survives a reload): each must be the view the server has of some prefix of the
answer (live_markdown.py), which is what "never a character twice, never one missing" means
for a page that is sent blocks, tails and tokens.
"""

from __future__ import annotations

import re
from html.parser import HTMLParser

import pytest
from playwright.sync_api import Page, expect

from conversations.live_markdown import LiveMarkdown
from conversations.rendering import render_markdown
from tests.e2e.chat import (
    echo,
    last_answer,
    new_conversation,
    send,
    settled,
    start_conversation,
    wait_until_finished,
)
from tests.test_sanitization import PAYLOADS

pytestmark = pytest.mark.e2e

# Installed in every document of a test's page, before its scripts. It records the last
# answer's states while it streams and, at every DOM change, anything active in a message;
# an alert() (the corpus' payloads call it) is noted instead of opening a dialog.
RECORDER = """(() => {
  window.__xss = [];
  window.__found = [];
  window.__states = [];
  for (const name of ["alert", "confirm", "prompt"]) {
    window[name] = (...args) => { window.__xss.push([name, ...args.map(String)]); };
  }
  const ACTIVE = "script, iframe, frame, object, embed, img, svg, math, style, link, meta, "
    + "base, form, video, audio, source, [src], [srcdoc], [formaction], [action], [style]";
  // What a finished block shows, without the Copy bar enhance.js adds to code blocks.
  window.__plain = (el) => {
    const copy = el.cloneNode(true);
    copy.querySelectorAll(".code-head, .copy-code").forEach((n) => n.remove());
    return copy;
  };
  window.__inspect = () => {
    const found = [];
    for (const body of document.querySelectorAll("#transcript .msg-body")) {
      for (const el of body.querySelectorAll("*")) {
        if (el.matches(ACTIVE)) found.push("element " + el.outerHTML.slice(0, 120));
        for (const attr of el.attributes) {
          if (/^(on|hx-|sse-|data-hx)/i.test(attr.name)) {
            found.push(`attribute ${el.tagName} ${attr.name}`);
          }
        }
        if (el.tagName === "A" && el.hasAttribute("href")
            && !["http:", "https:", "mailto:"].includes(el.protocol)) {
          found.push("link " + el.getAttribute("href"));
        }
      }
    }
    if (document.querySelector("script:not([src])")) found.push("inline script");
    return found;
  };
  const record = () => {
    for (const item of window.__inspect()) {
      if (!window.__found.includes(item)) window.__found.push(item);
    }
    const body = [...document.querySelectorAll(
      "#transcript article.msg-assistant .msg-body")].at(-1);
    if (!body) return;
    const live = body.classList.contains("streaming");
    const last = window.__states.at(-1);
    if (!live) {
      if (last && last.live) window.__states.push({ live: false });
      return;
    }
    const text = window.__plain(body).textContent;
    if (last && last.live && last.text === text) return;
    const blocks = [...body.children].filter((el) => !el.classList.contains("md-tail"))
      .map((el) => [el.tagName, window.__plain(el).textContent]);
    window.__states.push({ live, text, blocks });
  };
  new MutationObserver(record).observe(document, {
    childList: true, subtree: true, characterData: true, attributes: true,
  });
  document.addEventListener("DOMContentLoaded", record);
})();"""

# The element's HTML as the final answer shows it, without the Copy bar.
PLAIN_HTML = "(el) => window.__plain(el).innerHTML"
# The server's HTML serialized by the browser, to compare like with like.
AS_BROWSER_HTML = """(html) => {
  const template = document.createElement("template");
  template.innerHTML = html;
  return template.innerHTML;
}"""

MARKERS = ("**", "```", "|---", "](", "## ")

MARKDOWN = (
    "## Streaming plan\n\n"
    "Some **bold** text and a [link](https://example.com/docs) in it.\n\n"
    "- first item with **strong** words\n"
    "- second item\n"
    "- third item\n\n"
    "| Name | Value |\n"
    "|---|---|\n"
    "| alpha | 1 |\n"
    "| beta | 2 |\n\n"
    "```python\n"
    "def add(a, b):\n"
    "    return a + b\n"
    "```\n\n"
    + " ".join(
        f"Closing **word{i}** and [more](https://example.com/{i})" if i % 10 == 0 else f"w{i}"
        for i in range(120)
    )
)


class _Text(HTMLParser):
    """An HTML fragment's textContent."""

    def __init__(self, markup: str) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self.feed(markup)
        self.close()

    def handle_data(self, data: str) -> None:
        self.parts.append(data)


def text_of(markup: str) -> str:
    return "".join(_Text(markup).parts)


def views_of(answer: str) -> set[str]:
    """The text the live answer shows at every length of the answer (live_markdown.py)."""
    views, view = set(), LiveMarkdown()
    views.add(text_of(view.html("m")))
    for char in answer:
        view.feed(char)
        views.add(text_of(view.html("m")))
    return views


def live_states(page: Page) -> list[dict]:
    return [s for s in page.evaluate("window.__states") if s["live"]]


def assert_states_are_views(states: list[dict], answer: str) -> None:
    """Every state shown was the server's view of a prefix: nothing doubled or lost."""
    views = views_of(answer)
    strays = [s["text"] for s in states if s["text"] not in views]
    assert strays == [], strays[:3]


def message_body(page: Page):
    return last_answer(page).locator(".msg-body")


def final_html(page: Page) -> str:
    answer = wait_until_finished(page)
    settled(page)
    return answer.locator(".msg-body").evaluate(PLAIN_HTML)


def expected_html(page: Page, answer: str) -> str:
    return page.evaluate(AS_BROWSER_HTML, str(render_markdown(answer)))


def test_markdown_renders_while_it_streams_and_does_not_reflow(tab):
    markdown = MARKDOWN
    tab.add_init_script(RECORDER)
    new_conversation(tab)

    send(tab, echo(markdown))

    # Mid-answer: the heading, list, table and code are finished, the closing text streams.
    tab.wait_for_function(
        """() => {
          const body = document.querySelector("#transcript .msg-assistant .msg-body.streaming");
          return body && body.querySelector(":scope > pre:not(.md-tail-code)");
        }"""
    )
    seen = message_body(tab).evaluate(
        """(body) => ({
          live: body.classList.contains("streaming"),
          h2: [...body.querySelectorAll(":scope > h2")].map((el) => el.textContent),
          strong: [...body.querySelectorAll(":scope > p strong")].map((el) => el.textContent),
          links: [...body.querySelectorAll(":scope > p a")].map((el) => el.href),
          items: [...body.querySelectorAll(":scope > ul > li")].map((el) => el.textContent),
          cells: [...body.querySelectorAll(":scope > table td")].map((el) => el.textContent),
          code: body.querySelector(":scope > pre code").textContent,
          text: body.innerText,
        })"""
    )
    assert seen["live"], "the answer finished before it was seen streaming"
    assert seen["h2"] == ["Streaming plan"]
    assert seen["strong"] == ["bold"]
    assert seen["links"] == ["https://example.com/docs"]
    assert seen["items"] == ["first item with strong words", "second item", "third item"]
    assert seen["cells"] == ["alpha", "1", "beta", "2"]
    assert seen["code"] == "def add(a, b):\n    return a + b\n"
    assert [m for m in MARKERS if m in seen["text"]] == [], seen["text"]

    final = final_html(tab)
    assert final == expected_html(tab, markdown)  # what the server renders for the answer
    states = live_states(tab)
    assert len(states) >= 20, states
    for state in states:  # at every DOM change while it streamed, no raw marker showed
        assert [m for m in MARKERS if m in state["text"]] == [], state["text"]
    assert_states_are_views(states, markdown)
    # No reflow: every block shown while streaming is the final answer's block, in place.
    final_blocks = message_body(tab).evaluate(
        """(body) => [...body.children].map((el) => [el.tagName, window.__plain(el).textContent])"""
    )
    for state in states:
        assert state["blocks"] == final_blocks[: len(state["blocks"])], state["blocks"]
    assert [tag for tag, _ in states[-1]["blocks"]] == ["H2", "P", "UL", "TABLE", "PRE"]

    tab.reload()
    assert final_html(tab) == final  # the stored answer renders as the streamed one ended


def xss_answer() -> str:
    """The corpus, each payload in three of these places: a paragraph, a list item, a fenced
    code block, a table cell, a paragraph break through its middle, a line break through it
    (a token boundary in a payload without spaces). One more ends the answer: the open tail
    when `done` comes. (The demo model's tokens end at whitespace: a payload with spaces is
    cut into tokens wherever it is.)"""
    payloads = list(PAYLOADS.values())

    def placed(payload: str, how: int) -> str:
        middle = len(payload) // 2
        return [
            payload,
            f"- {payload}\n- after it",
            f"```\n{payload}\n```",
            f"| cell |\n|---|\n| {payload} |",
            f"{payload[:middle]}\n\n{payload[middle:]}",
            f"{payload[:middle]}\n{payload[middle:]}",
        ][how % 6]

    parts = [placed(p, i + shift) for shift in (0, 2, 5) for i, p in enumerate(payloads)]
    return "\n\n".join([*parts, "In the open tail: " + PAYLOADS["img-onerror"]])


INSPECT = """() => ({
  found: window.__inspect(),
  ran: window.__xss,
  live: !!document.querySelector("#transcript .msg-body.streaming"),
})"""


def test_the_xss_corpus_stays_inert_while_it_streams_and_after(tab):
    answer = xss_answer()
    tab.add_init_script(RECORDER)
    new_conversation(tab)

    send(tab, echo(answer))

    # Sampled mid-stream too (the recorder checks every DOM change): once the answer shows
    # as much as the server's view of its first 20%, 40%... does.
    live = []
    for share in (0.2, 0.4, 0.6, 0.8):
        view = LiveMarkdown()
        view.feed(answer[: int(len(answer) * share)])
        tab.wait_for_function(
            """(n) => {
              const body = document.querySelector("#transcript .msg-assistant .msg-body");
              return body && (!body.matches(".streaming") || body.textContent.length >= n);
            }""",
            arg=len(text_of(view.html("m"))),
        )
        sample = tab.evaluate(INSPECT)
        live.append(sample.pop("live"))
        assert sample == {"found": [], "ran": []}
    assert live[0], "the answer finished before it was seen streaming"
    final = final_html(tab)
    assert tab.evaluate(INSPECT) == {"found": [], "ran": [], "live": False}
    assert tab.evaluate("window.__found") == []  # at no DOM change
    states = live_states(tab)
    assert len(states) >= 20, states
    assert_states_are_views(states, answer)
    assert final == expected_html(tab, answer)
    shown = message_body(tab).text_content()
    for name in ("script", "img-onerror", "svg-onload", "iframe", "raw-a-javascript"):
        assert PAYLOADS[name] in shown, name  # shown as text, not dropped

    tab.reload()
    assert final_html(tab) == final
    assert tab.evaluate(INSPECT) == {"found": [], "ran": [], "live": False}
    assert tab.evaluate("window.__found") == []


def long_markdown() -> str:
    items = "\n".join(f"- item {i} with **bold {i}** and `code {i}`" for i in range(12))
    code = "\n".join(f"    total = total + {i}  # line {i}" for i in range(20))
    words = " ".join(f"end{i}" for i in range(25))
    return (
        f"# Resume\n\nA list:\n\n{items}\n\nThe code:\n\n```python\ndef f():\n{code}\n```\n\n"
        f"{words}"
    )


def test_a_reload_or_a_second_tab_mid_block_ends_with_the_same_answer(tab, other_tab):
    """The second tab comes in while the list is open (on the production stack, served by
    the other process: a mirror); the first tab reloads while the fence is open."""
    answer = long_markdown()
    tab.add_init_script(RECORDER)
    url = start_conversation(tab, echo(answer))

    live = "#transcript .msg-assistant .msg-body.streaming"
    tab.wait_for_function(
        "(live) => (document.querySelector(live + ' .md-tail-text')?.textContent.match(/•/g)"
        " || []).length >= 3",
        arg=live,
    )
    other = other_tab()
    other.add_init_script(RECORDER)
    other.goto(url)
    expect(other.locator(live)).to_be_visible()
    tab.wait_for_function(
        "(live) => (document.querySelector(live + ' .md-tail-code')?.textContent.match(/\\n/g)"
        " || []).length >= 3",
        arg=live,
    )

    tab.reload()

    expect(tab.locator(live)).to_be_visible()  # still streaming after the reload
    expected = expected_html(tab, answer)
    assert final_html(tab) == expected
    assert final_html(other) == expected
    for page in (tab, other):
        states = live_states(page)
        assert len(states) >= 10, states
        assert_states_are_views(states, answer)
    reloaded = [s for s in tab.evaluate("window.__states") if not s["live"]]
    assert reloaded == [{"live": False}], "the first tab's answer ended before its reload"
    assert re.search(r"line 19", message_body(tab).text_content())
