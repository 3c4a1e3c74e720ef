"""Markdown while it streams: finished blocks rendered once, the open tail shown as text.

The view must not depend on how the answer was cut into pieces (a second process, a reload
and a resumed reader all rebuild it from the text), must end where the final render starts,
and must never let model text become markup, however a payload is split.
"""

from __future__ import annotations

import random

import pytest

from conversations.live_markdown import LiveMarkdown
from conversations.rendering import render_markdown
from tests.test_sanitization import PAYLOADS, assert_inert

ANSWERS = {
    "mixed": (
        "# Plan\n\nSome **bold**, `code` and a [link](https://example.com/x).\n"
        "A second line.\n\n- one\n- two with *em*\n  continued\n- three\n\n"
        "```python\ndef f(x):\n    return x * 2\n```\n\n"
        "| a | b |\n|---|---|\n| 1 | 2 |\n\n> quoted\n> more\n\n"
        "1. first\n2. second\n\n---\n\nLast words with snake_case and 2 * 3."
    ),
    "loose-list": "Intro:\n\n- a\n\n- b\n\n  more of b\n\n- c\n\nDone.",
    "setext": "Title\n=====\n\nSub\n---\ntext\n",
    "fence-in-list": "- item\n\n  ```\n  code\n  ```\n- next\n\nafter",
    "unclosed-fence": "Look:\n\n~~~js\nlet a = 1;\n\nlet b = 2;\n",
    "tables": "Name | Age\n--- | ---\nAda | 36\n\nno table | here\nplain\n",
    "table-with-pipes": "| a | b |\n|:--|--:|\n| 1 | 2 |\n\n||\n|x|\n",
    "fence-lines-like-its-close": "````\n``\n```\n  ```js\n````\n\n~~~\n ~~ \n~~~~\nend",
    "crlf": "one\r\n\r\ntwo\r\nthree",
    "headings-and-hashtags": "#hashtag here\n# Real\n#another\n\n## Two\ntext",
}


def view_of(*pieces: str) -> LiveMarkdown:
    view = LiveMarkdown()
    for piece in pieces:
        view.feed(piece)
    return view


def random_pieces(text: str, seed: int) -> list[str]:
    rng, pieces, at = random.Random(seed), [], 0
    while at < len(text):
        size = rng.choice([1, 1, 2, 3, 5, 8, 13])
        pieces.append(text[at : at + size])
        at += size
    return pieces


def state(view: LiveMarkdown) -> tuple:
    return view.blocks, view.tail_html("m")


@pytest.mark.parametrize("text", ANSWERS.values(), ids=ANSWERS.keys())
def test_the_view_is_the_same_however_the_text_arrived(text):
    whole = state(view_of(text))
    for seed in range(40):
        assert state(view_of(*random_pieces(text, seed))) == whole, seed
    for cut in range(len(text) + 1):  # and at every length along the way
        assert state(view_of(text[:cut])) == state(view_of(text[: cut // 2], text[cut // 2 : cut]))


@pytest.mark.parametrize("text", ANSWERS.values(), ids=ANSWERS.keys())
def test_the_final_answer_renders_as_its_blocks_did(text):
    """`done` swaps in the whole answer's render: what was shown must not reflow, and the
    view's final HTML (its blocks reused) is exactly what a reload renders."""
    for seed in range(5):
        view = view_of(*random_pieces(text, seed))
        shown = "".join(view.blocks)
        assert render_markdown(text).startswith(shown)
        assert view.final_html(text) == render_markdown(text)


def test_an_answer_with_a_link_reference_is_rendered_whole_at_the_end():
    text = "See [the docs][d].\n\nMore text.\n\n[d]: https://example.com/docs\n"
    view = view_of(text)
    assert 'href="https://example.com/docs"' in view.final_html(text)
    assert view.final_html(text) == render_markdown(text)


def test_the_final_html_of_other_text_is_that_texts_render():
    """A saved answer that is not what the view was fed (a mirror that missed the end)."""
    view = view_of("# Title\n\npartial")
    text = "# Title\n\npartial, then the rest\n\n- a list"
    assert view.final_html(text) == render_markdown(text)


def test_a_heading_renders_when_its_line_ends_a_paragraph_at_its_blank_line():
    view = view_of("# Title\nSome text")
    assert view.blocks == ["<h1>Title</h1>\n"] and "Some text" in view.tail_html("m")
    view.feed("\n\nNext")
    assert view.blocks[1] == "<p>Some text</p>\n"
    assert view.display == "Next"


def test_a_list_stays_open_until_something_else_starts():
    view = view_of("- a\n- b\n\n")
    assert view.blocks == []  # "- c" could still follow
    view.feed("- c\n\nAfter\n")
    assert view.blocks == [render_markdown("- a\n- b\n\n- c\n\n")]


def test_an_open_fence_already_looks_like_code_without_its_fence_line():
    view = view_of("Here:\n\n```python\nprint('<b>')\nx = 1")
    tail = view.tail_html("m")
    assert view.blocks == ["<p>Here:</p>\n"]
    assert tail == (
        '<div class="md-tail" id="msg-m-tail"><pre class="md-tail-code" data-lang="python">'
        "<code id=\"msg-m-tail-text\">print('&lt;b&gt;')\nx = 1</code></pre></div>"
    )
    view.feed("\n```\n")
    assert view.blocks[1].startswith('<pre><code class="language-python">')
    assert view.display == ""


@pytest.mark.parametrize(
    "text, shown",
    [
        ("Some **bol", "Some bol"),
        ("Some **bold** and `co", "Some bold and co"),
        ("See [the docs](https://exa", "See the docs"),
        ("See [the docs](https://example.com) now", "See the docs now"),
        ("![a cat](https://x/cat.png) and", "a cat and"),
        (
            "snake_case and _em_ and 2 * 3 and \\*stars\\*",
            "snake_case and em and 2 * 3 and *stars*",
        ),
        ("## Head", "Head"),
        ("#hashtag", "#hashtag"),
        ("> quoted", "quoted"),
        ("- item\n- ot", "• item\n• ot"),
        ("- a\n\n- b\n\n\n", "• a\n• b"),  # no empty lines, none under the text
    ],
)
def test_the_open_tail_shows_no_raw_markers(text, shown):
    assert view_of(text).display == shown


def test_a_closing_fence_line_never_shows_as_code():
    """The tail shows code as it comes, but not a last line that may be the closing fence:
    for one token "```" was shown under the code, then the block replaced it."""
    view = view_of("```python\nx = 1\n`")
    assert view.display == "x = 1\n"
    view.feed("``")
    assert view.display == "x = 1\n"  # it waits for its line's end
    view.feed("\n")
    assert view.blocks[0].startswith("<pre>") and view.display == ""
    view = view_of("````\nx\n```")  # shorter than the fence: code, once its line ends
    assert view.display == "x\n"
    view.feed("js")
    assert view.display == "x\n```js"


def test_an_open_table_shows_its_rows_as_a_table_and_never_its_pipes():
    view = view_of("| a | b |\n|--")
    assert view.display == "  a   b  "  # the header row, its cells apart
    view.feed("-|---|\n| 1 | 2 |")
    assert not view.blocks
    assert "<th>a</th>" in view.tail_html("m") and "<td>1</td>" not in view.tail_html("m")
    assert view.display == "  1   2  "  # the row being written, after the table so far
    view.feed("\n")
    assert "<td>1</td>" in view.tail_html("m") and view.display == ""
    view.feed("\nAfter")
    assert view.blocks == [render_markdown("| a | b |\n|---|---|\n| 1 | 2 |\n")]
    assert view.display == "After"
    assert "<th>a</th>" in view_of("a | b\n--- | ---\n").tail_html("m")
    assert "|" not in view_of("| a\n|- b").display  # not a table after all, still no pipes
    assert view_of("x | y").display == "x | y"  # a pipe inside prose stays


def test_a_marker_at_the_end_waits_for_the_next_character():
    view = view_of("#")
    assert view.display == ""  # "#" may be a heading or "#hashtag"
    view.feed("hashtag")
    assert view.display == "#hashtag"


@pytest.mark.parametrize("name", PAYLOADS.keys())
def test_xss_payloads_split_anywhere_stay_inert(name):
    payload = PAYLOADS[name]
    text = f"Before\n\n{payload}\n\n- {payload}\n\n```\n{payload}\n```\n\n{payload}"
    for cut in range(len(text) + 1):
        view = view_of(text[:cut], text[cut:])
        assert_inert(view.html("m"))
        partial = view_of(text[:cut])  # and while it streams, at every length
        assert_inert(partial.html("m"))
        assert "<" not in partial.display  # the tail is text, escaped


@pytest.mark.parametrize(
    "table",
    [
        "| a | b |\n|:-|-:|\n| 1 | **2** |\n| `x|y` | [l](https://e.example) |\n"
        "| 3 |\n| 4 | 5 | 6 |\n",
        "\nName | Age\n--- | ---\nAda | 36\nBob\n",
        "| only | header |\n|---|---|\n",
    ],
    ids=["pipes", "no-outer-pipes", "no-rows"],
)
def test_an_open_table_built_row_by_row_is_the_table_rendered_whole(table):
    lines = table.splitlines(keepends=True)
    for count in range(3, len(lines) + 1):
        text = "".join(lines[:count])
        view = view_of(*random_pieces(text + "next", count))
        assert not view.blocks
        assert view.tail_html("m").startswith(
            '<div class="md-tail" id="msg-m-tail">' + render_markdown(text)
        )


def test_a_table_right_after_another_starts_afresh():
    first, second = "| a | b |\n|---|---|\n| 1 | 2 |\n\n", "| x |\n|---|\n| 9 |\n"
    view = view_of(first + second)
    assert view.blocks == [render_markdown(first)]
    assert render_markdown(second) in view.tail_html("m")
