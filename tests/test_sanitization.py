"""XSS in model output or user text renders as inert text; links and code render safely."""

from __future__ import annotations

import re
from html import escape as html_escape
from html.parser import HTMLParser

import pytest
from django.utils.safestring import SafeString

from conversations.models import Message
from conversations.rendering import render_markdown
from tests.fakes import Delta
from tests.streams import read_events, send_data, wait_until_final

SAFE_REL = "noopener noreferrer nofollow"
# Elements that run script or load something; none may come from model or user text.
ACTIVE_TAGS = {"script", "img", "svg", "iframe", "object", "embed", "style", "base", "math"}
URL_ATTRIBUTES = {"href", "src", "action", "formaction", "xlink:href", "srcdoc", "data"}

PAYLOADS = {
    "script": "<script>alert('xss')</script>",
    "img-onerror": "<img src=x onerror=alert('xss')>",
    "svg-onload": "<svg onload=alert('xss')></svg>",
    "iframe": "<iframe src=\"javascript:alert('xss')\"></iframe>",
    "raw-a-javascript": "<a href=\"javascript:alert('xss')\">click me</a>",
    "markdown-javascript-link": "[click me](javascript:alert('xss'))",
    "markdown-javascript-uppercase": "[click me](JAVASCRIPT:alert('xss'))",
    "markdown-javascript-entity": "[click me](&#106;avascript:alert('xss'))",
    "markdown-javascript-reference": "[click me][x]\n\n[x]: javascript:alert('xss')",
    "markdown-data-link": "[click me](data:text/html;base64,PHNjcmlwdD4=)",
    "autolink-javascript": "<javascript:alert('xss')>",
    "markdown-image": "![cat](javascript:alert('xss'))",
    "markdown-image-onerror": '![x" onerror="alert(1)](https://example.com/x.png)',
    "bare-javascript-url": "javascript:alert('xss') and vbscript:msgbox(1)",
    "bare-url-with-quote": 'https://example.com/"onmouseover="alert(1)',
    "code-span-script": "`<script>alert('xss')</script>`",
}


class Elements(HTMLParser):
    """Every element with its attributes, inline script text and the text a reader sees."""

    def __init__(self, markup: str) -> None:
        super().__init__(convert_charrefs=True)
        self.elements: list[tuple[str, dict[str, str]]] = []
        self.inline_script: list[str] = []
        self.text: list[str] = []
        self._in_script = False
        self.feed(markup)
        self.close()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.elements.append((tag, {name: value or "" for name, value in attrs}))
        self._in_script = tag == "script"

    def handle_endtag(self, tag: str) -> None:
        if tag == "script":
            self._in_script = False

    def handle_data(self, data: str) -> None:
        if self._in_script:
            self.inline_script.append(data.strip())
        else:
            self.text.append(data)

    def links(self) -> list[dict[str, str]]:
        return [attrs for tag, attrs in self.elements if tag == "a" and "href" in attrs]


def assert_inert(markup: str) -> Elements:
    """No script or loader element, event handler or script URL, except our own static files."""
    parsed = Elements(markup)
    for tag, attrs in parsed.elements:
        if tag == "script":
            assert attrs.get("src", "").startswith("/static/"), attrs  # ours, never inline
        else:
            assert tag not in ACTIVE_TAGS, (tag, attrs)
        for name, value in attrs.items():
            assert not name.startswith(("on", "hx-on")), (tag, attrs)
            if name in URL_ATTRIBUTES:
                url = re.sub(r"[\s\x00-\x1f]", "", value).lower()
                assert not url.startswith(("javascript:", "data:", "vbscript:")), (tag, attrs)
    assert not any(parsed.inline_script), parsed.inline_script
    return parsed


# ---- the renderer ---------------------------------------------------------------------


@pytest.mark.parametrize("payload", PAYLOADS.values(), ids=PAYLOADS.keys())
def test_markdown_renderer_leaves_nothing_active(payload):
    assert_inert(render_markdown(payload))


@pytest.mark.parametrize(
    "payload", [PAYLOADS["script"], PAYLOADS["img-onerror"], PAYLOADS["raw-a-javascript"]]
)
def test_raw_html_from_the_model_is_shown_as_text(payload):
    parsed = assert_inert(render_markdown(payload))
    assert payload in "".join(parsed.text)


def test_links_open_safely():
    parsed = assert_inert(
        render_markdown("See [the docs](https://example.com/docs) or <https://example.org>.")
    )
    links = parsed.links()
    assert [a["href"] for a in links] == ["https://example.com/docs", "https://example.org"]
    assert all(a["rel"] == SAFE_REL for a in links)
    assert all(a["target"] == "_blank" for a in links)  # beside the chat, not over it


def test_bare_urls_become_safe_links_and_nothing_else_does():
    parsed = assert_inert(
        render_markdown(
            "Docs: https://example.com/a?b=1, www.python.org; not javascript:alert(1) "
            "nor `https://in.code/` nor data:text/html,x"
        )
    )
    links = parsed.links()
    assert [a["href"] for a in links] == ["https://example.com/a?b=1", "http://www.python.org"]
    assert all(a["rel"] == SAFE_REL and a["target"] == "_blank" for a in links)


def test_code_blocks_are_highlighted_and_escaped():
    html = render_markdown("```python\ndef greet():\n    return '<b>hi</b>'\n```")
    parsed = assert_inert(html)
    assert '<span class="tok-k">def</span>' in html
    assert "<b>" not in html
    assert "return '<b>hi</b>'" in "".join(parsed.text)


def test_code_in_an_unknown_language_is_plain_escaped_text():
    html = render_markdown("```nosuchlanguage\n<script>alert('xss')</script>\n```")
    assert_inert(html)
    assert "&lt;script&gt;" in html and "tok-" not in html


def test_renderer_output_is_marked_safe_only_after_cleaning():
    html = render_markdown("**bold** <script>x</script>")
    assert isinstance(html, SafeString)
    assert "<strong>bold</strong>" in html


# ---- through the app: what the browser gets ------------------------------------------

MODEL_OUTPUT = "\n\n".join(
    [*PAYLOADS.values(), "[safe link](https://example.com/docs)", "```python\nprint('hi')\n```"]
)


def in_pieces(text: str, size: int = 7) -> list[Delta]:
    """Deltas that cut tags in half, as a tokenizer would."""
    return [Delta(text[i : i + size]) for i in range(0, len(text), size)]


@pytest.mark.django_db(transaction=True)
async def test_hostile_model_output_is_inert_in_the_done_event_and_the_page(
    alice_async, conversation, provider
):
    provider.scripts = [in_pieces(MODEL_OUTPUT)]
    await alice_async.post(
        f"/c/{conversation.pk}/messages",
        send_data("Show me some HTML"),
        headers={"HX-Request": "true"},
    )
    answer = await Message.objects.aget(conversation=conversation, role="assistant")
    events = await read_events(await alice_async.get(f"/c/{conversation.pk}/m/{answer.pk}/stream"))
    final = await wait_until_final(answer.pk)
    assert final.content == MODEL_OUTPUT

    assert events[-1]["event"] == "done"
    page = await alice_async.get(f"/c/{conversation.pk}/")
    for markup in (events[-1]["data"], page.content.decode()):
        parsed = assert_inert(markup)
        assert PAYLOADS["script"] in "".join(parsed.text)  # shown, not run
        external = [a for a in parsed.links() if a["href"].startswith("https://example.com")]
        assert external and all(a["rel"] == SAFE_REL for a in external)
        assert '<span class="tok-nb">print</span>' in markup


@pytest.mark.django_db(transaction=True)
async def test_hostile_user_text_is_inert_in_the_send_response_and_the_page(
    alice_async, alice, provider
):
    conversation = await alice.conversations.acreate()  # the first message names it
    text = "\n".join(PAYLOADS.values())
    response = await alice_async.post(
        f"/c/{conversation.pk}/messages", send_data(text), headers={"HX-Request": "true"}
    )
    assert response.status_code == 200
    answer = await Message.objects.aget(conversation=conversation, role="assistant")
    await wait_until_final(answer.pk)

    page = await alice_async.get(f"/c/{conversation.pk}/")
    for markup in (response.content.decode(), page.content.decode()):
        parsed = assert_inert(markup)
        assert PAYLOADS["svg-onload"] in "".join(parsed.text)


def test_images_are_links_the_page_never_loads():
    """An image URL can carry the conversation to a third party: it is shown as a link."""
    parsed = assert_inert(render_markdown("Look: ![a <cat>](https://example.com/c.png?q=secret)"))
    assert not any(tag == "img" for tag, _ in parsed.elements)
    [link] = parsed.links()
    assert link["href"] == "https://example.com/c.png?q=secret" and link["rel"] == SAFE_REL
    assert "Image: a <cat>" in "".join(parsed.text)


def test_task_lists_render_as_disabled_checkboxes():
    html = render_markdown("- [ ] write tests\n- [x] ship\n")
    boxes = [attrs for tag, attrs in Elements(html).elements if tag == "input"]
    assert len(boxes) == 2 and all(box["type"] == "checkbox" for box in boxes)
    assert all("disabled" in box for box in boxes)
    assert ["checked" in box for box in boxes] == [False, True]


def test_no_other_input_comes_through():
    assert "<input" not in render_markdown('<input type="text" name="password">')


def test_an_answers_markdown_source_for_copy_is_escaped_text(alice_client, conversation):
    """Copy reads the source from a <template>: inert, and escaped like any other text."""
    source = "**bold** </template><script>alert(1)</script> & done"
    Message.objects.create(
        conversation=conversation, seq=1, role="assistant", status="complete", content=source
    )

    page = alice_client.get(f"/c/{conversation.pk}/").content.decode()

    kept = re.findall(r'<template class="msg-source">(.*?)</template>', page, re.S)
    assert kept == [html_escape(source)]
    assert "<script>alert(1)" not in page
