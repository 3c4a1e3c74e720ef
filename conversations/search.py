"""Search over a user's own conversations: titles and message text, ranked, with snippets.

The index is each backend's own (conversations/search_index.py): PostgreSQL full-text search
(tsvector, GIN; a search first indexes its owner's messages finished since the last one) or
SQLite FTS5 (kept by triggers). The query never reaches either parser as syntax: it is cut
into words here (letters and digits; everything else separates them, as both tokenizers do),
and each word is quoted, so quotes, `*`, `NEAR`, `&`, `|`, `!`, parentheses or SQL read as
plain text. Every word must match (AND); the last one, while typed, also matches longer
words it begins ("stre" finds "streaming"), once it has PREFIX_FROM characters.

A conversation is one result: titled with the words (first), then by its best message's
rank (ts_rank / bm25), then the most recently active. Never another user's, never one a
moderator hid, never a hidden message; archived conversations are included and marked.
Snippets are built here from the stored text as parts (text, hit) that the template escapes
and marks: no HTML is produced in Python.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass, field

from django.contrib.auth.models import User
from django.db import connection, transaction

from conversations import search_index
from conversations.models import Conversation, Message

MAX_QUERY_CHARS = 200
MAX_TERMS = 12
PREFIX_FROM = 3  # a shorter last word matches whole words only (one letter matches all)
RESULTS = 20
# Messages ranked at most: a word in most of 200,000 messages would otherwise have each of
# them read from disk and ranked (240 ms, bench/searchcost.py). Past it, the best of the
# first MATCH_CAP found, and the results say so.
MATCH_CAP = 1000
SNIPPET_CHARS = 160

WORD = re.compile(r"[^\W_]+")
SPACE = re.compile(r"\s+")


@dataclass(frozen=True)
class Part:
    text: str
    hit: bool = False


@dataclass
class Result:
    conversation: Conversation
    message: Message | None  # the best matching message; None when only the title matched
    title: list[Part]
    snippet: list[Part]


@dataclass
class Search:
    query: str
    results: list[Result] = field(default_factory=list)
    error: str = ""
    capped: bool = False  # more messages matched than MATCH_CAP: the best of those found

    @property
    def cap(self) -> int:
        return MATCH_CAP

    @property
    def searched(self) -> bool:
        return bool(self.query.strip()) and not self.error


@dataclass(frozen=True)
class Terms:
    words: tuple[str, ...]
    prefix: bool  # the last word also matches longer words

    def matches(self, token: str) -> bool:
        token = token.lower()
        if token in self.words[:-1] or token == self.words[-1]:
            return True
        return self.prefix and token.startswith(self.words[-1])


def terms_of(query: str) -> Terms | None:
    words = tuple(dict.fromkeys(word.lower() for word in WORD.findall(query)))[:MAX_TERMS]
    if not words:
        return None
    return Terms(words, prefix=len(words[-1]) >= PREFIX_FROM)


def search(user: User, query: str) -> Search:
    """The user's conversations matching `query`, best first (at most RESULTS)."""
    if len(query) > MAX_QUERY_CHARS:
        return Search(query[:MAX_QUERY_CHARS], error=too_long_message())
    terms = terms_of(query)
    if terms is None:
        return Search(query)  # nothing to search for: no results, no error
    rows = _ranked(user.pk, terms)
    conversation_ids = [_uuid(row[0]) for row in rows]
    message_ids = [_uuid(row[1]) for row in rows if row[1] is not None]
    # The SQL already kept to the owner's; these filters repeat it where the objects load.
    conversations = Conversation.objects.filter(owner=user, hidden=False).in_bulk(conversation_ids)
    messages = Message.objects.filter(conversation__owner=user, hidden=False).in_bulk(message_ids)
    results = []
    for conversation_id, message_id, _title_hit, _matched in rows:
        conversation = conversations.get(_uuid(conversation_id))
        if conversation is None:
            continue
        message = messages.get(_uuid(message_id)) if message_id is not None else None
        results.append(
            Result(
                conversation=conversation,
                message=message,
                title=highlight(conversation.display_title, terms, width=None),
                snippet=highlight(message.content, terms) if message else [],
            )
        )
    capped = bool(rows) and rows[0][3] >= MATCH_CAP
    return Search(query, results, capped=capped)


def too_long_message() -> str:
    return f"Search for at most {MAX_QUERY_CHARS} characters."


def highlight(text: str, terms: Terms, width: int | None = SNIPPET_CHARS) -> list[Part]:
    """`text` (whitespace collapsed) as parts, the words that match marked as hits: all of
    it when `width` is None, else about `width` characters around the first hit."""
    text = SPACE.sub(" ", text).strip()
    spans = [m.span() for m in WORD.finditer(text) if terms.matches(m.group())]
    start, end = 0, len(text)
    if width is not None and len(text) > width:
        first = spans[0][0] if spans else 0
        start = max(0, min(first - width // 3, len(text) - width))
        end = start + width
        # Whole words at both edges.
        if start > 0:
            space = text.find(" ", start, first if spans else end)
            start = space + 1 if space >= 0 else start
        if end < len(text):
            space = text.rfind(" ", max(start, spans[0][1] if spans else start), end)
            end = space if space > 0 else end
    parts: list[Part] = []
    if start > 0:
        parts.append(Part("… "))
    at = start
    for left, right in spans:
        if right <= start or left >= end:
            continue
        left, right = max(left, start), min(right, end)
        if left > at:
            parts.append(Part(text[at:left]))
        parts.append(Part(text[left:right], hit=True))
        at = right
    if at < end:
        parts.append(Part(text[at:end]))
    if end < len(text):
        parts.append(Part(" …"))
    return parts


def _uuid(value: object) -> uuid.UUID:
    return Message._meta.pk.to_python(value)  # SQLite's are text


# Both backends answer (conversation id, best message id or NULL, title matched), ordered
# alike; `rank` is lower for a better match on both (bm25 is; ts_rank is negated, and
# divided by the log of the text's length, as bm25 also weighs long texts down).
_RANKED = """
WITH hits AS ({hits}),
best AS (
    SELECT conversation_id, message_id, rank FROM (
        SELECT conversation_id, message_id, rank, ROW_NUMBER() OVER (
            PARTITION BY conversation_id ORDER BY rank, seq DESC) AS n
        FROM hits) ranked
    WHERE n = 1
),
titled AS ({titled}),
found AS (SELECT conversation_id AS id FROM best UNION SELECT id FROM titled)
SELECT c.id, best.message_id, titled.id IS NOT NULL AS title_hit,
    (SELECT count(*) FROM hits) AS matched
FROM found
JOIN conversations_conversation c ON c.id = found.id
LEFT JOIN best ON best.conversation_id = c.id
LEFT JOIN titled ON titled.id = c.id
ORDER BY title_hit DESC, COALESCE(best.rank, 0), c.updated_at DESC, c.id
LIMIT %s
"""

_POSTGRES_HITS = """
SELECT m.conversation_id, m.id AS message_id, m.seq,
       -ts_rank(m.search_vector, to_tsquery('simple', %s), 1) AS rank
FROM conversations_message m
JOIN conversations_conversation c ON c.id = m.conversation_id
WHERE m.search_vector @@ to_tsquery('simple', %s)
    AND c.owner_id = %s AND NOT c.hidden AND NOT m.hidden
LIMIT %s
"""
_POSTGRES_TITLED = """
SELECT c.id FROM conversations_conversation c
WHERE to_tsvector('simple'::regconfig, c.title) @@ to_tsquery('simple', %s)
    AND c.owner_id = %s AND NOT c.hidden
"""
_SQLITE_HITS = """
SELECT m.conversation_id, m.id AS message_id, m.seq,
       bm25(conversations_message_fts) AS rank
FROM conversations_message_fts
JOIN conversations_message m ON m.rowid = conversations_message_fts.rowid
JOIN conversations_conversation c ON c.id = m.conversation_id
WHERE conversations_message_fts MATCH %s
    AND c.owner_id = %s AND NOT c.hidden AND NOT m.hidden
LIMIT %s
"""
_SQLITE_TITLED = """
SELECT c.id FROM conversations_conversation_fts
JOIN conversations_conversation c ON c.rowid = conversations_conversation_fts.rowid
WHERE conversations_conversation_fts MATCH %s AND c.owner_id = %s AND NOT c.hidden
"""


def _ranked(owner_id: int, terms: Terms) -> list[tuple[object, object, bool, int]]:
    params: list[str | int]
    if connection.vendor == "postgresql":
        _index_pending(owner_id)
        query = _tsquery(terms)
        sql = _RANKED.format(hits=_POSTGRES_HITS, titled=_POSTGRES_TITLED)
        params = [query, query, owner_id, MATCH_CAP, query, owner_id, RESULTS]
    else:
        query = _fts5_query(terms)
        sql = _RANKED.format(hits=_SQLITE_HITS, titled=_SQLITE_TITLED)
        params = [query, owner_id, MATCH_CAP, query, owner_id, RESULTS]
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchall()


def _index_pending(owner_id: int) -> None:
    """The owner's messages finished since their last search, indexed. One at a time per
    owner (an advisory lock): two searches at once (two tabs, a keystroke's request the
    browser dropped but the server still runs) would otherwise update the same rows in
    different orders, and could deadlock."""
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SELECT pg_advisory_xact_lock(%s, %s)", [search_index.LOCK, owner_id])
        cursor.execute(search_index.INDEX_PENDING, [owner_id])


def _tsquery(terms: Terms) -> str:
    """`'a' & 'b' & 'c':*`: each word quoted (words hold only letters and digits)."""
    quoted = [f"'{word}'" for word in terms.words]
    if terms.prefix:
        quoted[-1] += ":*"
    return " & ".join(quoted)


def _fts5_query(terms: Terms) -> str:
    """`"a" "b" "c"*`: each word a quoted string, so nothing in it is FTS5 syntax."""
    quoted = [f'"{word}"' for word in terms.words]
    if terms.prefix:
        quoted[-1] += "*"
    return " ".join(quoted)
