"""A conversation's title from its first message: plain text, no Markdown syntax."""

from __future__ import annotations

import re

ELLIPSIS = "…"
TITLE_CHARS = 60  # a title from the first message, or written by the model

# Line-level syntax, removed where a line starts (after the line's own indentation).
_FENCE = re.compile(r"^\s*(`{3,}|~{3,}).*$", re.MULTILINE)  # the fence line, not the code
_RULE = re.compile(r"^\s*([-*_])(\s*\1){2,}\s*$", re.MULTILINE)
_HEADING = re.compile(r"^\s*#{1,6}(\s+|$)(.*?)(\s+#+)?\s*$", re.MULTILINE)
_SETEXT = re.compile(r"^\s*(=+|-+)\s*$", re.MULTILINE)  # the underline of a heading
_QUOTE = re.compile(r"^\s*(>\s?)+", re.MULTILINE)
_TABLE_RULE = re.compile(r"^\s*\|?(\s*:?-+:?\s*\|)+\s*(:?-+:?\s*)?$", re.MULTILINE)
_TABLE_ROW = re.compile(r"^\s*\|.*$", re.MULTILINE)  # a row: its cells, without the pipes
_LIST = re.compile(r"^\s*([-*+]|\d{1,9}[.)])\s+(\[[ xX]\]\s+)?", re.MULTILINE)
# Inline syntax.
_IMAGE = re.compile(r"!\[[^\]]*\]\([^)]*\)|!\[[^\]]*\]\[[^\]]*\]")
_LINK = re.compile(r"\[([^\]]+)\]\([^)]*\)|\[([^\]]+)\]\[[^\]]*\]")
_AUTOLINK = re.compile(r"<((?:https?|mailto):[^>\s]+)>")
_CODE = re.compile(r"(`+)(.+?)\1", re.DOTALL)
_STRONG = re.compile(r"(\*\*|__)(?=\S)(.+?)(?<=\S)\1", re.DOTALL)
# One * or _; an underscore only around a word, so snake_case keeps its underscores.
_EMPHASIS = re.compile(r"\*(?=\S)(.+?)(?<=\S)\*|(?<!\w)_(?=\S)(.+?)(?<=\S)_(?!\w)", re.DOTALL)
_STRIKE = re.compile(r"~~(?=\S)(.+?)(?<=\S)~~", re.DOTALL)
_ESCAPE = re.compile(r"\\([\\`*_{}\[\]()#+\-.!>~|])")


def plain_title(text: str, limit: int) -> str:
    """The text of a Markdown message as a one-line title of at most `limit` characters:
    headings, emphasis, code ticks, images and list markers gone, links as their text,
    whitespace collapsed, cut at a word boundary with an ellipsis. Empty for empty text."""
    plain = _strip_markdown(text)
    if not plain:  # nothing but syntax (an image, a rule): the text as typed beats no title
        plain = " ".join(text.split())
    return _truncate(plain, limit)


def _strip_markdown(text: str) -> str:
    text = _FENCE.sub("", text)
    text = _RULE.sub("", text)
    text = _HEADING.sub(r"\2", text)
    text = _SETEXT.sub("", text)
    text = _QUOTE.sub("", text)
    text = _TABLE_RULE.sub("", text)
    text = _TABLE_ROW.sub(lambda m: m.group(0).replace("|", " "), text)
    text = _LIST.sub("", text)
    text = _IMAGE.sub("", text)
    text = _LINK.sub(lambda m: m.group(1) or m.group(2), text)
    text = _AUTOLINK.sub(r"\1", text)
    # Code and escaped characters first: they are literal, their * and _ are not emphasis.
    literals: list[str] = []

    def keep(literal: str) -> str:
        literals.append(literal)
        return f"\x00{len(literals) - 1}\x00"

    text = _CODE.sub(lambda m: keep(m.group(2).strip()), text)
    text = _ESCAPE.sub(lambda m: keep(m.group(1)), text)
    for pattern in (_STRONG, _STRIKE, _EMPHASIS):
        text = pattern.sub(lambda m: next(g for g in m.groups()[::-1] if g is not None), text)
    text = re.sub("\x00(\\d+)\x00", lambda m: literals[int(m.group(1))], text)
    return " ".join(text.split())


def _truncate(text: str, limit: int) -> str:
    if len(text) <= limit:
        return text
    cut = text[: limit - len(ELLIPSIS) + 1]  # one more: is the limit at a word's end?
    space = cut.rfind(" ")
    # At the last word boundary, unless that throws away most of the title (one long word).
    cut = cut[:space] if space >= limit // 2 else cut[:-1]
    return cut.rstrip(" .,;:!?-\u2013\u2014") + ELLIPSIS  # no dash or stop before the …
