"""The full-text index behind search (conversations/search.py), one per backend.

Nothing in the models: each backend gets its own index, created by migration 0012_search.

- PostgreSQL: a tsvector column on messages with a GIN index, filled for finished messages
  by their owner's next search, never by the write path (an answer's final write stays as
  cheap as before: bench/searchcost.py), and a GIN expression index on titles.
- SQLite: two external-content FTS5 tables (message text, titles) kept in sync by triggers;
  a live answer enters the index when it finishes, as on PostgreSQL.

Both use no stemming and no accent folding ('simple'; unicode61 remove_diacritics 0), so the
same words match on both.

On SQLite a later migration that remakes a table (most AddField/AlterField do: new table,
copy, drop, rename) drops its triggers and renumbers its rowids; `repair`, run after every
`migrate`, rebuilds the index when a trigger is missing.
"""

from __future__ import annotations

from django.db.backends.base.base import BaseDatabaseWrapper

LIVE = "('pending', 'streaming')"

# Filled by search, not by the writes: a finished message is never changed again (edits
# and regenerates are new messages), so the answer's final write and a send's insert leave
# search_vector NULL, and the next search of its owner indexes it (`INDEX_PENDING`, through
# the small partial index of the rows not indexed yet). The migration indexes the messages
# already there.
POSTGRES_FORWARD = [
    "ALTER TABLE conversations_message ADD COLUMN search_vector tsvector",
    f"""UPDATE conversations_message SET search_vector = to_tsvector('simple'::regconfig, content)
        WHERE status NOT IN {LIVE}""",
    """CREATE INDEX message_search ON conversations_message USING gin (search_vector)
        WHERE search_vector IS NOT NULL""",
    """CREATE INDEX message_unindexed ON conversations_message (conversation_id)
        WHERE search_vector IS NULL""",
    """CREATE INDEX conversation_search ON conversations_conversation
        USING gin (to_tsvector('simple'::regconfig, title))""",
]
POSTGRES_BACKWARD = [
    "DROP INDEX IF EXISTS conversation_search",
    "DROP INDEX IF EXISTS message_unindexed",
    "DROP INDEX IF EXISTS message_search",
    "ALTER TABLE conversations_message DROP COLUMN IF EXISTS search_vector",
]

# The first key of the advisory lock a search holds while it indexes its owner's messages.
LOCK = 20_0601

# One owner's finished messages not indexed yet (search.search runs it first).
INDEX_PENDING = f"""
UPDATE conversations_message m SET search_vector = to_tsvector('simple'::regconfig, m.content)
FROM conversations_conversation c
WHERE m.search_vector IS NULL AND m.status NOT IN {LIVE}
    AND c.id = m.conversation_id AND c.owner_id = %s
"""

# The index holds finished messages only: each trigger adds or removes a row exactly as it
# was indexed (an external-content table must be told the old text to forget it).
SQLITE_FORWARD = [
    """CREATE VIRTUAL TABLE conversations_message_fts USING fts5(
        content, content='conversations_message', content_rowid='rowid',
        tokenize='unicode61 remove_diacritics 0')""",
    f"""INSERT INTO conversations_message_fts(rowid, content)
        SELECT rowid, content FROM conversations_message WHERE status NOT IN {LIVE}""",
    f"""CREATE TRIGGER conversations_message_fts_insert AFTER INSERT ON conversations_message
        WHEN new.status NOT IN {LIVE} BEGIN
        INSERT INTO conversations_message_fts(rowid, content) VALUES (new.rowid, new.content);
        END""",
    f"""CREATE TRIGGER conversations_message_fts_delete AFTER DELETE ON conversations_message
        WHEN old.status NOT IN {LIVE} BEGIN
        INSERT INTO conversations_message_fts(conversations_message_fts, rowid, content)
            VALUES ('delete', old.rowid, old.content);
        END""",
    f"""CREATE TRIGGER conversations_message_fts_update AFTER UPDATE OF content, status
        ON conversations_message
        WHEN old.content IS NOT new.content
            OR (old.status IN {LIVE}) IS NOT (new.status IN {LIVE}) BEGIN
        INSERT INTO conversations_message_fts(conversations_message_fts, rowid, content)
            SELECT 'delete', old.rowid, old.content WHERE old.status NOT IN {LIVE};
        INSERT INTO conversations_message_fts(rowid, content)
            SELECT new.rowid, new.content WHERE new.status NOT IN {LIVE};
        END""",
    """CREATE VIRTUAL TABLE conversations_conversation_fts USING fts5(
        title, content='conversations_conversation', content_rowid='rowid',
        tokenize='unicode61 remove_diacritics 0')""",
    """INSERT INTO conversations_conversation_fts(rowid, title)
        SELECT rowid, title FROM conversations_conversation""",
    """CREATE TRIGGER conversations_conversation_fts_insert AFTER INSERT
        ON conversations_conversation BEGIN
        INSERT INTO conversations_conversation_fts(rowid, title) VALUES (new.rowid, new.title);
        END""",
    """CREATE TRIGGER conversations_conversation_fts_delete AFTER DELETE
        ON conversations_conversation BEGIN
        INSERT INTO conversations_conversation_fts(conversations_conversation_fts, rowid, title)
            VALUES ('delete', old.rowid, old.title);
        END""",
    """CREATE TRIGGER conversations_conversation_fts_update AFTER UPDATE OF title
        ON conversations_conversation WHEN old.title IS NOT new.title BEGIN
        INSERT INTO conversations_conversation_fts(conversations_conversation_fts, rowid, title)
            VALUES ('delete', old.rowid, old.title);
        INSERT INTO conversations_conversation_fts(rowid, title) VALUES (new.rowid, new.title);
        END""",
]
SQLITE_BACKWARD = [
    "DROP TRIGGER IF EXISTS conversations_conversation_fts_update",
    "DROP TRIGGER IF EXISTS conversations_conversation_fts_delete",
    "DROP TRIGGER IF EXISTS conversations_conversation_fts_insert",
    "DROP TABLE IF EXISTS conversations_conversation_fts",
    "DROP TRIGGER IF EXISTS conversations_message_fts_update",
    "DROP TRIGGER IF EXISTS conversations_message_fts_delete",
    "DROP TRIGGER IF EXISTS conversations_message_fts_insert",
    "DROP TABLE IF EXISTS conversations_message_fts",
]


TRIGGERS = (
    "conversations_message_fts_insert",
    "conversations_message_fts_delete",
    "conversations_message_fts_update",
    "conversations_conversation_fts_insert",
    "conversations_conversation_fts_delete",
    "conversations_conversation_fts_update",
)


def install(connection: BaseDatabaseWrapper) -> None:
    statements = {"postgresql": POSTGRES_FORWARD, "sqlite": SQLITE_FORWARD}
    with connection.cursor() as cursor:
        for sql in statements.get(connection.vendor, []):
            cursor.execute(sql)


def uninstall(connection: BaseDatabaseWrapper) -> None:
    statements = {"postgresql": POSTGRES_BACKWARD, "sqlite": SQLITE_BACKWARD}
    with connection.cursor() as cursor:
        for sql in statements.get(connection.vendor, []):
            cursor.execute(sql)


def repair(connection: BaseDatabaseWrapper) -> bool:
    """SQLite: the index rebuilt from the tables if a trigger is missing (a table remade by
    a later migration, which also renumbered the rowids the index refers to). True when it
    was rebuilt."""
    if connection.vendor != "sqlite":
        return False
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT name FROM sqlite_master WHERE type = 'trigger' AND name LIKE %s",
            ["conversations_%_fts_%"],
        )
        present = {name for (name,) in cursor.fetchall()}
        # No index table: the migration is not applied (or was reversed); nothing to repair.
        cursor.execute("SELECT 1 FROM sqlite_master WHERE name = 'conversations_message_fts'")
        if present >= set(TRIGGERS) or cursor.fetchone() is None:
            return False
    rebuild(connection)
    return True


def rebuild(connection: BaseDatabaseWrapper) -> None:
    """The index made anew from the tables (SQLite after a manual VACUUM, which may renumber
    rowids: `manage.py shell -c "from django.db import connection; from conversations
    import search_index; search_index.rebuild(connection)"`)."""
    uninstall(connection)
    install(connection)
