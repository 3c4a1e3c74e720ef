"""An answer's Markdown while it streams: each finished block rendered once, the open tail as text.

Re-rendering the whole answer per token costs O(answer) per frame; here a block (paragraph,
list, heading, table, fenced code...) goes through `rendering.render_markdown` once, when no
later text can change it, and only the open tail (the block being written) travels as text.

A block is finished when it is followed by a block that starts on a complete line, or when it
closes itself (a heading's or rule's line ended, a fence's closing line ended, a paragraph,
table or quote followed by a blank line). Only complete lines decide: a partial line ("#",
"***", "| a |") can still turn into something else.

The view is a function of the text so far, however it arrived in pieces (tests check that),
so two processes following one answer, a reload and a resumed reader all show the same blocks.
The final answer's HTML is its blocks and its last tail rendered (`final_html`): the same as
`render_markdown` of the whole text, at the cost of the tail alone. Reference-style link
definitions are the exception (docs/architecture.md): an answer with one is rendered whole.
"""

from __future__ import annotations

import html
import re
from functools import lru_cache

from django.utils.safestring import SafeString, mark_safe
from markdown_it import MarkdownIt
from markdown_it.token import Token

from conversations.rendering import render_markdown

PLAIN = re.compile(r"[^\n\\!\[\]*_~`|]+")
BULLET = re.compile(r"(\s*)[*+-] ")
FENCE = re.compile(r" {0,3}(`{3,}|~{3,})(.*)")
# A table's delimiter row ("|---|:--:|", "--- | ---") has a "|"; a line of these characters
# without one yet may still become one.
DELIMITER_ROW = re.compile(r"[ \t|:-]+")
# Blocks that end themselves with their line, or with a blank line after them.
ENDS_WITH_ITS_LINE = {"heading_open", "hr"}
ENDS_AT_A_BLANK_LINE = {"paragraph_open", "table_open", "blockquote_open"}
# "[label]: url" defines a link for the whole text, earlier blocks included (a loose match:
# one in a code block only costs a whole render).
REFERENCE = re.compile(r"^ {0,3}\[[^\]\n]+\]:", re.MULTILINE)


@lru_cache(maxsize=1)
def _blocks_parser() -> MarkdownIt:
    """The renderer's parser without the inline pass: only the block structure is needed."""
    parser = MarkdownIt("commonmark", {"html": False}).enable(["table"])
    return parser.disable(["inline", "text_join"], ignoreInvalid=True)


class LiveMarkdown:
    """One answer's view: fed its text in order, piece by piece (`feed`)."""

    def __init__(self) -> None:
        self.length = 0  # characters of the answer taken in
        self.blocks: list[str] = []  # the finished blocks' HTML, in order
        self.epoch = 0  # changes whenever the tail starts over (a block finished, a fence opened)
        self.display = ""  # the tail as shown: escaped text, only ever appended to in an epoch
        self._tail = ""  # the answer's text after the finished blocks
        self._fence: tuple[str, int, str] | None = None  # an open fence: (char, length, language)
        self._shown = 0  # characters of the tail that `display` accounts for
        self._table: OpenTable | None = None  # an open table's complete rows: the tail's start
        self._prose = ProseFilter()
        self._final: tuple[str, SafeString] | None = None

    def feed(self, text: str) -> None:
        if not text:
            return
        self.length += len(text)
        start = len(self._tail)
        self._tail += text
        if "\n" in text and not self._continues_paragraph(start) and self._find_finished(start):
            self._restart_tail()
        else:
            self._show_more()

    # The tail as HTML: the element a "blocks" event replaces, its text the target of "token".
    def tail_html(self, message_id: str) -> str:
        text_id = f"msg-{message_id}-tail-text"
        if self._fence is not None:
            lang = html.escape(self._fence[2], quote=True)
            inner = f'<pre class="md-tail-code" data-lang="{lang}"><code id="{text_id}">'
            inner += f"{self.display}</code></pre>"
        else:
            rows = self._table.html if self._table is not None else ""
            inner = f'{rows}<p class="md-tail-text" id="{text_id}">{self.display}</p>'
        return f'<div class="md-tail" id="msg-{message_id}-tail">{inner}</div>'

    def html(self, message_id: str) -> str:
        return "".join(self.blocks) + self.tail_html(message_id)

    def final_html(self, text: str) -> SafeString:
        """`render_markdown(text)` for the whole answer this view was fed, with its finished
        blocks as they were rendered: a Markdown-heavy answer is not rendered twice."""
        if self._final is None or self._final[0] != text:
            if self.length != len(text) or not text.endswith(self._tail) or REFERENCE.search(text):
                html_ = render_markdown(text)
            else:
                html_ = mark_safe("".join(self.blocks) + render_markdown(self._tail))
            self._final = (text, html_)  # every reader's `done` carries it
        return self._final[1]

    def _continues_paragraph(self, start: int) -> bool:
        """New lines that can only continue the tail's paragraph: no parse needed for them.

        A line that starts with a letter interrupts no paragraph (every other block starts
        with a mark, an indent or a blank line), and without a "|" no table is forming.
        """
        if (
            self._fence is not None
            or "|" in self._tail
            or not self._tail.lstrip("\n")[:1].isalpha()
        ):
            return False
        lines = self._tail[self._line_of(start) : self._tail.rfind("\n") + 1].split("\n")[:-1]
        return all(line[:1].isalpha() for line in lines)

    def _find_finished(self, start: int) -> bool:
        """Render the blocks that the new complete lines finished; True if the tail changed."""
        complete = self._tail[: self._tail.rfind("\n") + 1]
        if self._fence is not None:
            # Inside a fence only its closing line matters: no parse per line of code.
            new_lines = complete[self._line_of(start) :].splitlines()
            if not any(self._closes_fence(line) for line in new_lines):
                return False
        tokens = [t for t in _blocks_parser().parse(complete) if t.level == 0 and t.map]
        if not tokens:
            return False
        lines = complete.count("\n")
        last = tokens[-1]
        finished = len(tokens) - 1
        if self._ends_itself(last, lines):
            finished += 1
        fence = _open_fence(last) if finished < len(tokens) else None
        open_table = finished < len(tokens) and last.type == "table_open"
        if finished == 0:
            if fence is not None and self._fence is None:
                self._fence = fence
                return True
            return self._rows_changed(open_table)
        ends = [_span(t)[0] for t in tokens[1:]] + [lines]
        line_offsets = [0] + [match.end() for match in re.finditer("\n", complete)]
        begins = [0, *ends]
        self.blocks.extend(
            render_markdown(complete[line_offsets[begins[i]] : line_offsets[ends[i]]])
            for i in range(finished)
        )
        self._tail = self._tail[line_offsets[ends[finished - 1]] :]
        self._fence = fence
        self._table = None  # a table there was is finished
        self._rows_changed(open_table)
        return True

    def _rows_changed(self, open_table: bool) -> bool:
        """An open table shows its complete rows as a table, its last row as text."""
        if not open_table:
            closed, self._table = self._table is not None, None
            return closed
        end = self._tail.rfind("\n") + 1
        if self._table is not None and self._table.end == end:
            return False
        self._table = self._table or OpenTable()
        self._table.take(self._tail[:end])
        return True

    def _line_of(self, start: int) -> int:
        """Where the line holding tail offset `start` (the new text's first) begins."""
        return self._tail.rfind("\n", 0, start) + 1

    def _ends_itself(self, token: Token, lines: int) -> bool:
        if token.type in ENDS_WITH_ITS_LINE:
            return True
        if token.type == "fence":
            return _open_fence(token) is None
        return token.type in ENDS_AT_A_BLANK_LINE and _span(token)[1] < lines

    def _closes_fence(self, line: str) -> bool:
        assert self._fence is not None
        char, length, _ = self._fence
        stripped = line.strip()
        return len(stripped) >= length and stripped == char * len(stripped)

    def _may_close_fence(self, line: str) -> bool:
        assert self._fence is not None
        return line.strip().strip(self._fence[0]) == ""

    def _restart_tail(self) -> None:
        self.epoch += 1
        self.display = ""
        self._shown = self._table.end if self._table is not None else 0
        self._prose = ProseFilter()
        if self._fence is not None:  # the opening line is not shown: the tail looks like code
            self._shown = self._tail.index("\n", _fence_line_start(self._tail)) + 1
        self._show_more()

    def _show_more(self) -> None:
        if self._fence is not None:
            # A last line that may still be the closing fence ("`", "``", "```") waits for
            # its end: a closing line finishes the block, any other is code.
            end = len(self._tail)
            line = self._tail.rfind("\n") + 1
            if self._may_close_fence(self._tail[line:]):
                end = max(line, self._shown)
            self.display += html.escape(self._tail[self._shown : end], quote=False)
            self._shown = end
        else:
            shown, self._shown = self._prose.take(self._tail, self._shown)
            self.display += shown


def _open_fence(token: Token) -> tuple[str, int, str] | None:
    """An unclosed fenced code block's (char, length, language); None if it is closed."""
    if token.type != "fence":
        return None
    # markdown-it runs an unclosed fence to the end of the text; a closed one also spans its
    # closing line.
    begin, end = _span(token)
    if end - begin == token.content.count("\n") + 2:
        return None
    return token.markup[0], len(token.markup), token.info.split()[0] if token.info.strip() else ""


def _span(token: Token) -> tuple[int, int]:
    """A top-level block's lines: [first, after last)."""
    assert token.map is not None
    return token.map[0], token.map[1]


def _fence_line_start(tail: str) -> int:
    """Where the opening fence line begins (after blank lines kept in the tail)."""
    offset = 0
    for line in tail.splitlines(keepends=True):
        if FENCE.match(line):
            return offset
        offset += len(line)
    return 0


class OpenTable:
    """An open table's HTML, one new row at a time: each row is rendered under the table's
    header alone and its <tr> kept, so a table of n rows costs n small renders, not n
    renders of the whole table (the same HTML: GFM renders each row on its own)."""

    def __init__(self) -> None:
        self.head = ""  # the header and delimiter rows (with what came before them)
        self.head_html = ""  # their table, without its end
        self.rows: list[str] = []  # each body row's <tr>
        self.lines = 0  # lines of the text taken in
        self.end = 0  # characters of the text taken in
        self.html = ""  # the table so far

    def take(self, text: str) -> None:
        """The table's text so far (complete lines), a row or more longer than before."""
        lines = text.splitlines(keepends=True)
        if not self.head:
            first = next(i for i, line in enumerate(lines) if line.strip())
            self.head, self.lines = "".join(lines[: first + 2]), first + 2
            self.head_html = render_markdown(self.head).removesuffix("</table>\n")
        for line in lines[self.lines :]:
            row = render_markdown(self.head + line).partition("<tbody>\n")[2]
            self.rows.append(row.removesuffix("</tbody>\n</table>\n"))
        self.lines, self.end = len(lines), len(text)
        body = f"<tbody>\n{''.join(self.rows)}</tbody>\n" if self.rows else ""
        self.html = f"{self.head_html}{body}</table>\n"


class ProseFilter:
    """The open tail of prose as text without raw Markdown markers: `**`, backticks, a link's
    brackets and URL, a heading's or quote's leading marks, a table's delimiter row. What it
    cannot decide yet (a marker at the very end, a line that may open a fence or be a table's
    delimiter row) waits for the next characters, so the text shown only ever grows, and is
    the same however the answer arrived in pieces.
    """

    def __init__(self) -> None:
        self.in_code = False  # inside a `code span`: markers are text there
        self.in_url = False  # inside a link's (url): not shown
        self.line_start = True
        self.table_row = False  # a line that starts with "|": its pipes part cells
        self.blank = True  # nothing shown yet on this line
        self.newline = False  # a line break to show before the next text

    def take(self, text: str, start: int) -> tuple[str, int]:
        """The escaped text to show for text[start:], and where the next call starts."""
        out: list[str] = []
        i, n = start, len(text)
        while i < n:
            char = text[i]
            if char == "\n":
                # Shown once more text follows: no blank lines, no empty line under the text.
                self.newline = self.newline or not self.blank
                self.blank = True
                self.in_code = self.in_url = False
                self.line_start = True
                i += 1
                continue
            if self.line_start:
                end = text.find("\n", i)
                line = text[i:] if end == -1 else text[i:end]
                if FENCE.match(line):
                    if end == -1:
                        break  # a fence opening: shown as code once its line is complete
                    i = end
                    continue
                if DELIMITER_ROW.fullmatch(line):
                    if end == -1:
                        break  # "--" may be a table's delimiter row, "-- a" text
                    if "|" in line:
                        i = end  # a table's "|---|---|" is not shown
                        continue
                marks = re.match(r" {0,3}(?:#{1,6}(?: |$)|> ?)*", line)
                assert marks is not None
                if marks.end() == len(line) and end == -1 and line:
                    break  # only marks so far: "#" may still be "#hashtag"
                self.table_row = line.lstrip().startswith("|")
                bullet = BULLET.match(line, marks.end())
                if bullet is None and end == -1 and line[marks.end() :].strip() in ("*", "-", "+"):
                    break  # "- " is a list item, "---" a rule, "-5" a number
                if bullet is not None:
                    self._emit(out, bullet[1] + "• ")
                i += bullet.end() if bullet is not None else marks.end()
                self.line_start = False
                continue
            if not self.in_url:
                # Plain text up to the next character that may be a marker: one slice, not a
                # loop per character (most of an answer).
                plain = PLAIN.match(text, i)
                if plain is not None and plain.end() > i:
                    self._emit(out, plain[0])
                    i = plain.end()
                    continue
            if self.in_url:
                if char == ")":
                    self.in_url = False
                i += 1
                continue
            if char == "`":
                self.in_code = not self.in_code
                i += 1
                continue
            if self.in_code:
                self._emit(out, char)
                i += 1
                continue
            if char == "|" and self.table_row:
                self._emit(out, " ")  # a row being written: its cells apart, no pipes
                i += 1
                continue
            if char in "\\!]*_~" and i + 1 >= n:
                break  # decided by the next character
            follower = text[i + 1] if i + 1 < n else ""
            if char == "\\" and follower in "\\`*_{}[]()#+-.!|~<>":
                self._emit(out, follower)
                i += 2
                continue
            if char == "!" and follower == "[":
                i += 1
                continue
            if char == "[":
                i += 1
                continue
            if char == "]":
                if follower == "(":
                    self.in_url = True
                    i += 2
                else:
                    i += 1
                continue
            if char in "*~" and not (text[i - 1 : i].isspace() and follower.isspace()):
                i += 1  # "2 * 3" keeps its star
                continue
            if char == "_" and not (i and text[i - 1].isalnum() and follower.isalnum()):
                i += 1  # an emphasis underscore; snake_case keeps its own
                continue
            self._emit(out, char)
            i += 1
        return html.escape("".join(out), quote=False), i

    def _emit(self, out: list[str], text: str) -> None:
        if self.newline:
            out.append("\n")
            self.newline = False
        out.append(text)
        self.blank = False
