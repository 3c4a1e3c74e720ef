"""Token quotas: per day and month, per user and group, the tightest wins; a send over one is
refused with when it resets, and stores nothing. Usage is counted once per answer."""

from __future__ import annotations

import datetime as dt
import uuid

import pytest
from django.contrib.auth.models import Group
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from conversations.models import Conversation, Message, Quota, UsageDay
from conversations.services import quotas, sending
from tests.streams import send_data, wait_until_final

pytestmark = pytest.mark.django_db(transaction=True)

NOON = dt.datetime(2026, 12, 7, 12, 0, tzinfo=dt.UTC)


def today() -> dt.date:
    return timezone.now().astimezone(dt.UTC).date()


def used(user, tokens: int, *, day: dt.date | None = None, model: str = "fake/fake-model"):
    return UsageDay.objects.create(
        user=user, day=day or today(), model=model, answers=1, completion_tokens=tokens
    )


def post(client, conversation):
    return client.post(
        f"/c/{conversation.pk}/messages", send_data("hi"), headers={"HX-Request": "true"}
    )


def test_under_the_daily_quota_a_send_goes_through(alice_client, conversation, provider):
    Quota.objects.create(user=conversation.owner, daily_tokens=100)
    used(conversation.owner, 99)
    assert post(alice_client, conversation).status_code == 200


def test_over_the_daily_quota_a_send_is_refused_with_its_reset_time(
    alice_client, conversation, provider
):
    Quota.objects.create(user=conversation.owner, daily_tokens=100)
    used(conversation.owner, 100)
    refused = post(alice_client, conversation)
    assert refused.status_code == 429
    assert refused["X-Refusal"] == "quota"
    tomorrow = today() + dt.timedelta(days=1)
    text = refused.content.decode()
    assert "daily quota of 100 tokens" in text
    assert f"resets at 00:00 UTC on {tomorrow.day} {tomorrow:%B %Y}" in text
    midnight = dt.datetime.combine(tomorrow, dt.time(), tzinfo=dt.UTC)
    assert abs(int(refused["Retry-After"]) - (midnight - timezone.now()).total_seconds()) < 5
    assert not Message.objects.filter(conversation=conversation).exists()


def test_a_new_chat_over_quota_creates_no_conversation(alice_client, alice, provider):
    Quota.objects.create(user=alice, daily_tokens=10)
    used(alice, 10)
    refused = alice_client.post("/c/new/messages", send_data("hi"), headers={"HX-Request": "true"})
    assert refused.status_code == 429
    assert not Conversation.objects.filter(owner=alice).exists()
    assert not Message.objects.exists()


def test_monthly_quota_counts_every_day_of_the_month_and_resets_on_the_first(alice):
    Quota.objects.create(user=alice, monthly_tokens=1000)
    used(alice, 600, day=dt.date(2026, 12, 1))
    used(alice, 300, day=dt.date(2026, 12, 6))
    used(alice, 5000, day=dt.date(2026, 11, 30))  # last month: not counted
    quotas.check_quota(user_id=alice.pk, now=NOON)
    used(alice, 100, day=dt.date(2026, 12, 7))
    with pytest.raises(quotas.OverQuota) as refused:
        quotas.check_quota(user_id=alice.pk, now=NOON)
    assert refused.value.resets_at == dt.datetime(2027, 1, 1, tzinfo=dt.UTC)
    assert "monthly quota of 1,000 tokens" in refused.value.message
    assert "00:00 UTC on 1 January 2027 (in 24 d 12 h)" in refused.value.message


def test_yesterdays_usage_does_not_count_against_the_daily_quota(alice):
    Quota.objects.create(user=alice, daily_tokens=100)
    used(alice, 500, day=dt.date(2026, 12, 6))
    quotas.check_quota(user_id=alice.pk, now=NOON)


def test_blank_limits_are_unlimited(alice):
    Quota.objects.create(user=alice)
    used(alice, 10**9, day=NOON.date())
    quotas.check_quota(user_id=alice.pk, now=NOON)


def test_a_group_quota_applies_to_its_members_and_the_tightest_limit_wins(alice, bob):
    staff = Group.objects.create(name="Interns")
    alice.groups.add(staff)
    Quota.objects.create(group=staff, daily_tokens=50)
    Quota.objects.create(user=alice, daily_tokens=1000, monthly_tokens=10_000)
    used(alice, 60, day=NOON.date())
    used(bob, 60, day=NOON.date())
    with pytest.raises(quotas.OverQuota, match="daily quota of 50 tokens"):
        quotas.check_quota(user_id=alice.pk, now=NOON)
    quotas.check_quota(user_id=bob.pk, now=NOON)  # not in the group, no quota of his own
    limits = quotas.limits_for(user_id=alice.pk, now=NOON)
    assert limits == quotas.Limits(daily=50, monthly=10_000, day_used=60, month_used=60)


def test_a_users_own_tighter_quota_wins_over_the_groups(alice):
    staff = Group.objects.create(name="Staff")
    alice.groups.add(staff)
    Quota.objects.create(group=staff, daily_tokens=1000)
    Quota.objects.create(user=alice, daily_tokens=10)
    used(alice, 10, day=NOON.date())
    with pytest.raises(quotas.OverQuota, match="daily quota of 10 tokens"):
        quotas.check_quota(user_id=alice.pk, now=NOON)


def _send_queries(conversation) -> list[str]:
    """The statements of one send (no generation), its answer then marked finished."""
    with CaptureQueriesContext(connection) as queries:
        sending.send_message(
            conversation=conversation, content="hi", client_id=uuid.uuid4(), launch=None
        )
    Message.objects.filter(status="streaming").update(status="complete")
    return [query["sql"] for query in queries]


def test_a_send_without_a_quota_runs_no_query_more_and_with_one_one(conversation):
    _send_queries(conversation)  # the first send of a conversation also sets its title
    without = _send_queries(conversation)
    assert not [sql for sql in without if "conversations_usageday" in sql]
    Quota.objects.create(user=conversation.owner, daily_tokens=10**6)
    with_quota = _send_queries(conversation)
    assert len(with_quota) == len(without) + 1
    assert [sql for sql in with_quota if "conversations_usageday" in sql]


def test_a_group_quota_is_seen_at_the_send(conversation):
    interns = Group.objects.create(name="Interns")
    conversation.owner.groups.add(interns)
    Quota.objects.create(group=interns, daily_tokens=3)
    used(conversation.owner, 3)
    with pytest.raises(quotas.OverQuota):
        _send_queries(conversation)
    assert not Message.objects.exists()


def test_deleting_the_last_quota_lifts_it_at_once(alice):
    quota = Quota.objects.create(user=alice, daily_tokens=1)
    used(alice, 1)
    with pytest.raises(quotas.OverQuota):
        quotas.check_quota(user_id=alice.pk)
    quota.delete()
    quotas.check_quota(user_id=alice.pk)


def test_a_retry_over_quota_is_refused_and_stores_nothing(alice_client, conversation):
    Message.objects.create(conversation=conversation, seq=1, role="user", content="hi")
    answer = Message.objects.create(
        conversation=conversation, seq=2, role="assistant", status="complete", content="yo"
    )
    Conversation.objects.filter(pk=conversation.pk).update(current_leaf=answer)
    Quota.objects.create(user=conversation.owner, daily_tokens=5)
    used(conversation.owner, 5)
    refused = alice_client.post(
        f"/c/{conversation.pk}/m/{answer.pk}/retry", headers={"HX-Request": "true"}
    )
    assert refused.status_code == 429
    assert "daily quota" in refused.content.decode()
    assert Message.objects.filter(conversation=conversation).count() == 2


async def test_an_answer_adds_its_tokens_to_the_days_usage_once(
    alice_async, conversation, provider
):
    for _ in range(2):
        response = await post(alice_async, conversation)
        assert response.status_code == 200
        answer = await Message.objects.filter(role="assistant").alatest("seq")
        answer = await wait_until_final(answer.pk)
    row = await UsageDay.objects.aget(user_id=conversation.owner_id)
    assert (row.day, row.model) == (today(), "fake/fake-model")
    assert row.answers == 2
    assert row.completion_tokens == 2 * answer.completion_tokens == 12


async def test_a_usage_row_that_cannot_be_written_never_costs_the_answer(
    alice_async, conversation, provider, monkeypatch, caplog
):
    def broken(**_kwargs):
        raise RuntimeError("usage table locked")

    monkeypatch.setattr("conversations.streaming.generation.record_usage", broken)
    response = await post(alice_async, conversation)
    assert response.status_code == 200
    answer = await Message.objects.filter(role="assistant").alatest("seq")
    answer = await wait_until_final(answer.pk)
    assert answer.status == Message.Status.COMPLETE
    assert answer.content and answer.completion_tokens
    assert not await UsageDay.objects.filter(user_id=conversation.owner_id).aexists()
    assert "usage not recorded" in caplog.text


async def test_answers_of_two_models_add_up_in_a_row_each(alice_async, conversation, provider):
    await UsageDay.objects.acreate(
        user_id=conversation.owner_id, day=today(), model="other/m", answers=3, prompt_tokens=7
    )
    response = await post(alice_async, conversation)
    answer = await wait_until_final(
        (await Message.objects.filter(role="assistant").alatest("seq")).pk
    )
    assert response.status_code == 200
    rows = {r.model: r async for r in UsageDay.objects.filter(user_id=conversation.owner_id)}
    assert (rows["other/m"].answers, rows["other/m"].prompt_tokens) == (3, 7)  # untouched
    assert rows["fake/fake-model"].answers == 1
    assert rows["fake/fake-model"].completion_tokens == answer.completion_tokens


def test_the_usage_page_shows_the_users_own_days_and_models(alice_client, alice, bob):
    used(alice, 123, model="openai/gpt-4o-mini")
    used(alice, 45, model="local/llama", day=today() - dt.timedelta(days=3))
    used(alice, 999, day=today() - dt.timedelta(days=40))  # older than 30 days
    used(bob, 777)
    Quota.objects.create(user=alice, daily_tokens=1000)
    page = alice_client.get("/me/usage").content.decode()
    assert "openai/gpt-4o-mini" in page and "123" in page
    assert "local/llama" in page
    assert "999" not in page and "777" not in page
    assert "168 in all" in page
    assert "Today (UTC): 123 tokens of 1000" in page


def test_the_usage_page_needs_a_login(client):
    response = client.get("/me/usage")
    assert response.status_code == 302
    assert "/accounts/login/" in response["Location"]


def test_the_data_page_links_to_the_usage_page(alice_client):
    assert 'href="/me/usage"' in alice_client.get("/me/data").content.decode()


def test_a_quota_is_for_a_user_or_a_group_not_both(alice):
    from django.db import IntegrityError

    with pytest.raises(IntegrityError):
        Quota.objects.create(user=alice, group=Group.objects.create(name="g"))


def test_staff_set_a_group_quota_in_the_admin(client, alice):
    admin = type(alice).objects.create_superuser("root", "root@example.com", "pw-pw-pw-123")
    client.force_login(admin)
    interns = Group.objects.create(name="Interns")
    both = client.post(
        "/admin/conversations/quota/add/",
        {"user": alice.pk, "group": interns.pk, "daily_tokens": "", "monthly_tokens": "5000"},
    )
    assert "A quota is for a user or for a group, not both." in both.content.decode()
    made = client.post(
        "/admin/conversations/quota/add/",
        {"group": interns.pk, "daily_tokens": "", "monthly_tokens": "5000"},
    )
    assert made.status_code == 302
    quota = Quota.objects.get()
    assert (quota.group, quota.daily_tokens, quota.monthly_tokens) == (interns, None, 5000)
