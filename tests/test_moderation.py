"""Moderators in the admin, users' reports, hidden content and suspended accounts."""

from __future__ import annotations

import json
import re

import pytest
from asgiref.sync import sync_to_async
from django.contrib.auth.models import Permission
from django.test import AsyncClient, Client

from conversations.models import Conversation, Message, ModerationAction
from conversations.services import export, moderation
from conversations.services.sending import send_message
from tests.conftest import PASSWORD, make_staff, make_user
from tests.streams import send_data, wait_until_final
from tests.trees import add_branches, link_as_one_path

Kind = ModerationAction.Kind
MESSAGES = "/admin/conversations/message/"
CONVERSATIONS = "/admin/conversations/conversation/"
USERS = "/admin/auth/user/"


def client_for(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture
def onlooker(db) -> Client:
    """Staff who may look at conversations and messages, but holds no moderation permission."""
    user = make_staff("staff@example.com")
    user.user_permissions.add(
        *Permission.objects.filter(codename__in=["view_message", "view_conversation"])
    )
    return client_for(user)


def add_messages(conversation, *contents: str, **fields) -> list[Message]:
    start = conversation.messages.count()
    added = [
        Message.objects.create(
            conversation=conversation,
            seq=start + index + 1,
            role="user" if (start + index) % 2 == 0 else "assistant",
            content=content,
            **fields,
        )
        for index, content in enumerate(contents)
    ]
    link_as_one_path(conversation)
    return added


def act(client: Client, url: str, action: str, objects, reason: str = "breaks the rules"):
    return client.post(
        url,
        {"action": action, "_selected_action": [str(o.pk) for o in objects], "reason": reason},
        follow=True,
    )


# The admin ------------------------------------------------------------------------------------


def test_moderator_hides_a_message_and_the_action_is_recorded(mod_client, moderator, conversation):
    _question, answer = add_messages(conversation, "hello", "something awful")

    listing = mod_client.get(MESSAGES).text
    response = act(mod_client, MESSAGES, "hide_messages", [answer], reason="abusive answer")

    assert 'name="reason"' in listing and 'value="hide_messages"' in listing
    assert "1 message(s) hidden." in response.text
    answer.refresh_from_db()
    assert answer.hidden and answer.moderation_reason == "abusive answer"
    record = ModerationAction.objects.get()
    assert (record.actor, record.kind, record.reason, record.message) == (
        moderator,
        Kind.HIDE,
        "abusive answer",
        answer,
    )
    log = mod_client.get("/admin/conversations/moderationaction/").text
    assert "mod@example.com" in log and "abusive answer" in log


def test_flag_unflag_and_unhide_change_only_what_needs_changing(mod_client, conversation):
    first, second = add_messages(conversation, "one", "two")
    second.hidden = True
    second.save()

    act(mod_client, MESSAGES, "flag_messages", [first, second])
    act(mod_client, MESSAGES, "unflag_messages", [second])
    act(mod_client, MESSAGES, "unhide_messages", [first, second])

    first.refresh_from_db()
    second.refresh_from_db()
    assert (first.flagged, first.hidden, second.flagged, second.hidden) == (
        True,
        False,
        False,
        False,
    )
    kinds = sorted(ModerationAction.objects.values_list("kind", flat=True))
    assert kinds == ["flag", "flag", "unflag", "unhide"]  # unhiding a visible one records nothing


def test_every_moderator_action_needs_a_reason(mod_client, conversation):
    (message,) = add_messages(conversation, "fine")

    response = act(mod_client, MESSAGES, "hide_messages", [message], reason="  ")

    assert "Give a reason" in response.text
    message.refresh_from_db()
    assert not message.hidden and not ModerationAction.objects.exists()


def test_staff_without_moderation_permissions_cannot_moderate(onlooker, conversation, alice):
    (message,) = add_messages(conversation, "fine")

    listing = onlooker.get(MESSAGES)
    act(onlooker, MESSAGES, "hide_messages", [message])
    act(onlooker, CONVERSATIONS, "hide_conversations", [conversation])
    act(onlooker, CONVERSATIONS, "suspend_conversation_owners", [conversation])

    assert listing.status_code == 200 and "hide_messages" not in listing.text
    message.refresh_from_db()
    conversation.refresh_from_db()
    alice.refresh_from_db()
    assert not message.hidden and not conversation.hidden and alice.is_active
    assert not ModerationAction.objects.exists()
    assert onlooker.get(USERS).status_code == 403


def test_staff_without_any_permission_sees_no_conversations(db, conversation):
    client = client_for(make_staff("new-staff@example.com"))

    assert client.get(CONVERSATIONS).status_code == 403
    assert client.get(f"{CONVERSATIONS}{conversation.pk}/change/").status_code == 403


def test_conversation_page_shows_a_read_only_transcript_in_seq_order(mod_client, conversation):
    for seq, content in [(3, "third <b>bold?</b>"), (1, "first"), (2, "second")]:
        Message.objects.create(conversation=conversation, seq=seq, role="user", content=content)
    link_as_one_path(conversation)

    page = mod_client.get(f"{CONVERSATIONS}{conversation.pk}/change/").text

    assert page.index("first") < page.index("second") < page.index("third")
    assert "third &lt;b&gt;bold?&lt;/b&gt;" in page  # text, never markup
    assert 'name="title"' not in page and "<textarea" not in page


def test_the_transcript_shows_an_answers_reasoning_apart_as_text(mod_client, conversation):
    Message.objects.create(conversation=conversation, seq=1, role="user", content="Why?")
    Message.objects.create(
        conversation=conversation,
        seq=2,
        role="assistant",
        content="Because.",
        reasoning="I <i>wonder</i> why.",
    )
    link_as_one_path(conversation)

    page = mod_client.get(f"{CONVERSATIONS}{conversation.pk}/change/").text

    thinking = page.index('<details class="sc-thinking"><summary>Thinking</summary>')
    assert thinking < page.index("I &lt;i&gt;wonder&lt;/i&gt; why.") < page.index("Because.")
    assert "<i>wonder</i>" not in page


def test_the_transcript_shows_every_branch_each_marked_where_it_sits(mod_client, conversation):
    add_branches(conversation)

    page = mod_client.get(f"{CONVERSATIONS}{conversation.pk}/change/").text

    metas = re.findall(r'<p class="sc-meta">(.*?)</p>', page, re.S)
    notes = [re.findall(r"<em>(.*?)</em>", meta) for meta in metas]
    assert notes == [
        [],
        [],
        ["version 1 of 2", "not on the shown branch"],
        ["not on the shown branch"],
        ["version 2 of 2", "follows #2"],
        ["version 1 of 2", "not on the shown branch"],
        ["version 2 of 2", "follows #5"],
    ]
    texts = re.findall(r'<div class="sc-text">(.*?)</div>', page, re.S)
    assert texts == ["q1", "a1", "q2", "a2", "q2 edited", "a2 to the edit", "a2 regenerated"]
    assert page.count("sc-other-branch") == 3


def test_a_message_hidden_on_a_branch_not_shown_is_hidden_there_and_left_out_of_exports(
    mod_client, alice_client, alice, conversation
):
    made = add_branches(conversation)
    off_branch = made["a2"]  # the answer before the edit: its branch is not the shown one

    response = act(mod_client, MESSAGES, "hide_messages", [off_branch], reason="abusive")
    alice_client.post(f"/c/{conversation.pk}/m/{made['q2'].pk}/show")
    page = alice_client.get(f"/c/{conversation.pk}/").text
    mine = "".join(export.export_chunks(export.select(owner=alice)))
    everything = "".join(export.export_chunks(export.select(include_hidden=True)))

    assert "1 message(s) hidden." in response.text
    assert ModerationAction.objects.get().message_id == off_branch.pk
    assert 'class="msg-body plain">q2' in page  # the owner now shows that branch ...
    assert "Hidden by a moderator." in page and ">a2<" not in page  # ... with the answer hidden
    rows = [json.loads(line) for line in mine.splitlines()]
    assert str(off_branch.pk) not in mine and "a2 regenerated" in mine
    (record,) = [row for row in rows if row["type"] == "conversation"]
    assert record["current_leaf"] == str(made["q2"].pk)  # the nearest message the file carries
    assert f'"id":"{off_branch.pk}"' in everything and '"hidden":true' in everything


def test_admin_search_finds_conversations_by_title_content_and_email(mod_client, alice, bob):
    tea = Conversation.objects.create(owner=alice, title="Tea time")
    add_messages(tea, "how to steep oolong")
    Conversation.objects.create(owner=bob, title="Coffee")

    def found(query: str) -> set[str]:
        page = mod_client.get(CONVERSATIONS, {"q": query}).text
        return {title for title in ("Tea time", "Coffee") if title in page}

    assert found("tea") == {"Tea time"}
    assert found("oolong") == {"Tea time"}
    assert found("bob@example") == {"Coffee"}


def test_admin_filters_flagged_hidden_and_role(mod_client, conversation, bob):
    _quiet, loud = add_messages(conversation, "quiet message", "loud message")
    Message.objects.filter(pk=loud.pk).update(flagged=True)
    other = Conversation.objects.create(owner=bob, title="Clean chat")
    add_messages(other, "nothing here", hidden=True)

    flagged = mod_client.get(MESSAGES, {"flagged__exact": "1"}).text
    hidden = mod_client.get(MESSAGES, {"hidden__exact": "1"}).text
    answers = mod_client.get(MESSAGES, {"role__exact": "assistant"}).text
    with_flags = mod_client.get(CONVERSATIONS, {"has_flagged": "yes"}).text

    assert "loud message" in flagged and "quiet message" not in flagged
    assert "nothing here" in hidden and "loud message" not in hidden
    assert "loud message" in answers and "quiet message" not in answers
    assert "Alice&#x27;s chat" in with_flags and "Clean chat" not in with_flags


@pytest.mark.django_db(transaction=True)
async def test_moderator_exports_the_selected_conversations(moderator, conversation, bob):
    await sync_add(conversation, "mine", "hidden one")
    await Message.objects.filter(content="hidden one").aupdate(hidden=True)
    other = await Conversation.objects.acreate(owner=bob, title="Not selected")
    client = AsyncClient()
    await client.aforce_login(moderator)

    response = await client.post(
        CONVERSATIONS,
        {"action": "export_conversations", "_selected_action": [str(conversation.pk)]},
    )
    body = b"".join([chunk async for chunk in response.streaming_content]).decode()

    assert response["Content-Disposition"].startswith("attachment")
    rows = [json.loads(line) for line in body.splitlines()]
    assert [r["id"] for r in rows if r["type"] == "conversation"] == [str(conversation.pk)]
    assert {r["content"] for r in rows if r["type"] == "message"} == {"mine", "hidden one"}
    assert str(other.pk) not in body
    record = await ModerationAction.objects.aget()
    assert (record.kind, record.actor_id) == (Kind.EXPORT, moderator.pk)


# Hidden content -------------------------------------------------------------------------------


def test_a_hidden_message_shows_as_hidden_to_its_owner(alice_client, conversation):
    add_messages(conversation, "my question", "a terrible answer")
    Message.objects.filter(content="a terrible answer").update(hidden=True)

    page = alice_client.get(f"/c/{conversation.pk}/").text

    assert "my question" in page
    assert "Hidden by a moderator." in page and "a terrible answer" not in page


@pytest.mark.django_db(transaction=True)
async def test_a_hidden_message_is_left_out_of_what_the_model_is_sent(
    alice_async, conversation, provider
):
    await sync_add(conversation, "visible question", "visible answer", "hidden question")
    await Message.objects.filter(content="hidden question").aupdate(hidden=True)

    await alice_async.post(
        f"/c/{conversation.pk}/messages",
        send_data("next question"),
        headers={"HX-Request": "true"},
    )
    answer = await Message.objects.filter(role="assistant").order_by("-seq").afirst()
    await wait_until_final(answer.pk)

    assert [turn.content for turn in provider.calls[-1]] == [
        "visible question",
        "visible answer",
        "next question",
    ]


async def sync_add(conversation, *contents: str) -> None:
    await sync_to_async(add_messages)(conversation, *contents)


def test_hiding_a_conversation_takes_it_out_of_the_owners_list_and_stops_sends(
    mod_client, alice_client, conversation
):
    add_messages(conversation, "question")
    act(mod_client, CONVERSATIONS, "hide_conversations", [conversation], reason="illegal")

    listing = alice_client.get("/").text
    page = alice_client.get(f"/c/{conversation.pk}/").text
    send = alice_client.post(
        f"/c/{conversation.pk}/messages", send_data("more"), headers={"HX-Request": "true"}
    )

    assert f"/c/{conversation.pk}/" not in listing
    assert "Hidden by a moderator." in page and 'class="msg-body plain">question' not in page
    assert send.status_code == 403 and "hidden by a moderator" in send.text
    assert conversation.messages.count() == 1
    assert ModerationAction.objects.get().kind == Kind.HIDE_CONVERSATION


# Reports --------------------------------------------------------------------------------------


def test_the_owner_reports_an_answer_and_moderators_find_it_flagged(
    alice_client, alice, conversation, mod_client
):
    _question, answer = add_messages(conversation, "question", "dubious answer")
    url = f"/c/{conversation.pk}/m/{answer.pk}/report"
    assert url in alice_client.get(f"/c/{conversation.pk}/").text  # offered on the bubble

    response = alice_client.post(
        url, {"reason": "It made up a law"}, headers={"HX-Request": "true"}
    )

    assert response.status_code == 200 and "Reported" in response.text
    answer.refresh_from_db()
    assert answer.flagged and answer.moderation_reason == "It made up a law"
    report = ModerationAction.objects.get()
    assert (report.kind, report.actor, report.message) == (Kind.REPORT, alice, answer)
    queue = mod_client.get(MESSAGES, {"flagged__exact": "1"}).text
    assert "dubious answer" in queue and "It made up a law" in queue


def test_a_report_needs_a_reason(alice_client, conversation):
    (message,) = add_messages(conversation, "question")

    response = alice_client.post(f"/c/{conversation.pk}/m/{message.pk}/report", {"reason": " "})

    assert response.status_code == 400
    message.refresh_from_db()
    assert not message.flagged


def test_nobody_reports_a_message_in_someone_elses_conversation(alice_client, bob):
    theirs = Conversation.objects.create(owner=bob, title="Bob's")
    (message,) = add_messages(theirs, "bob's message")

    response = alice_client.post(f"/c/{theirs.pk}/m/{message.pk}/report", {"reason": "spite"})

    assert response.status_code == 404
    message.refresh_from_db()
    assert not message.flagged and not ModerationAction.objects.exists()


# Suspended accounts ---------------------------------------------------------------------------


def login(client: Client, email: str):
    return client.post("/accounts/login/", {"login": email, "password": PASSWORD}, follow=True)


def test_a_suspended_user_cannot_log_in_and_is_told_why(mod_client, alice):
    act(mod_client, USERS, "suspend_selected_users", [alice], reason="spam bot")

    response = login(Client(), "alice@example.com")

    alice.refresh_from_db()
    assert not alice.is_active
    assert response.redirect_chain[-1][0] == "/accounts/inactive/"
    assert "suspended by a moderator" in response.text
    assert not response.wsgi_request.user.is_authenticated
    assert ModerationAction.objects.get().reason == "spam bot"


def test_a_reactivated_user_can_log_in_again(mod_client, alice):
    act(mod_client, USERS, "suspend_selected_users", [alice])
    act(mod_client, USERS, "reactivate_selected_users", [alice])

    response = login(Client(), "alice@example.com")

    assert response.wsgi_request.user == alice
    kinds = list(ModerationAction.objects.order_by("created_at").values_list("kind", flat=True))
    assert kinds == [Kind.SUSPEND, Kind.REACTIVATE]


def test_an_open_session_of_a_suspended_user_is_told_and_ended(alice_client, alice, conversation):
    type(alice).objects.filter(pk=alice.pk).update(is_active=False)

    send = alice_client.post(
        f"/c/{conversation.pk}/messages", send_data("still here?"), headers={"HX-Request": "true"}
    )
    page = alice_client.get(f"/c/{conversation.pk}/")

    assert send.status_code == 403 and send.text == moderation.SUSPENDED
    assert page.status_code == 302 and "/accounts/login/" in page["Location"]  # session ended
    assert not conversation.messages.exists()


def test_a_page_request_from_a_suspended_session_lands_on_the_explanation(alice_client, alice):
    type(alice).objects.filter(pk=alice.pk).update(is_active=False)

    response = alice_client.get("/", follow=True)

    assert response.redirect_chain[0][0] == "/accounts/inactive/"
    assert "suspended by a moderator" in response.text


def test_the_user_form_does_not_suspend_behind_the_actions_back(db, alice):
    admin_user = make_staff("root@example.com")
    admin_user.is_superuser = True
    admin_user.save()

    form = client_for(admin_user).get(f"{USERS}{alice.pk}/change/").text

    assert 'name="username"' in form  # the form itself is there
    assert 'name="is_active"' not in form  # suspending is an action, with a reason, recorded


def test_the_send_service_refuses_a_suspended_owner(alice, conversation):
    type(alice).objects.filter(pk=alice.pk).update(is_active=False)

    with pytest.raises(moderation.SendRefused, match="suspended"):
        send_message(conversation=conversation, content="hi", client_id=None, launch=None)
    assert not conversation.messages.exists()


def test_moderators_cannot_suspend_themselves_or_a_superuser(mod_client, moderator, db):
    boss = make_user("boss@example.com")
    boss.is_superuser = boss.is_staff = True
    boss.save()

    response = act(mod_client, USERS, "suspend_selected_users", [moderator, boss])

    assert "0 user(s) suspended." in response.text
    moderator.refresh_from_db()
    boss.refresh_from_db()
    assert moderator.is_active and boss.is_active


def test_suspending_conversation_owners_from_the_conversation_list(mod_client, alice, conversation):
    act(mod_client, CONVERSATIONS, "suspend_conversation_owners", [conversation])

    alice.refresh_from_db()
    assert not alice.is_active
    assert ModerationAction.objects.get().user == alice


# Download my data -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fmt", "content_type", "extension"),
    [
        ("jsonl", "application/x-ndjson", "jsonl"),
        ("json", "application/json", "json"),
        ("csv", "text/csv", "csv"),
        ("markdown", "text/markdown", "md"),
    ],
)
@pytest.mark.django_db(transaction=True)
async def test_download_my_data_streams_only_my_own_visible_messages(
    alice_async, conversation, bob, fmt, content_type, extension
):
    await sync_add(conversation, "my words", "a hidden answer")
    await Message.objects.filter(content="a hidden answer").aupdate(hidden=True)
    theirs = await Conversation.objects.acreate(owner=bob, title="Bob's secret chat")
    await sync_add(theirs, "bob's words")

    response = await alice_async.get("/me/data/download", {"format": fmt})
    body = b"".join([chunk async for chunk in response.streaming_content]).decode()

    assert response.status_code == 200 and response["Content-Type"].startswith(content_type)
    assert response["Content-Disposition"] == (
        f'attachment; filename="streamchat-my-data.{extension}"'
    )
    assert "my words" in body and "Alice" in body
    assert "a hidden answer" not in body
    assert "bob" not in body.lower()


@pytest.mark.django_db(transaction=True)
async def test_download_my_data_refuses_an_unknown_format(alice_async):
    response = await alice_async.get("/me/data/download", {"format": "xml"})

    assert response.status_code == 400


def test_my_data_page_links_every_format_and_needs_a_login(alice_client, client):
    page = alice_client.get("/me/data").text

    for fmt in ("jsonl", "json", "csv", "markdown"):
        assert f"/me/data/download?format={fmt}" in page
    assert client.get("/me/data/download").status_code == 302
