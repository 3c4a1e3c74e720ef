"""The page's one WebSocket: live sync of a user's tabs and devices. Never tokens.

The page says which conversation it shows and the last seq it has (on every connect and
reconnect); the socket answers with what the page lacks, then with each change made
elsewhere, as htmx out-of-band swaps. Authentication and ownership are checked as on HTTP.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from uuid import UUID

from autobahn.exception import Disconnected  # Daphne's; uvicorn raises an OSError
from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncWebsocketConsumer
from django.conf import settings
from django.contrib.auth.models import User
from django.http import Http404
from django.template.loader import render_to_string

from conversations.branches import shown_path
from conversations.selectors import conversation_for, conversation_pages, transcript
from conversations.services import sync

log = logging.getLogger(__name__)

# A private close code: htmx's ws extension reconnects only after abnormal closes (1006...).
LOGGED_OUT = 4401


class SyncConsumer(AsyncWebsocketConsumer):
    shown: UUID | None = None
    last_seq = 0
    listed = 0  # conversations the page's sidebar shows ("Older conversations" adds some)

    async def connect(self) -> None:
        self.user: User = self.scope["user"]
        if not self.user.is_authenticated:
            await self.close()  # refused at the handshake (HTTP 403)
            return
        self.group = sync.user_group(self.user.pk)
        await self.channel_layer.group_add(self.group, self.channel_name)
        await self.accept()

    async def disconnect(self, code: int) -> None:
        if hasattr(self, "group"):
            await self.channel_layer.group_discard(self.group, self.channel_name)

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        """`{"conversation": id or null, "after_seq": n, "listed": n}`: what the page shows
        and has."""
        try:
            shows = json.loads(text_data or "")
            self.shown = UUID(shows["conversation"]) if shows.get("conversation") else None
            self.last_seq = max(0, int(shows.get("after_seq") or 0))
            self.listed = max(0, int(shows.get("listed") or 0))
        except (ValueError, TypeError, KeyError, AttributeError):
            return
        # Renewed on each of these: channel layers expire group membership (a day by default).
        await self.channel_layer.group_add(self.group, self.channel_name)
        await self._push(title_changed=False)

    async def sync_messages(self, event: dict[str, str]) -> None:
        await self._push(title_changed=False)

    async def sync_conversation(self, event: dict[str, str]) -> None:
        # The title bar shows the name, the pin and the archived state.
        retitled = event["change"] in ("renamed", "pinned", "archived")
        await self._push(title_changed=retitled and event["conversation_id"] == str(self.shown))

    async def sync_logout(self, event: dict[str, str]) -> None:
        if event["session_key"] == self.scope["session"].session_key:
            await self.close(code=LOGGED_OUT)

    async def sync_suspended(self, event: dict[str, str]) -> None:
        await self.close(code=LOGGED_OUT)

    async def _push(self, *, title_changed: bool) -> None:
        frame = await render_frame(
            self.user,
            self.shown,
            after_seq=self.last_seq,
            title_changed=title_changed,
            listed=self.listed,
            session_key=self.scope["session"].session_key,
        )
        if frame.gone:
            self.shown = None
        self.last_seq = frame.last_seq
        try:
            await self.send(text_data=frame.html)
        except (Disconnected, OSError):  # the page left while its frame was rendered
            log.debug("sync frame for a closed socket dropped")


@dataclass
class Frame:
    html: str
    last_seq: int
    gone: bool


@database_sync_to_async
def render_frame(
    user: User,
    shown: UUID | None,
    *,
    after_seq: int,
    title_changed: bool,
    listed: int = 0,
    session_key: str | None = None,
) -> Frame:
    """The sidebar (as far down as the page has it open: `listed`), and what the page
    showing `shown` lacks after `after_seq`; live answers' stream URLs signed for the
    socket's session (`session_key`)."""
    context: dict[str, object] = {
        "page": conversation_pages(user, shown=listed),
        "listed": listed,  # the page drops a list rendered for fewer than it now shows
        "session_key": session_key,
    }
    last_seq = after_seq
    conversation = None
    if shown is not None:
        try:
            conversation = conversation_for(user, shown)
        except Http404:  # deleted (or never this user's: the same answer as HTTP's 404)
            context["gone"] = True
    if conversation is not None:
        limit = settings.CHAT["MESSAGES_PER_PAGE"]
        tree, path = shown_path(conversation)
        messages, too_many = transcript(conversation, after_seq=after_seq, limit=limit, tree=tree)
        # The page's last message is off the path shown now (a version switched, an edit
        # made elsewhere), or it is too far behind to append: the latest page replaces it.
        off_path = after_seq > 0 and after_seq not in {tree.seq[pk] for pk in path}
        if too_many or off_path:
            messages, context["has_earlier"] = transcript(conversation, limit=limit, tree=tree)
            context["replace_transcript"] = True
        if messages:
            last_seq = messages[-1].seq
        context.update(
            conversation=conversation,
            current=conversation,
            messages=messages,
            # The first message names the conversation.
            title_changed=title_changed or any(m.seq == 1 for m in messages),
        )
    html = render_to_string("conversations/_sync.html", context)
    return Frame(html=html, last_seq=last_seq, gone=bool(context.get("gone")))
