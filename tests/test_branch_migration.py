"""Migration 0003 turns each conversation as stored before branches into one path."""

from __future__ import annotations

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

from conversations.branches import shown_path

BEFORE = [("conversations", "0002_moderation_and_export")]
AFTER = [("conversations", "0003_branches")]


def migrate(targets=None):
    """Migrate to `targets` (None: the latest migrations); the app registry as of then."""
    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    targets = targets or executor.loader.graph.leaf_nodes()
    executor.migrate(targets)
    return executor.loader.project_state(targets).apps


@pytest.fixture
def latest_schema_after():
    """The tests after this one need the schema of today's models back."""
    yield
    migrate()


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("latest_schema_after")
def test_replaced_answers_become_versions_of_the_answer_that_replaced_them(alice):
    old = migrate(BEFORE)
    Conversation = old.get_model("conversations", "Conversation")
    Message = old.get_model("conversations", "Message")
    chat = Conversation.objects.create(owner_id=alice.pk, title="before branches")
    q1 = Message.objects.create(conversation=chat, seq=1, role="user", content="q1")
    failed = Message.objects.create(
        conversation=chat, seq=2, role="assistant", status="error", reply_to=q1
    )
    replaced = Message.objects.create(
        conversation=chat, seq=3, role="assistant", content="meh", reply_to=q1
    )
    kept = Message.objects.create(
        conversation=chat, seq=4, role="assistant", content="good", reply_to=q1
    )
    q2 = Message.objects.create(conversation=chat, seq=5, role="user", content="q2")
    a2 = Message.objects.create(
        conversation=chat, seq=6, role="assistant", content="a2", reply_to=q2
    )
    empty = Conversation.objects.create(owner_id=alice.pk, title="nothing yet")

    new = migrate(AFTER)

    Message = new.get_model("conversations", "Message")
    parents = dict(Message.objects.filter(conversation_id=chat.pk).values_list("pk", "parent_id"))
    assert parents == {
        q1.pk: None,
        failed.pk: q1.pk,
        replaced.pk: q1.pk,
        kept.pk: q1.pk,
        q2.pk: kept.pk,
        a2.pk: q2.pk,
    }
    from conversations.models import Conversation as Current

    migrate()  # the models of today read the columns of later migrations too
    migrated = Current.objects.get(pk=chat.pk)
    assert migrated.current_leaf_id == a2.pk
    tree, path = shown_path(migrated)
    assert path == [q1.pk, kept.pk, q2.pk, a2.pk]
    assert tree.versions(kept.pk).count == 3 and tree.versions(kept.pk).index == 3
    assert Current.objects.get(pk=empty.pk).current_leaf_id is None
