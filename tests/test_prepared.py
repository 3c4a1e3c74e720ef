"""Prepared queries (conversations/prepared.py): the statements every request and send runs,
compiled once. They must read what the ORM reads, on SQLite and on PostgreSQL alike."""

from __future__ import annotations

import datetime as dt
import uuid

import pytest
from asgiref.sync import async_to_sync
from django.conf import settings
from django.contrib.auth import BACKEND_SESSION_KEY
from django.contrib.sessions.models import Session
from django.db import IntegrityError, transaction
from django.db.models import F, Q
from django.db.transaction import TransactionManagementError
from django.http import Http404
from django.utils import timezone

from conversations.auth_backends import RENAMED
from conversations.models import Conversation, Message, Quota
from conversations.prepared import Prepared, PreparedModel, PreparedUpdate, insert_rows
from conversations.selectors import conversation_for, message_for
from conversations.services import sending
from conversations.services.sending import send_message
from conversations.sessions import SessionStore
from conversations.streaming.reading import final_event
from tests.conftest import PASSWORD
from tests.trees import finish


def _concrete(instance) -> dict:
    return {f.attname: getattr(instance, f.attname) for f in type(instance)._meta.concrete_fields}


@pytest.mark.django_db
def test_a_prepared_conversation_is_the_one_the_orm_reads(alice, conversation):
    Conversation.objects.filter(pk=conversation.pk).update(
        title="Trip notes", temperature=0.7, pinned=True, system_prompt="Be brief."
    )
    expected = Conversation.objects.get(pk=conversation.pk)

    for _ in range(2):  # compiled at the first, reused at the second
        found = conversation_for(alice, conversation.pk)
        assert _concrete(found) == _concrete(expected)
        assert type(found.id) is type(expected.id)  # a UUID, though SQLite hands back text
        assert found.updated_at.tzinfo is not None
    assert found._state.db == "default" and not found._state.adding

    found.title = "Renamed"
    found.save(update_fields=["title"])  # an UPDATE of the row read, not a second row
    assert Conversation.objects.get(pk=conversation.pk).title == "Renamed"


@pytest.mark.django_db
def test_someone_elses_or_a_missing_conversation_is_a_404(alice, bob, conversation):
    with pytest.raises(Http404):
        conversation_for(bob, conversation.pk)
    conversation.delete()
    with pytest.raises(Http404):
        conversation_for(alice, conversation.pk)


@pytest.mark.django_db
def test_the_senders_lock_reads_activity_and_quota(alice):
    with transaction.atomic():
        assert sending._lock_user(alice.pk) == sending.Sender(active=True, has_quota=False)
    Quota.objects.create(user=alice, daily_tokens=1000)
    alice.is_active = False
    alice.save()
    with transaction.atomic():
        assert sending._lock_user(alice.pk) == sending.Sender(active=False, has_quota=True)
        assert sending._lock_user(alice.pk + 1000) == sending.Sender(active=False, has_quota=False)


@pytest.mark.django_db(transaction=True)  # each test's own transaction would hide the refusal
def test_a_lock_outside_a_transaction_is_refused_as_the_orm_refuses_it(alice):
    lock = Prepared(
        lambda pk: Conversation.objects.select_for_update().filter(owner_id=pk).values_list("id"),
        pk=Conversation._meta.get_field("owner"),
    )
    if not transaction.get_connection().features.has_select_for_update:
        pytest.skip("SQLite has no FOR UPDATE: the ORM ignores it there")
    with pytest.raises(TransactionManagementError):
        lock.first(pk=alice.pk)  # before it was ever compiled
    with transaction.atomic():
        assert lock.first(pk=alice.pk) is None
    with pytest.raises(TransactionManagementError):
        lock.first(pk=alice.pk)  # and once compiled


@pytest.mark.django_db
def test_a_query_whose_sql_depends_on_the_value_is_refused(alice):
    pk = Conversation._meta.pk
    unused = Prepared(lambda pk: Conversation.objects.values_list("id"), pk=pk)
    with pytest.raises(ValueError, match="0 times"):
        unused.first(pk=alice.pk)
    twice = Prepared(
        lambda pk: Conversation.objects.filter(Q(id=pk) | Q(current_leaf_id=pk)).values_list("id"),
        pk=pk,
    )
    with pytest.raises(ValueError, match="2 times"):
        twice.first(pk=alice.pk)


@pytest.mark.django_db
def test_all_returns_every_matching_row(alice, bob):
    first = Conversation.objects.create(owner=alice, title="a")
    second = Conversation.objects.create(owner=alice, title="b")
    Conversation.objects.create(owner=bob, title="c")
    owned = PreparedModel(
        lambda owner: Conversation.objects.filter(owner_id=owner).order_by("title"),
        owner=Conversation._meta.get_field("owner"),
    )
    assert [c.pk for c in owned.all(owner=alice.pk)] == [first.pk, second.pk]
    assert owned.all(owner=alice.pk + 1000) == []


def _pair(conversation, seq: int) -> list[Message]:
    question = Message(
        conversation=conversation, seq=seq, role="user", content="Hi", client_id=uuid.uuid4()
    )
    answer = Message(
        conversation=conversation, seq=seq + 1, role="assistant", status="streaming",
        reply_to=question, parent=question, provider="demo", model="echo",
    )  # fmt: skip
    return [question, answer]


@pytest.mark.django_db
def test_inserted_rows_are_what_bulk_create_writes(conversation):
    inserted, created = _pair(conversation, 1), _pair(conversation, 3)
    insert_rows(inserted)
    Message.objects.bulk_create(created)

    for mine, orms in zip(inserted, created, strict=True):
        assert not mine._state.adding and mine._state.db == "default"
        assert mine.created_at is not None and mine.updated_at is not None
        row, expected = Message.objects.get(pk=mine.pk), Message.objects.get(pk=orms.pk)
        differ = {"id", "seq", "client_id", "reply_to_id", "parent_id", "created_at", "updated_at"}
        assert {k: v for k, v in _concrete(row).items() if k not in differ} == {
            k: v for k, v in _concrete(expected).items() if k not in differ
        }
        assert row.created_at == mine.created_at  # the instance holds what was written
    assert Message.objects.get(pk=inserted[1].pk).reply_to_id == inserted[0].pk

    inserted[1].content = "Done"
    inserted[1].save()  # an UPDATE of the row inserted, not a second row
    assert Message.objects.filter(conversation=conversation).count() == 4


@pytest.mark.django_db
def test_an_insert_that_breaks_a_constraint_writes_neither_row(conversation):
    insert_rows(_pair(conversation, 1))
    clashing = _pair(conversation, 3)
    clashing[1].seq = 2  # taken: the unique seq refuses the row, and the statement with it
    with pytest.raises(IntegrityError), transaction.atomic():
        insert_rows(clashing)
    assert list(Message.objects.values_list("seq", flat=True)) == [1, 2]


def test_an_insert_of_a_model_with_database_values_is_refused():
    with pytest.raises(ValueError, match="use bulk_create"):
        insert_rows([Quota(daily_tokens=10)])  # its id comes from the database


@pytest.mark.django_db
def test_a_prepared_update_writes_only_the_rows_its_filter_selects(conversation):
    first, second = _pair(conversation, 1), _pair(conversation, 3)
    second[1].status = "complete"
    insert_rows(first)
    insert_rows(second)
    live, done = first[1], second[1]
    final = PreparedUpdate(
        lambda pk: Message.objects.filter(pk=pk, status="streaming"), pk=Message._meta.pk
    )
    values = {"content": "Hello", "status": "complete", "prompt_tokens": 12, "error_id": ""}

    assert final.update(pk=live.pk, values=values) == 1
    assert final.update(pk=done.pk, values={**values, "content": "Overwritten"}) == 0
    assert final.update(pk=live.pk, values=values) == 0  # no longer streaming
    live.refresh_from_db()
    done.refresh_from_db()
    assert (live.content, live.status, live.prompt_tokens) == ("Hello", "complete", 12)
    assert done.content == ""

    again = PreparedUpdate(lambda pk: Message.objects.filter(pk=pk), pk=Message._meta.pk)
    assert again.update(pk=live.pk, values={"prompt_tokens": None, "updated_at": timezone.now()})
    live.refresh_from_db()
    assert live.prompt_tokens is None  # None is a value like any other, not another statement


@pytest.mark.django_db
def test_a_prepared_update_takes_plain_values_on_its_own_table(conversation, alice):
    touch = PreparedUpdate(lambda pk: Conversation.objects.filter(pk=pk), pk=Conversation._meta.pk)
    with pytest.raises(TypeError, match="plain values"):
        touch.update(pk=conversation.pk, values={"title": F("system_prompt")})
    joined = PreparedUpdate(
        lambda name: Conversation.objects.filter(owner__username=name),
        name=alice._meta.get_field("username"),
    )
    with pytest.raises(ValueError, match="own table"):
        joined.update(name=alice.username, values={"title": "x"})
    with pytest.raises(ValueError, match="not a column"):
        touch.update(pk=conversation.pk, values={"messages": None})  # the reverse relation
    assert touch.update(pk=conversation.pk, values={"title": "Kept"}) == 1
    assert Conversation.objects.get(pk=conversation.pk).title == "Kept"


def _login(client, user) -> str:
    assert client.login(username=user.username, password=PASSWORD)
    return client.cookies[settings.SESSION_COOKIE_NAME].value


@pytest.mark.django_db
def test_a_login_lasts_across_requests(client, alice):
    _login(client, alice)
    for _ in range(2):
        assert client.get("/").status_code == 200
        assert client.get("/").wsgi_request.user == alice


@pytest.mark.django_db
def test_an_expired_session_logs_out_and_gets_a_new_key(client, alice):
    key = _login(client, alice)
    Session.objects.filter(session_key=key).update(
        expire_date=timezone.now() - dt.timedelta(seconds=1)
    )
    response = client.get("/")
    assert response.status_code == 302 and "/accounts/login/" in response["Location"]
    assert not response.wsgi_request.user.is_authenticated
    client.get(response["Location"])  # the login page writes a session of its own
    assert client.cookies[settings.SESSION_COOKIE_NAME].value != key


@pytest.mark.django_db
def test_an_unknown_session_key_is_anonymous(client, alice):
    _login(client, alice)
    client.cookies[settings.SESSION_COOKIE_NAME] = "not-a-session-anyone-has-got"
    response = client.get("/")
    assert response.status_code == 302
    assert not response.wsgi_request.user.is_authenticated


@pytest.mark.django_db
def test_a_prepared_message_brings_its_conversation_in_the_same_query(
    alice, bob, conversation, django_assert_num_queries
):
    sent = send_message(conversation=conversation, content="Hi", client_id=None, launch=None)
    answer = finish(sent.assistant_message, "Hello **there**")
    expected = Message.objects.select_related("conversation").get(pk=answer.pk)

    with django_assert_num_queries(1):
        found = message_for(alice, conversation.pk, answer.pk)
        assert found.conversation.title == expected.conversation.title
    assert _concrete(found) == _concrete(expected)
    assert _concrete(found.conversation) == _concrete(expected.conversation)

    for who, in_conversation in ((bob, conversation.pk), (alice, uuid.uuid4())):
        with pytest.raises(Http404):
            message_for(who, in_conversation, answer.pk)


@pytest.mark.django_db
def test_the_last_event_of_an_answer_is_its_saved_bubble(conversation):
    sent = send_message(conversation=conversation, content="Hi", client_id=None, launch=None)
    answer = finish(sent.assistant_message, "Hello **there**")
    event = async_to_sync(final_event)(str(answer.pk))
    assert event.startswith("event: done") and "<strong>there</strong>" in event
    conversation.delete()
    assert async_to_sync(final_event)(str(answer.pk)).startswith("event: done\nid: 0")


def _stored_session(client) -> SessionStore:
    return SessionStore(client.cookies[settings.SESSION_COOKIE_NAME].value)


@pytest.mark.django_db
def test_signing_in_by_email_records_the_apps_backend(client, alice):
    response = client.post("/accounts/login/", {"login": alice.email, "password": PASSWORD})
    assert response.status_code == 302
    backend = _stored_session(client)[BACKEND_SESSION_KEY]
    assert backend == "conversations.auth_backends.AuthenticationBackend"
    assert client.get("/").wsgi_request.user == alice


@pytest.mark.django_db
@pytest.mark.parametrize("old", sorted(RENAMED))
def test_a_session_signed_in_before_the_upgrade_stays_signed_in(client, alice, old):
    _login(client, alice)
    session = _stored_session(client)
    session[BACKEND_SESSION_KEY] = old
    session.save()

    response = client.get("/")
    assert response.status_code == 200 and response.wsgi_request.user == alice
    assert _stored_session(client)[BACKEND_SESSION_KEY] == RENAMED[old]  # renamed once, saved


@pytest.mark.django_db
def test_a_deactivated_account_is_signed_out_at_its_next_request(client, alice):
    _login(client, alice)
    alice.is_active = False
    alice.save()
    response = client.get("/")
    assert response.status_code == 302 and not response.wsgi_request.user.is_authenticated
