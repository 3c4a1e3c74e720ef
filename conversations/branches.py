"""The message tree: which path a conversation shows, and the versions at each step.

Every message has a `parent` (the message it follows; none for the first). Siblings are
versions of one step: an edited message is a sibling of the one edited, a regenerated answer
a sibling of the answer it regenerates. The page shows one path, root to leaf: the path to
`Conversation.current_leaf`. `seq` stays the creation order, so along any path it rises.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from uuid import UUID

from django.db import connection

from conversations.models import Conversation, Message


@dataclass(frozen=True)
class Versions:
    """Where a message stands among its siblings: `index` of `count` (from 1)."""

    index: int
    count: int
    previous: UUID | None
    next: UUID | None


def versions_among(message_id: UUID, siblings: Sequence[UUID]) -> Versions | None:
    """`siblings` in seq order, `message_id` among them; None when it has none."""
    if len(siblings) < 2:
        return None
    at = siblings.index(message_id)
    return Versions(
        index=at + 1,
        count=len(siblings),
        previous=siblings[at - 1] if at > 0 else None,
        next=siblings[at + 1] if at + 1 < len(siblings) else None,
    )


class Tree:
    """A conversation's tree from one query of (id, parent, seq): no message text."""

    def __init__(self, rows: Iterable[tuple[UUID, UUID | None, int]]) -> None:
        self.parent: dict[UUID, UUID | None] = {}
        self.seq: dict[UUID, int] = {}
        self.children: dict[UUID | None, list[UUID]] = {}
        for pk, parent_id, seq in sorted(rows, key=lambda row: row[2]):
            self.parent[pk] = parent_id
            self.seq[pk] = seq
            self.children.setdefault(parent_id, []).append(pk)

    @classmethod
    def of(cls, conversation: Conversation) -> Tree:
        return cls(conversation.messages.values_list("id", "parent_id", "seq"))

    def __contains__(self, pk: object) -> bool:
        return pk in self.parent

    def path_to(self, leaf: UUID | None) -> list[UUID]:
        path: list[UUID] = []
        node = leaf
        while node is not None:
            path.append(node)
            node = self.parent[node]
        path.reverse()
        return path

    def latest_leaf_below(self, pk: UUID) -> UUID:
        """The most recently created message of `pk`'s subtree: always a leaf, since a child
        is created after its parent."""
        latest, stack = pk, [pk]
        while stack:
            node = stack.pop()
            if self.seq[node] > self.seq[latest]:
                latest = node
            stack.extend(self.children.get(node, ()))
        return latest

    def shown_leaf(self, current_leaf_id: UUID | None) -> UUID | None:
        if current_leaf_id in self:
            return self.latest_leaf_below(current_leaf_id)  # type: ignore[arg-type]
        return max(self.seq, key=self.seq.__getitem__, default=None)  # the latest message

    def versions(self, pk: UUID) -> Versions | None:
        return versions_among(pk, self.children[self.parent[pk]])


def shown_path(conversation: Conversation, tree: Tree | None = None) -> tuple[Tree, list[UUID]]:
    tree = tree or Tree.of(conversation)
    return tree, tree.path_to(tree.shown_leaf(conversation.current_leaf_id))


def branch_notes(tree: Tree, shown: Iterable[UUID]) -> dict[UUID, list[str]]:
    """How each message's place reads in a transcript of every branch in seq order (the
    admin's, the Markdown export's): "version 2 of 3" among its siblings, "follows #N"
    where it does not follow the message listed before it, "not on the shown branch"."""
    shown = set(shown)
    notes: dict[UUID, list[str]] = {}
    for siblings in tree.children.values():  # each in seq order
        if len(siblings) > 1:
            for index, pk in enumerate(siblings, start=1):
                notes[pk] = [f"version {index} of {len(siblings)}"]
    previous: UUID | None = None
    for pk in sorted(tree.seq, key=tree.seq.__getitem__):
        here = notes.setdefault(pk, [])
        parent = tree.parent[pk]
        if parent is not None and parent != previous:
            here.append(f"follows #{tree.seq[parent]}")
        if pk not in shown:
            here.append("not on the shown branch")
        previous = pk
    return notes


def with_versions(message: Message) -> Message:
    """Sets `message.versions` (None without siblings): one query, for a lone bubble."""
    siblings = Message.objects.filter(
        conversation_id=message.conversation_id, parent_id=message.parent_id
    ).order_by("seq")
    message.versions = versions_among(message.pk, list(siblings.values_list("id", flat=True)))
    return message


def one_path(rows: Iterable[tuple[UUID, str, UUID | None]]) -> dict[UUID, UUID | None]:
    """Parents for messages written before branches existed, given (id, role, reply_to)
    in seq order: each follows the one before it, except that an answer follows the
    question it answers, so the answers a regenerate replaced become its versions.
    (Migration 0003 applies the same rule, frozen there.)"""
    parents: dict[UUID, UUID | None] = {}
    previous: UUID | None = None
    for pk, role, reply_to in rows:
        answers_known = role == Message.Role.ASSISTANT and reply_to in parents
        parents[pk] = reply_to if answers_known else previous
        previous = pk
    return parents


# The path above a message, walked up through `parent`, newest first; the depth bound keeps
# one walk cheap in a very long conversation (rows left out below are filtered anyway).
_CONTEXT_SQL = """
WITH RECURSIVE path(id, parent_id, depth) AS (
    SELECT id, parent_id, 0 FROM conversations_message WHERE id = %s
    UNION ALL
    SELECT m.id, m.parent_id, path.depth + 1
    FROM conversations_message m JOIN path ON m.id = path.parent_id
    WHERE path.depth < %s
)
SELECT m.role, m.content, m.id, m.attachment_count
FROM path JOIN conversations_message m ON m.id = path.id
WHERE NOT m.hidden AND (m.content <> '' OR m.attachment_count > 0)
    AND NOT (m.role = %s AND m.status IN (%s, %s, %s))
ORDER BY path.depth
LIMIT %s
"""


@dataclass(frozen=True)
class ContextRow:
    role: str
    content: str
    id: UUID
    attachment_count: int


def context_rows(message_id: UUID | None, *, limit: int) -> list[tuple[str, str]]:
    """(role, content) of the path from the root down to `message_id`, oldest first, at
    most `limit`: the model's context never includes another branch. Hidden messages,
    empty ones and failed answers are left out, as they are not part of the conversation."""
    return [(row.role, row.content) for row in context_path(message_id, limit=limit)]


def context_path(message_id: UUID | None, *, limit: int) -> list[ContextRow]:
    """context_rows, with each message's id and how many files it has (same statement)."""
    if message_id is None:
        return []
    pk_field = Message._meta.pk
    pk = pk_field.get_db_prep_value(message_id, connection)
    with connection.cursor() as cursor:
        failed = [Message.Role.ASSISTANT, *Message.RETRYABLE_STATUSES]
        cursor.execute(_CONTEXT_SQL, [pk, limit * 4, *failed, limit])
        rows = cursor.fetchall()
    rows.reverse()
    return [
        ContextRow(role, content, pk_field.to_python(row_id), count or 0)
        for role, content, row_id, count in rows
    ]
