"""Edit and branch: an edit or a regenerate adds a version; the page shows one path."""

from __future__ import annotations

import re
import uuid

import pytest
from asgiref.sync import sync_to_async

from conversations.models import Conversation, Message
from tests.fakes import Hang, words
from tests.streams import send_data, wait_until_final

pytestmark = pytest.mark.django_db(transaction=True)

HTMX = {"HX-Request": "true"}


async def ask(client, conversation, content: str) -> tuple[Message, Message]:
    """Send `content`; the question and its answer, once the answer is final."""
    response = await client.post(f"/c/{conversation.pk}/messages", send_data(content), headers=HTMX)
    assert response.status_code == 200, response.content
    answer = await Message.objects.filter(conversation=conversation).alatest("seq")
    question = await Message.objects.aget(pk=answer.reply_to_id)
    return question, await wait_until_final(answer.pk)


async def edit(client, message: Message, content: str, client_id=None):
    return await client.post(
        f"/c/{message.conversation_id}/m/{message.pk}/edit",
        send_data(content, client_id),
        headers=HTMX,
    )


async def show(client, message: Message):
    return await client.post(f"/c/{message.conversation_id}/m/{message.pk}/show", headers=HTMX)


def shown_texts(html: str) -> list[str]:
    """The text of each message bubble, in page order (the pending-bubble template is empty)."""
    bodies = re.findall(r'<div class="msg-body[^"]*"[^>]*>(.*?)</div>', html, re.S)
    return [text for body in bodies if (text := re.sub(r"<[^>]+>", "", body).strip())]


async def page(client, conversation) -> str:
    response = await client.get(f"/c/{conversation.pk}/")
    assert response.status_code == 200
    return response.content.decode()


async def latest(conversation) -> Message:
    return await Message.objects.filter(conversation=conversation).alatest("seq")


# ---- editing ----------------------------------------------------------------------------


async def test_an_edit_adds_a_version_with_a_new_answer_and_keeps_the_original(
    alice_async, conversation, provider
):
    provider.scripts = [words("About cats."), words("About dogs.")]
    question, answer = await ask(alice_async, conversation, "Tell me about cats")

    response = await edit(alice_async, question, "Tell me about dogs")

    assert response.status_code == 200
    new_answer = await wait_until_final((await latest(conversation)).pk)
    edited = await Message.objects.aget(pk=new_answer.reply_to_id)
    assert (edited.content, edited.parent_id, edited.seq) == ("Tell me about dogs", None, 3)
    assert (new_answer.parent_id, new_answer.seq) == (edited.pk, 4)
    # The model answered the edited text, without the original branch.
    assert [(t.role, t.content) for t in provider.calls[-1]] == [("user", "Tell me about dogs")]
    body = await page(alice_async, conversation)
    assert shown_texts(body) == ["Tell me about dogs", "About dogs."]
    assert "2 / 2" in body and 'aria-label="Previous version"' in body
    assert await Message.objects.filter(pk__in=[question.pk, answer.pk]).acount() == 2


async def test_the_response_to_an_edit_is_the_new_branch_for_the_transcript(
    alice_async, conversation, provider
):
    provider.scripts = [words("First."), words("Second."), [Hang()]]
    q1, _ = await ask(alice_async, conversation, "one")
    q2, _ = await ask(alice_async, conversation, "two")

    response = await edit(alice_async, q1, "one, edited")

    body = response.content.decode()
    assert "one, edited" in body and "two" not in shown_texts(body)
    assert "sse-connect" in body  # the new answer streams in place
    assert q2.pk  # still stored, under the original


async def test_repeating_an_edit_with_the_same_client_id_stores_one_version(
    alice_async, conversation, provider
):
    provider.scripts = [words("A."), words("B.")]
    question, _ = await ask(alice_async, conversation, "original")
    client_id = uuid.uuid4()

    first = await edit(alice_async, question, "edited", client_id)
    await wait_until_final((await latest(conversation)).pk)
    again = await edit(alice_async, question, "edited", client_id)

    assert first.status_code == again.status_code == 200
    assert await conversation.messages.filter(content="edited").acount() == 1
    assert await conversation.messages.acount() == 4


async def test_editing_while_an_answer_streams_is_refused_and_stores_nothing(
    alice_async, conversation, provider
):
    provider.scripts = [words("Done."), [Hang()]]
    question, _ = await ask(alice_async, conversation, "first")
    await alice_async.post(f"/c/{conversation.pk}/messages", send_data("second"), headers=HTMX)

    response = await edit(alice_async, question, "first, edited")

    assert response.status_code == 409
    assert response.content.decode() == "An answer is still being written: stop it, then edit."
    assert not await conversation.messages.filter(content="first, edited").aexists()


@pytest.mark.parametrize(
    ("content", "error"),
    [("   ", "Type a message first."), ("x" * 10_001, "at most 10000 characters")],
)
async def test_a_bad_edit_shows_the_error_in_the_form_and_stores_nothing(
    alice_async, conversation, provider, content, error
):
    question, _ = await ask(alice_async, conversation, "original")

    response = await edit(alice_async, question, content)

    assert response.status_code == 422
    assert response["HX-Retarget"] == f"#msg-{question.pk}"
    assert error in response.content.decode()
    assert await conversation.messages.acount() == 2


async def test_the_edit_form_opens_in_place_with_the_text_and_cancel_puts_the_bubble_back(
    alice_async, conversation, provider
):
    question, _ = await ask(alice_async, conversation, "Some <b>text</b>")
    url = f"/c/{conversation.pk}/m/{question.pk}"

    form = (await alice_async.get(f"{url}/edit", headers=HTMX)).content.decode()
    bubble = (await alice_async.get(f"{url}/", headers=HTMX)).content.decode()
    standalone = await alice_async.get(f"{url}/edit")

    assert f'id="msg-{question.pk}"' in form and "Some &lt;b&gt;text&lt;/b&gt;</textarea>" in form
    assert "Save and send" in form and "Enter saves, Esc cancels" in form
    assert f'id="msg-{question.pk}"' in bubble and ">Edit</a>" in bubble
    assert standalone.status_code == 200 and "Edit your message" in standalone.content.decode()


async def test_an_answer_cannot_be_edited(alice_async, conversation, provider):
    _, answer = await ask(alice_async, conversation, "hello")

    assert (await edit(alice_async, answer, "rewritten")).status_code == 404
    assert await conversation.messages.acount() == 2


async def test_without_htmx_an_edit_redirects_to_the_conversation(
    alice_async, conversation, provider
):
    question, _ = await ask(alice_async, conversation, "hello")

    response = await alice_async.post(
        f"/c/{conversation.pk}/m/{question.pk}/edit", send_data("hello again")
    )

    assert response.status_code == 302 and response["Location"] == f"/c/{conversation.pk}/"
    await wait_until_final((await latest(conversation)).pk)


# ---- versions -----------------------------------------------------------------------------


async def test_switching_versions_shows_that_branch_and_is_remembered(
    alice_async, conversation, provider
):
    provider.scripts = [words("Cats purr."), words("Cats sleep."), words("Dogs bark.")]
    question, _ = await ask(alice_async, conversation, "cats")
    await ask(alice_async, conversation, "more cats")
    await edit(alice_async, question, "dogs")
    await wait_until_final((await latest(conversation)).pk)

    response = await show(alice_async, question)

    assert response.status_code == 200
    expected = ["cats", "Cats purr.", "more cats", "Cats sleep."]
    assert shown_texts(response.content.decode()) == expected
    body = await page(alice_async, conversation)  # a reload
    assert shown_texts(body) == expected and "1 / 2" in body


async def test_a_send_after_switching_continues_the_branch_shown(
    alice_async, conversation, provider
):
    provider.scripts = [words("Red."), words("Blue."), words("Green.")]
    question, red = await ask(alice_async, conversation, "a colour")
    await edit(alice_async, question, "another colour")
    await wait_until_final((await latest(conversation)).pk)
    await show(alice_async, question)

    follow_up, _ = await ask(alice_async, conversation, "why?")

    assert follow_up.parent_id == red.pk
    assert [t.content for t in provider.calls[-1]] == ["a colour", "Red.", "why?"]
    seqs = [m.seq async for m in conversation.messages.order_by("seq")]
    assert seqs == list(range(1, 7))  # creation order, unique


async def test_regenerate_adds_a_version_and_the_model_never_sees_the_old_one(
    alice_async, conversation, provider
):
    provider.scripts = [words("First try."), words("Second try."), words("Fine.")]
    question, first = await ask(alice_async, conversation, "hello")

    response = await alice_async.post(f"/c/{conversation.pk}/m/{first.pk}/retry", headers=HTMX)
    second = await wait_until_final((await latest(conversation)).pk)
    await ask(alice_async, conversation, "thanks")

    assert (second.parent_id, second.reply_to_id) == (question.pk, question.pk)
    assert f'id="msg-{second.pk}"' in response.content.decode()
    assert "2 / 2" in response.content.decode()
    assert [t.content for t in provider.calls[-1]] == ["hello", "Second try.", "thanks"]
    assert "Replaced by a later answer" not in await page(alice_async, conversation)


async def test_an_older_version_of_the_last_answer_can_be_regenerated_again(
    alice_async, conversation, provider
):
    provider.scripts = [words("One."), words("Two."), words("Three.")]
    _, first = await ask(alice_async, conversation, "count")
    await alice_async.post(f"/c/{conversation.pk}/m/{first.pk}/retry", headers=HTMX)
    await wait_until_final((await latest(conversation)).pk)
    await show(alice_async, first)

    await alice_async.post(f"/c/{conversation.pk}/m/{first.pk}/retry", headers=HTMX)
    third = await wait_until_final((await latest(conversation)).pk)

    assert third.content == "Three." and third.parent_id == first.parent_id
    assert "3 / 3" in await page(alice_async, conversation)


async def test_an_answer_not_at_the_end_of_the_branch_cannot_be_regenerated(
    alice_async, conversation, provider
):
    _, first = await ask(alice_async, conversation, "one")
    await ask(alice_async, conversation, "two")

    response = await alice_async.post(f"/c/{conversation.pk}/m/{first.pk}/retry", headers=HTMX)

    assert response.status_code == 409
    assert await conversation.messages.acount() == 4


async def test_failed_and_stopped_answers_stay_as_versions_in_their_state(
    alice_async, conversation, provider
):
    provider.scripts = [[Hang()], words("Better.")]
    await alice_async.post(f"/c/{conversation.pk}/messages", send_data("hi"), headers=HTMX)
    stopped = await latest(conversation)
    await alice_async.post(f"/c/{conversation.pk}/m/{stopped.pk}/stop", headers=HTMX)
    stopped = await wait_until_final(stopped.pk)
    await alice_async.post(f"/c/{conversation.pk}/m/{stopped.pk}/retry", headers=HTMX)
    await wait_until_final((await latest(conversation)).pk)

    response = await show(alice_async, stopped)

    body = response.content.decode()
    assert stopped.status == "stopped" and "Stopped" in body and "1 / 2" in body


async def test_a_switch_reaches_the_other_tabs_of_the_conversation(
    alice_async, alice_second_device, conversation, provider
):
    from tests.test_live_sync import open_tab

    provider.scripts = [words("Sun."), words("Moon.")]
    question, _ = await ask(alice_async, conversation, "day")
    await edit(alice_async, question, "night")
    await wait_until_final((await latest(conversation)).pk)
    last_seq = (await latest(conversation)).seq
    socket, _ = await open_tab(alice_second_device, conversation, after_seq=last_seq)

    await show(alice_async, question)

    frame = await socket.receive_from(timeout=5)
    assert '<section id="transcript" hx-swap-oob="innerHTML">' in frame
    assert shown_texts(frame) == ["day", "Sun."]
    await socket.disconnect()


# ---- ownership ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "suffix"), [("get", "/"), ("get", "/edit"), ("post", "/edit"), ("post", "/show")]
)
async def test_someone_elses_message_is_404_on_every_branch_route(
    alice_async, bob, provider, method, suffix
):
    bobs = await Conversation.objects.acreate(owner=bob, title="Bob's")
    question = await Message.objects.acreate(conversation=bobs, seq=1, role="user", content="B")
    await sync_to_async(
        lambda: Conversation.objects.filter(pk=bobs.pk).update(current_leaf=question)
    )()

    url = f"/c/{bobs.pk}/m/{question.pk}{suffix}"
    response = await getattr(alice_async, method)(url, send_data("mine now"), headers=HTMX)

    assert response.status_code == 404
    fresh = await Conversation.objects.aget(pk=bobs.pk)
    assert fresh.current_leaf_id == question.pk and await bobs.messages.acount() == 1


# ---- the path, a page at a time -----------------------------------------------------------


def build_tree(conversation, shape: list[tuple[str, int | None]]) -> list[Message]:
    """Messages in seq order, each (text, index of its parent in `shape` or None); the
    conversation shows the last one."""
    made: list[Message] = []
    for seq, (text, parent) in enumerate(shape, start=1):
        made.append(
            Message.objects.create(
                conversation=conversation,
                seq=seq,
                role="user" if text.startswith("q") else "assistant",
                content=text,
                parent=made[parent] if parent is not None else None,
            )
        )
    Conversation.objects.filter(pk=conversation.pk).update(current_leaf=made[-1])
    return made


@pytest.mark.django_db
def test_load_earlier_pages_through_the_branch_shown_only(alice_client, conversation, settings):
    settings.CHAT = {**settings.CHAT, "MESSAGES_PER_PAGE": 2}
    build_tree(
        conversation,
        [("q1", None), ("a1", 0), ("q2 old", 1), ("a2 old", 2), ("q2", 1), ("a2", 4)],
    )

    first = alice_client.get(f"/c/{conversation.pk}/").content.decode()
    earlier = alice_client.get(f"/c/{conversation.pk}/?before=5", headers=HTMX).content.decode()

    assert shown_texts(first) == ["q2", "a2"] and "Load earlier messages" in first
    assert shown_texts(earlier) == ["q1", "a1"] and "Load earlier messages" not in earlier


@pytest.mark.django_db
def test_the_models_context_is_the_path_without_hidden_or_failed_messages(conversation):
    from conversations.branches import context_rows

    made = build_tree(
        conversation,
        [("q1", None), ("a1 failed", 0), ("a1", 0), ("q2 other", 2), ("q2", 2), ("a2", 4)],
    )
    Message.objects.filter(pk=made[1].pk).update(status="error")
    Message.objects.filter(pk=made[4].pk).update(hidden=True)

    assert context_rows(made[5].pk, limit=10) == [
        ("user", "q1"),
        ("assistant", "a1"),
        ("assistant", "a2"),
    ]
    assert context_rows(made[5].pk, limit=2) == [("assistant", "a1"), ("assistant", "a2")]
