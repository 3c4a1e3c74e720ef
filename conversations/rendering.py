"""The one path from model or user text to HTML: markdown-it-py, Pygments, then nh3.

Nothing else may mark model or user text safe.
"""

from __future__ import annotations

from functools import lru_cache
from html import escape

import nh3
from django.utils.safestring import SafeString, mark_safe
from markdown_it import MarkdownIt
from mdit_py_plugins.tasklists import tasklists_plugin
from pygments import highlight
from pygments.formatters import HtmlFormatter
from pygments.lexers import get_lexer_by_name
from pygments.util import ClassNotFound

_FORMATTER = HtmlFormatter(nowrap=True, classprefix="tok-")

ALLOWED_TAGS = {
    "p", "br", "hr", "strong", "em", "del", "s", "code", "pre", "span", "blockquote",
    "ul", "ol", "li", "a", "h1", "h2", "h3", "h4", "h5", "h6",
    "table", "thead", "tbody", "tr", "th", "td", "input",
}  # fmt: skip
ALLOWED_ATTRIBUTES = {
    "a": {"href", "title"},
    "span": {"class"},
    "code": {"class"},
    "pre": {"class", "data-lang"},
    "th": {"align"},
    "td": {"align"},
    "ol": {"start"},
    "ul": {"class"},
    "li": {"class"},
    "input": {"class", "checked"},  # a task list's box: always a disabled checkbox (below)
}


def _highlight(code: str, lang: str, _attrs: str) -> str:
    try:
        lexer = get_lexer_by_name(lang) if lang else None
    except ClassNotFound:
        lexer = None
    if lexer is None:
        return ""  # markdown-it escapes it itself
    return highlight(code, lexer, _FORMATTER)


def _image_as_link(renderer, tokens, idx, options, env) -> str:
    """An image in an answer is a link to it, never loaded by the page.

    Loading it would tell its server the reader's address, and a prompt injection can make a
    model write the conversation into an image URL ("markdown image exfiltration").
    """
    token = tokens[idx]
    alt = renderer.renderInlineAsText(token.children or [], options, env) or "image"
    src = escape(str(token.attrGet("src") or ""))
    return f'<a href="{src}" title="Image (not loaded here)">Image: {escape(alt)}</a>'


@lru_cache(maxsize=1)
def _markdown() -> MarkdownIt:
    # html=False: raw HTML in the text is shown as text, never passed through. linkify: a
    # bare https://... in an answer is a link, as in other chat apps.
    parser = MarkdownIt(
        "commonmark", {"html": False, "linkify": True, "highlight": _highlight}
    ).enable(["table", "strikethrough", "linkify"])
    parser.use(tasklists_plugin)  # "- [x] done": a checkbox that only shows
    parser.add_render_rule("image", _image_as_link)
    return parser


def render_markdown(text: str) -> SafeString:
    html = _markdown().render(text)
    clean = nh3.clean(
        html,
        tags=ALLOWED_TAGS,
        attributes=ALLOWED_ATTRIBUTES,
        url_schemes={"http", "https", "mailto"},
        link_rel="noopener noreferrer nofollow",
        # A link in an answer opens beside the chat, not over it (and its stream).
        set_tag_attribute_values={
            "a": {"target": "_blank"},
            "input": {"type": "checkbox", "disabled": "disabled"},
        },
    )
    return mark_safe(clean)
