"""Search over your own conversations. The same suite runs on SQLite (FTS5) and, with
DATABASE_URL set, on PostgreSQL (tsvector and GIN): the same data gives the same results."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test import Client
from django.urls import reverse

from conversations import search, search_index
from conversations.models import Conversation, Message
from tests.conftest import make_user
from tests.trees import add_branches, link_as_one_path

SEARCH = reverse("conversation_search")
HTMX = {"HX-Request": "true"}


def chat(owner, title: str, *texts: str, **fields) -> Conversation:
    """A conversation of finished messages, alternating question and answer, as one path."""
    conversation = Conversation.objects.create(owner=owner, title=title, **fields)
    for seq, text in enumerate(texts, start=1):
        role = Message.Role.USER if seq % 2 else Message.Role.ASSISTANT
        Message.objects.create(conversation=conversation, seq=seq, role=role, content=text)
    link_as_one_path(conversation)
    conversation.refresh_from_db()
    return conversation


def found(user, query: str) -> list[str]:
    return [result.conversation.title for result in search.search(user, query).results]


def results_html(client: Client, query: str) -> str:
    response = client.get(SEARCH, {"q": query}, headers=HTMX)
    assert response.status_code == 200, response.content
    return response.content.decode()


# ---- what matches, and in which order --------------------------------------------------


def test_message_text_and_titles_are_found(alice):
    chat(alice, "Travel plans", "Where should I go in spring?", "Try Lisbon.")
    chat(alice, "Cooking", "How do I make risotto?", "Stir it slowly; Lisbon cooks do too.")
    chat(alice, "Nothing here", "Hello", "Hi")
    assert sorted(found(alice, "lisbon")) == ["Cooking", "Travel plans"]
    assert found(alice, "cooking") == ["Cooking"]  # the title
    assert found(alice, "zebra") == []


def test_every_word_must_match_in_any_case(alice):
    chat(alice, "One", "The quick brown fox")
    chat(alice, "Two", "A quick answer")
    assert found(alice, "QUICK fox") == ["One"]
    assert sorted(found(alice, "quick")) == ["One", "Two"]


def test_the_last_word_matches_as_a_prefix_while_typed(alice):
    chat(alice, "Streams", "Server-sent events stream tokens")
    chat(alice, "Other", "Streaming answers")
    assert sorted(found(alice, "strea")) == ["Other", "Streams"]
    assert found(alice, "st") == []  # too short to be a prefix: whole words only


def test_a_title_match_ranks_first_then_the_better_message(alice):
    chat(alice, "Once", "postgres is mentioned here once, among many other words in a line")
    chat(alice, "Often", "postgres postgres postgres: all about postgres")
    chat(alice, "All about Postgres", "nothing matching in the text")
    assert found(alice, "postgres") == ["All about Postgres", "Often", "Once"]


def test_one_result_per_conversation_at_its_best_message(alice):
    conversation = chat(
        alice,
        "Long",
        "kafka once in a line of seven words",
        "kafka kafka kafka: the best of all",
        "a line of eight words and kafka",
    )
    [result] = search.search(alice, "kafka").results
    assert result.conversation == conversation
    assert result.message is not None and result.message.seq == 2


def test_a_very_common_word_ranks_a_bounded_number_and_says_so(alice, alice_client, monkeypatch):
    monkeypatch.setattr(search, "MATCH_CAP", 3)
    for n in range(5):
        chat(alice, f"Chat {n}", "common word here")
    chat(alice, "Rare", "rare word here")
    common = search.search(alice, "common")
    assert common.capped and len(common.results) == 3
    assert not search.search(alice, "rare").capped
    assert "Many messages have these words" in results_html(alice_client, "common")
    assert "Many messages" not in results_html(alice_client, "rare")


def test_snippet_marks_the_words_found_around_the_first(alice):
    text = "word " * 60 + "the needle is here " + "tail " * 60
    chat(alice, "Haystack", text)
    [result] = search.search(alice, "needle").results
    hits = [part.text for part in result.snippet if part.hit]
    assert hits == ["needle"]
    snippet = "".join(part.text for part in result.snippet)
    assert snippet.startswith("… ") and snippet.endswith(" …")
    assert len(snippet) <= search.SNIPPET_CHARS + 4


def test_results_show_the_snippet_marked_and_the_title(alice, alice_client):
    chat(alice, "Rust notes", "Ownership and borrowing in Rust")
    html = results_html(alice_client, "borrowing")
    assert "<mark>borrowing</mark>" in html
    assert "Rust notes" in html
    assert 'id="search-note"' in html and "1 conversation found" in html


def test_live_answers_are_found_once_finished(alice):
    conversation = chat(alice, "Live", "question")
    answer = Message.objects.create(
        conversation=conversation, seq=2, role="assistant", status=Message.Status.STREAMING
    )
    Message.objects.filter(pk=answer.pk).update(content="partial checkpoint text zanzibar")
    assert found(alice, "zanzibar") == []
    Message.objects.filter(pk=answer.pk).update(
        content="final text zanzibar", status=Message.Status.COMPLETE
    )
    assert found(alice, "zanzibar") == ["Live"]
    [result] = search.search(alice, "zanzibar").results
    assert "".join(part.text for part in result.snippet) == "final text zanzibar"


def test_messages_of_a_user_who_searches_later_are_found(alice, bob):
    # PostgreSQL indexes a user's finished messages at their next search: bob's searches
    # never index (or find) alice's, and hers still finds them after his.
    chat(alice, "Alice", "unsearched pelican")
    assert found(bob, "pelican") == []
    chat(alice, "Alice again", "another pelican")
    assert sorted(found(alice, "pelican")) == ["Alice", "Alice again"]


def test_renamed_and_deleted_conversations_follow(alice):
    conversation = chat(alice, "Old title", "text")
    conversation.title = "Brand new"
    conversation.save()
    assert found(alice, "old") == []
    assert found(alice, "brand") == ["Brand new"]
    conversation.delete()
    assert found(alice, "brand") == []
    assert found(alice, "text") == []


# ---- whose, and what a moderator hid ---------------------------------------------------


def test_bob_never_sees_alices_conversations(alice, bob):
    chat(alice, "Alice secret", "my password hint is marmalade")
    chat(bob, "Bob's", "I like jam")
    assert found(bob, "marmalade") == []
    assert found(bob, "secret") == []
    assert found(alice, "marmalade") == ["Alice secret"]
    bob_client = Client()
    bob_client.force_login(bob)
    html = results_html(bob_client, "marmalade")
    assert "Alice secret" not in html and "password" not in html and "search-result" not in html


def test_hidden_messages_and_conversations_are_never_found(alice, alice_client):
    conversation = chat(alice, "Moderated", "fine text", "forbidden words here")
    Message.objects.filter(conversation=conversation, seq=2).update(hidden=True)
    assert found(alice, "forbidden") == []
    html = results_html(alice_client, "forbidden")
    assert "words here" not in html and "search-result" not in html
    assert found(alice, "fine") == ["Moderated"]
    Conversation.objects.filter(pk=conversation.pk).update(hidden=True)
    assert found(alice, "fine") == []
    assert found(alice, "moderated") == []


def test_archived_conversations_are_found_and_marked(alice, alice_client):
    chat(alice, "Put away", "archived knowledge", archived=True)
    assert found(alice, "knowledge") == ["Put away"]
    assert "Archived" in results_html(alice_client, "knowledge")


def test_signed_out_is_sent_to_sign_in(db):
    response = Client().get(SEARCH, {"q": "x"})
    assert response.status_code == 302


# ---- bad input -------------------------------------------------------------------------


def test_empty_query_shows_nothing_and_no_error(alice, alice_client):
    chat(alice, "Any", "text")
    for query in ("", "   ", "!!!", "*"):
        html = results_html(alice_client, query)
        assert "search-list" not in html and "search-error" not in html
    assert search.search(alice, "").results == []


def test_a_long_query_is_refused_with_a_reason(alice, alice_client):
    chat(alice, "Any", "text")
    response = alice_client.get(SEARCH, {"q": "a" * 1000}, headers=HTMX)
    assert response.status_code == 422
    assert "Search for at most 200 characters." in response.content.decode()
    assert search.search(alice, "text " * 40).error == ""  # exactly 200 is fine


@pytest.mark.parametrize(
    "query",
    [
        '"unbalanced',
        "NEAR(alpha beta)",
        "alpha OR beta",
        "alpha AND NOT beta",
        "alph*",
        "content:alpha",
        "(alpha",
        "alpha)",
        "^alpha",
        "alpha & !beta | (gamma <-> delta)",
        "alpha:* & 'beta'",
        "-alpha",
        "'; DROP TABLE conversations_message; --",
        "\\",
        "%",
        "_",
        "\x00alpha",
        "alpha\u0301",
        "😀 alpha",
        "Ünïcödé alpha",
        "日本語",
        "\u202ealpha",
    ],
)
def test_syntax_in_a_query_is_plain_text(alice, alice_client, query):
    chat(alice, "Syntax", "alpha beta gamma delta")
    chat(alice, "Unicode", "日本語 Ünïcödé")
    response = alice_client.get(SEARCH, {"q": query}, headers=HTMX)
    assert response.status_code == 200
    assert Message.objects.count() == 2  # nothing dropped
    assert "Traceback" not in response.content.decode()


def test_operators_are_words_not_syntax(alice):
    chat(alice, "Words", "alpha near beta")
    chat(alice, "Other", "alpha or gamma")
    assert found(alice, "alpha NEAR beta") == ["Words"]  # NEAR is a word to match
    assert found(alice, "alpha OR beta") == []  # OR too: no conversation has all three
    assert found(alice, '"alpha" -gamma') == ["Other"]  # quotes and minus are separators
    assert found(alice, "日本語") == []
    chat(alice, "Unicode", "日本語 and Ünïcödé")
    assert found(alice, "日本語") == ["Unicode"]
    assert found(alice, "ünïcödé") == ["Unicode"]


def test_markup_in_text_and_query_is_escaped(alice, alice_client):
    chat(alice, "<script>alert(1)</script>", "<img src=x onerror=alert(1)> payload")
    html = results_html(alice_client, "payload")
    assert "<img" not in html and "<script>" not in html
    assert "&lt;img src=x onerror=alert(1)&gt;" in html
    assert "<mark>payload</mark>" in html
    # The title matched (PostgreSQL's parser skips tag-like words: "alert" matches on both).
    html = results_html(alice_client, "alert")
    assert "<script>" not in html and "&lt;script&gt;<mark>alert</mark>(1)&lt;/script&gt;" in html
    html = results_html(alice_client, "<b>nomatch</b>")
    assert "<b>" not in html and "&lt;b&gt;nomatch&lt;/b&gt;" in html


# ---- the page without JavaScript, and opening a result ---------------------------------


def test_without_htmx_the_form_opens_a_page_of_results(alice, alice_client):
    chat(alice, "Plain page", "findable text")
    response = alice_client.get(SEARCH, {"q": "findable"})
    html = response.content.decode()
    assert response.status_code == 200
    assert "<h1>Search</h1>" in html and "<mark>findable</mark>" in html
    assert 'value="findable"' in html  # the box keeps the query


def test_a_result_links_to_its_message(alice, alice_client):
    conversation = chat(alice, "Linked", "first", "the answer with tapioca")
    message = conversation.messages.get(seq=2)
    html = results_html(alice_client, "tapioca")
    assert f"/c/{conversation.pk}/?at={message.pk}#msg-{message.pk}" in html


def test_opening_a_message_on_another_branch_shows_that_branch(alice, conversation, alice_client):
    tree = add_branches(conversation)
    old = tree["a2"]  # on the branch before the edit: not shown
    url = reverse("conversation_detail", args=[conversation.pk])
    response = alice_client.get(url, {"at": str(old.pk)})
    html = response.content.decode()
    assert response.status_code == 200
    assert f'id="msg-{old.pk}"' in html
    assert f'id="msg-{tree["a2_regenerated"].pk}"' not in html
    conversation.refresh_from_db()
    assert conversation.current_leaf_id == old.pk  # a reload and the next send agree


def test_opening_a_message_on_the_shown_branch_writes_nothing(alice, conversation, alice_client):
    tree = add_branches(conversation)
    leaf = conversation.current_leaf_id
    url = reverse("conversation_detail", args=[conversation.pk])
    response = alice_client.get(url, {"at": str(tree["q1"].pk)})
    assert f'id="msg-{tree["q1"].pk}"' in response.content.decode()
    conversation.refresh_from_db()
    assert conversation.current_leaf_id == leaf


def test_an_old_message_opened_is_in_the_page(alice, alice_client, settings):
    settings.CHAT = {**settings.CHAT, "MESSAGES_PER_PAGE": 4}
    conversation = chat(alice, "Long", *[f"message {n}" for n in range(1, 13)])
    early = conversation.messages.get(seq=2)
    url = reverse("conversation_detail", args=[conversation.pk])
    html = alice_client.get(url, {"at": str(early.pk)}).content.decode()
    assert f'id="msg-{early.pk}"' in html
    assert "Load earlier messages" in html  # seq 1 is still earlier
    assert f'id="msg-{conversation.messages.get(seq=12).pk}"' in html


@pytest.mark.parametrize("at", ["not-a-uuid", "00000000-0000-0000-0000-000000000000", ""])
def test_a_bad_at_opens_the_page_as_usual(alice, conversation, alice_client, at):
    add_branches(conversation)
    leaf = conversation.current_leaf_id
    url = reverse("conversation_detail", args=[conversation.pk])
    assert alice_client.get(url, {"at": at}).status_code == 200
    conversation.refresh_from_db()
    assert conversation.current_leaf_id == leaf


def test_another_users_message_in_at_changes_nothing(alice, bob, conversation, alice_client):
    add_branches(conversation)
    leaf = conversation.current_leaf_id
    bobs = chat(bob, "Bob", "bob's text")
    url = reverse("conversation_detail", args=[conversation.pk])
    response = alice_client.get(url, {"at": str(bobs.messages.get().pk)})
    assert "bob&#x27;s text" not in response.content.decode()
    conversation.refresh_from_db()
    assert conversation.current_leaf_id == leaf


# ---- the index itself ------------------------------------------------------------------


@pytest.mark.skipif(connection.vendor != "sqlite", reason="SQLite's triggers")
def test_a_table_remade_by_a_later_migration_gets_its_index_back(alice):
    chat(alice, "Before", "remade table text")
    with connection.cursor() as cursor:
        cursor.execute("DROP TRIGGER conversations_message_fts_update")
    assert search_index.repair(connection) is True
    assert search_index.repair(connection) is False
    assert found(alice, "remade") == ["Before"]
    conversation = chat(alice, "After", "also remade")
    Message.objects.filter(conversation=conversation).update(content="changed")
    assert found(alice, "remade") == ["Before"]


def test_a_second_user_is_not_a_special_case(db):
    carol = make_user("carol@example.com")
    chat(carol, "Carol", "carol's words")
    assert found(carol, "words") == ["Carol"]
