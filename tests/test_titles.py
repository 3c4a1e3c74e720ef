"""The title a first message gives its conversation: plain text, no Markdown."""

import pytest

from conversations.models import Conversation, Message
from conversations.services.sending import send_message
from conversations.titles import TITLE_CHARS, plain_title


@pytest.mark.parametrize(
    ("text", "title"),
    [
        ("# Heading Some **bold** text", "Heading Some bold text"),
        ("## Plan ##\n\nthen *this* and _that_", "Plan then this and that"),
        ("Run `make test` ~~now~~", "Run make test now"),
        (
            "See [the docs](https://example.com/x) and <https://a.example>",
            "See the docs and https://a.example",
        ),
        ("![diagram](img.png) What does this show?", "What does this show?"),
        ("- first\n- second\n1. third\n* [x] done", "first second third done"),
        ("> quoted\n> more", "quoted more"),
        ("```python\nprint('hi')\n```", "print('hi')"),
        ("keep snake_case_names and 2 * 3 * 4", "keep snake_case_names and 2 * 3 * 4"),
        ("code `a*b*c` stays", "code a*b*c stays"),
        ("an escaped \\*star\\*", "an escaped *star*"),
        ("  lots \n\t of   space  ", "lots of space"),
        ("Title\n=====\nbody", "Title body"),
        ("A table:\n\n| a | b |\n|---|:-:|\n| 1 | 2 |", "A table: a b 1 2"),
        ("keep a | b pipes in prose", "keep a | b pipes in prose"),
        ("![only an image](x.png)", "![only an image](x.png)"),
        ("", ""),
    ],
)
def test_markdown_syntax_leaves_the_title(text, title):
    assert plain_title(text, TITLE_CHARS) == title


def test_a_long_message_is_cut_at_a_word_with_an_ellipsis():
    text = "Please help me **plan** a two week trip through Portugal and Spain by train in May"
    title = plain_title(text, TITLE_CHARS)
    assert title == "Please help me plan a two week trip through Portugal and…"
    assert len(title) <= TITLE_CHARS


def test_a_title_exactly_at_the_limit_is_not_cut():
    text = "word " * 11 + "abcd"  # 59 characters
    assert plain_title(text + "e", 60) == text + "e"


def test_one_long_word_is_cut_inside_it():
    title = plain_title("x" * 100, 20)
    assert title == "x" * 19 + "…"


def test_the_first_message_names_the_conversation_in_plain_text(alice):
    conversation = Conversation.objects.create(owner=alice)
    send_message(
        conversation=conversation,
        content="# Heading Some **bold** words, [a link](https://x.example)",
        client_id=None,
        launch=None,
    )
    # The first answer ends (a second send waits for it), then a second message comes.
    Message.objects.filter(conversation=conversation, status="streaming").update(status="complete")
    send_message(conversation=conversation, content="# Not this one", client_id=None, launch=None)
    conversation.refresh_from_db()
    assert conversation.title == "Heading Some bold words, a link"
