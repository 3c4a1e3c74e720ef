"""No spinner forever: answers whose generator died are marked interrupted and offered for retry."""

from __future__ import annotations

from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import call_command
from django.utils import timezone

from conversations.models import Message
from conversations.streaming.recovery import interrupt_stale


def live_answer(conversation, seq: int, *, age_seconds: float = 0) -> Message:
    message = Message.objects.create(
        conversation=conversation, seq=seq, role="assistant", status="streaming", content="partial"
    )
    Message.objects.filter(pk=message.pk).update(
        updated_at=timezone.now() - timedelta(seconds=age_seconds)
    )
    return message


@pytest.mark.django_db
def test_start_up_marks_every_live_answer_interrupted(conversation):
    Message.objects.create(conversation=conversation, seq=1, role="user", content="hi")
    left_over = live_answer(conversation, 2)
    out = StringIO()
    call_command("recover_streams", stdout=out)
    left_over.refresh_from_db()
    assert left_over.status == Message.Status.INTERRUPTED
    assert left_over.content == "partial"  # the checkpointed text is kept
    assert "1 interrupted" in out.getvalue()


@pytest.mark.django_db
def test_periodic_sweep_only_takes_answers_without_recent_checkpoints(conversation, settings):
    settings.CHAT = {**settings.CHAT, "STALE_STREAM_SECONDS": 60}
    stale = live_answer(conversation, 1, age_seconds=120)
    fresh = live_answer(conversation, 2, age_seconds=5)
    assert interrupt_stale() == 1
    stale.refresh_from_db()
    fresh.refresh_from_db()
    assert stale.status == Message.Status.INTERRUPTED
    assert fresh.status == Message.Status.STREAMING


@pytest.mark.django_db
def test_interrupted_answer_renders_with_retry(alice_client, conversation):
    Message.objects.create(conversation=conversation, seq=1, role="user", content="hi")
    live_answer(conversation, 2)
    call_command("recover_streams", stdout=StringIO())
    page = alice_client.get(f"/c/{conversation.pk}/").content.decode()
    assert "Interrupted" in page
    assert 'class="btn btn-small retry"' in page
    assert "sse-connect" not in page  # nothing left spinning


@pytest.mark.django_db(transaction=True)
async def test_sweep_keeps_an_answer_still_waiting_for_its_first_token(
    alice_async, conversation, provider, settings
):
    """A cold model can take longer than the stale threshold to start: not dead, just slow."""
    import asyncio

    from asgiref.sync import sync_to_async

    from conversations.streaming.recovery import sweep
    from conversations.streaming.runtime import get_runtime
    from tests.fakes import Delta, Sleep
    from tests.streams import send_data, wait_until_final

    settings.CHAT = {**settings.CHAT, "STALE_STREAM_SECONDS": 0.3, "FIRST_TOKEN_TIMEOUT": 5}
    provider.scripts = [[Sleep(0.8), Delta("finally")]]
    await alice_async.post(f"/c/{conversation.pk}/messages", send_data("hi"))
    answer = await Message.objects.aget(conversation=conversation, role="assistant")
    for _ in range(3):  # the janitor's rounds while the model is silent
        await asyncio.sleep(0.25)
        local = [s.message_id for s in get_runtime().hub.streams.values() if s.task is not None]
        await sync_to_async(sweep)(generating_here=local)
    final = await wait_until_final(answer.pk)
    assert (final.status, final.content) == ("complete", "finally")
