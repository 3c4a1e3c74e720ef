"""Live sync: what one tab (or device) does shows up in the user's other open tabs."""

from __future__ import annotations

import asyncio
import json
import re
from urllib.parse import unquote

import pytest
from asgiref.sync import sync_to_async
from channels.testing import WebsocketCommunicator
from django.test import AsyncClient

from chatsite.asgi import application
from conversations.models import Conversation, Message
from conversations.streaming import access
from tests.fakes import words
from tests.streams import send_data, wait_until_final
from tests.trees import link_as_one_path

pytestmark = pytest.mark.django_db(transaction=True)

WAIT = 3  # seconds; a frame normally arrives within milliseconds


def tab(client: AsyncClient | None, *, origin: str = "http://testserver") -> WebsocketCommunicator:
    """One open page's socket, with the browser's session cookie (none for `None`)."""
    headers = [(b"origin", origin.encode())]
    if client is not None:
        headers.append((b"cookie", f"sessionid={client.cookies['sessionid'].value}".encode()))
    return WebsocketCommunicator(application, "/ws/sync/", headers=headers)


async def open_tab(client: AsyncClient, conversation=None, after_seq: int = 0):
    """Connect, say what the page shows, and return the socket and its first frame."""
    socket = tab(client)
    connected, _ = await socket.connect(timeout=WAIT)
    assert connected
    shown = str(conversation.pk) if conversation is not None else None
    await socket.send_to(json.dumps({"conversation": shown, "after_seq": after_seq}))
    return socket, await socket.receive_from(timeout=WAIT)


def message_ids(frame: str) -> list[str]:
    return re.findall(r'<article id="msg-([0-9a-f-]+)"', frame)


async def test_anonymous_socket_is_refused(db):
    socket = tab(None)
    connected, _ = await socket.connect(timeout=WAIT)
    assert not connected


async def test_socket_opened_from_another_site_is_refused(alice_async):
    socket = tab(alice_async, origin="https://evil.example")
    connected, _ = await socket.connect(timeout=WAIT)
    assert not connected


async def test_message_sent_in_one_tab_appears_with_its_streaming_answer_in_the_other(
    alice, alice_async, alice_second_device, provider
):
    provider.scripts = [words("a short answer", pause=0.02)]
    conversation = await Conversation.objects.acreate(owner=alice)  # untitled
    other_tab, _ = await open_tab(alice_second_device, conversation)

    response = await alice_async.post(
        f"/c/{conversation.pk}/messages", send_data("Hello from tab one")
    )
    assert response.status_code == 302
    frame = await other_tab.receive_from(timeout=WAIT)

    user_message, answer = await asyncio.gather(
        Message.objects.aget(conversation=conversation, role="user"),
        Message.objects.aget(conversation=conversation, role="assistant"),
    )
    assert message_ids(frame) == [str(user_message.pk), str(answer.pk)]
    assert 'hx-swap-oob="beforeend:#transcript"' in frame
    assert "Hello from tab one" in frame
    # The answer streams in that tab over its own SSE connection, not over this socket,
    # through a URL signed for that tab's session (so the fast path serves it).
    url = re.search(rf'sse-connect="/c/{conversation.pk}/m/{answer.pk}/stream\?t=([^"]+)"', frame)
    other_session = alice_second_device.cookies["sessionid"].value
    assert access.valid(str(answer.pk), other_session, unquote(url[1]))
    # The first message named the conversation: the other tab's title and sidebar follow.
    assert 'id="chat-title" hx-swap-oob="true"' in frame
    assert "Hello from tab one</span>" in frame

    await wait_until_final(answer.pk)
    assert await other_tab.receive_nothing(timeout=0.3)  # no tokens, no per-token frames
    await other_tab.disconnect()


async def test_tab_showing_another_conversation_gets_only_the_sidebar(
    alice_async, alice_second_device, conversation, provider
):
    elsewhere = await Conversation.objects.acreate(owner=conversation.owner, title="Elsewhere")
    other_tab, _ = await open_tab(alice_second_device, elsewhere)

    await alice_async.post(f"/c/{conversation.pk}/messages", send_data("Not for that tab"))
    frame = await other_tab.receive_from(timeout=WAIT)

    assert message_ids(frame) == []
    assert "#transcript" not in frame
    # The list moves the conversation just written to, to the top.
    assert frame.index(f'id="conv-{conversation.pk}"') < frame.index(f'id="conv-{elsewhere.pk}"')
    await other_tab.disconnect()


async def test_other_users_conversation_gets_nothing(alice_async, bob, conversation, provider):
    bob_client = AsyncClient()
    await bob_client.aforce_login(bob)
    await Message.objects.acreate(conversation=conversation, seq=1, role="user", content="secret")

    bob_tab, first = await open_tab(bob_client, conversation)
    assert message_ids(first) == []
    assert "secret" not in first and "Alice&#x27;s chat" not in first
    assert "This conversation is gone" in first  # the socket's 404

    await alice_async.post(f"/c/{conversation.pk}/messages", send_data("also secret"))
    assert await bob_tab.receive_nothing(timeout=0.5)
    await bob_tab.disconnect()


async def test_reconnecting_tab_gets_the_messages_after_its_last_seq(alice_async, conversation):
    for seq in range(1, 5):
        await Message.objects.acreate(
            conversation=conversation, seq=seq, role="user", content=f"message {seq}"
        )
    await sync_to_async(link_as_one_path)(conversation)
    shown = [m async for m in Message.objects.filter(conversation=conversation).order_by("seq")]

    socket, frame = await open_tab(alice_async, conversation, after_seq=2)

    assert message_ids(frame) == [str(shown[2].pk), str(shown[3].pk)]
    await socket.disconnect()


async def test_tab_too_far_behind_gets_the_latest_page_instead(alice_async, conversation, settings):
    settings.CHAT = {**settings.CHAT, "MESSAGES_PER_PAGE": 2}
    for seq in range(1, 6):
        await Message.objects.acreate(
            conversation=conversation, seq=seq, role="user", content=f"message {seq}"
        )
    await sync_to_async(link_as_one_path)(conversation)

    socket, frame = await open_tab(alice_async, conversation, after_seq=1)

    assert '<section id="transcript" hx-swap-oob="innerHTML">' in frame
    assert "message 4" in frame and "message 5" in frame and "message 3" not in frame
    assert "Load earlier messages" in frame
    await socket.disconnect()


async def test_new_renamed_and_deleted_conversations_reach_every_tabs_list(
    alice_async, alice_second_device, conversation, provider
):
    list_tab, first = await open_tab(alice_second_device)
    assert "Alice&#x27;s chat" in first

    # A new chat's first send creates the conversation (and says so once, plus its messages).
    response = await alice_async.post("/c/new/messages", send_data("A new chat"))
    created = await Conversation.objects.exclude(pk=conversation.pk).aget()
    assert response.status_code == 302
    assert f'id="conv-{created.pk}"' in await list_tab.receive_from(timeout=WAIT)
    assert f'id="conv-{created.pk}"' in await list_tab.receive_from(timeout=WAIT)
    await wait_until_final((await created.messages.aget(role="assistant")).pk)

    await alice_async.post(f"/c/{conversation.pk}/rename", {"title": "Trip to Lisbon"})
    assert "Trip to Lisbon" in await list_tab.receive_from(timeout=WAIT)

    await alice_async.post(f"/c/{conversation.pk}/delete")
    frame = await list_tab.receive_from(timeout=WAIT)
    assert "Trip to Lisbon" not in frame and f'id="conv-{created.pk}"' in frame
    await list_tab.disconnect()


async def test_a_sidebar_opened_past_its_first_page_stays_open_when_a_frame_comes(
    alice, alice_async, settings
):
    """ "Older conversations" showed more of the list: a frame (another tab's send, rename...)
    re-renders the list as far down as the page had it open, not folded back to one page."""
    settings.CHAT = {**settings.CHAT, "CONVERSATIONS_PER_PAGE": 3}
    for n in range(7):
        await Conversation.objects.acreate(owner=alice, title=f"Chat {n}")
    socket = tab(alice_async)
    assert (await socket.connect(timeout=WAIT))[0]

    await socket.send_to(json.dumps({"conversation": None, "after_seq": 0, "listed": 5}))
    opened = await socket.receive_from(timeout=WAIT)
    await socket.send_to(json.dumps({"conversation": None, "after_seq": 0}))
    folded = await socket.receive_from(timeout=WAIT)

    assert opened.count('id="conv-title-') == 6 and 'hx-get="/?page=3"' in opened  # two whole pages
    assert folded.count('id="conv-title-') == 3 and 'hx-get="/?page=2"' in folded
    await socket.disconnect()


async def test_rename_updates_the_title_of_tabs_showing_that_conversation(
    alice_async, alice_second_device, conversation
):
    other_tab, _ = await open_tab(alice_second_device, conversation)

    await alice_async.post(f"/c/{conversation.pk}/rename", {"title": "Trip to Lisbon"})
    frame = await other_tab.receive_from(timeout=WAIT)

    assert re.search(r'id="chat-title" hx-swap-oob="true">\s*<h1>Trip to Lisbon</h1>', frame)
    await other_tab.disconnect()


async def test_tab_showing_a_deleted_conversation_says_it_is_gone(
    alice_async, alice_second_device, conversation
):
    other_tab, _ = await open_tab(alice_second_device, conversation)

    await alice_async.post(f"/c/{conversation.pk}/delete")
    frame = await other_tab.receive_from(timeout=WAIT)

    assert '<main id="main" hx-swap-oob="innerHTML">' in frame
    assert "This conversation is gone" in frame
    await other_tab.disconnect()


async def test_logging_out_closes_that_sessions_sockets_only(alice_async, alice_second_device):
    this_browser, _ = await open_tab(alice_async)
    other_device, _ = await open_tab(alice_second_device)

    response = await alice_async.post("/accounts/logout/")
    assert response.status_code == 302

    closed = await this_browser.receive_output(timeout=WAIT)
    assert closed["type"] == "websocket.close" and closed["code"] == 4401
    assert await other_device.receive_nothing(timeout=0.3)
    await other_device.disconnect()


async def test_suspending_an_account_closes_its_sockets_on_every_device(
    alice, alice_async, alice_second_device, bob
):
    from asgiref.sync import sync_to_async
    from django.contrib.auth import get_user_model

    from conversations.services.moderation import set_users_suspended

    moderator = await get_user_model().objects.acreate(
        username="mod", email="mod@example.com", is_staff=True, is_superuser=True
    )
    sockets = [(await open_tab(client))[0] for client in (alice_async, alice_second_device)]
    bobs_client = AsyncClient()
    await bobs_client.aforce_login(bob)
    bobs_socket, _ = await open_tab(bobs_client)

    await sync_to_async(set_users_suspended)(
        users=get_user_model().objects.filter(pk=alice.pk),
        suspended=True,
        actor=moderator,
        reason="spam",
    )
    for socket in sockets:
        closed = await socket.receive_output(timeout=WAIT)
        assert closed["type"] == "websocket.close" and closed["code"] == 4401
    assert await bobs_socket.receive_nothing(timeout=0.3)
    await bobs_socket.disconnect()


async def test_a_page_that_left_while_its_frame_was_rendered_is_let_go(alice, conversation):
    """A navigation closes the socket mid-render: no traceback in the server's log."""
    from autobahn.exception import Disconnected
    from django.contrib.sessions.backends.db import SessionStore

    from conversations.consumers import SyncConsumer

    async def closed(message: dict) -> None:
        raise Disconnected("Attempt to send on a closed protocol")

    consumer = SyncConsumer()
    consumer.user, consumer.shown, consumer.base_send = alice, conversation.pk, closed
    consumer.scope = {"session": SessionStore()}
    await consumer._push(title_changed=False)
    assert consumer.last_seq == 0
