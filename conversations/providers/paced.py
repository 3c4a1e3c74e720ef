"""A paced fake upstream for load tests: numbered tokens on its own clock.

Token k is " t<k>" (the first has no space), due at start + k * interval. A late event loop
gets every due token at once, as from a real upstream that kept sending. Numbered tokens
let a client tell exactly which token arrived when. The answer has `tokens=N` tokens when
the prompt says so (the benchmark sets each answer's length), else DEFAULT_TOKENS.

A prompt with `markdown` gets the same numbered tokens laid out as a Markdown-heavy answer
(headings, emphasis, links, lists, fenced code, tables, in a cycle): the live Markdown view
finishes a block every 30 tokens or so.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncGenerator

from conversations.providers.base import ChatTurn, StreamResult

DEFAULT_TOKENS = 200
MAX_TOKENS = 100_000
_LENGTH = re.compile(r"\btokens=(\d+)")
# One cycle of a Markdown-heavy answer, laid out as a model writes one (a block every 30
# tokens or so: a heading, prose with emphasis, code spans and a link, a list, a code block,
# a table, a quote); each {} is the next numbered token. No token sits in a URL: a client
# reads the tokens from the shown text, where a link's URL is not.
_WORDS = "{} {} {} {} {} {}"
MARKDOWN_CYCLE = (
    "## {} {} {}\n\n"
    f"{_WORDS} **{{}} {{}}** {_WORDS} `{{}}` {_WORDS} [{{}} {{}}](https://example.com/docs) "
    f"{_WORDS} _{{}}_ {{}}.\n\n"
    + "".join(f"- **{{}}** {_WORDS}\n" for _ in range(5))
    + "\n```python\n"
    + "".join("{} = {}({}, {}) + {}\n" for _ in range(8))
    + "```\n\n| {} | {} | {} |\n|---|---|---|\n"
    + "".join("| {} {} | `{}` | {} {} |\n" for _ in range(5))
    + f"\n> {_WORDS} {_WORDS}\n\n"
)
_PIECES = MARKDOWN_CYCLE.split("{}")


def answer_length(prompt: str) -> int:
    match = _LENGTH.search(prompt)
    return min(int(match.group(1)), MAX_TOKENS) if match else DEFAULT_TOKENS


def token_text(index: int, *, markdown: bool = False) -> str:
    """Token `index` of an answer: " t<index>", or in Markdown the layout before it too."""
    if not markdown:
        return f" t{index}" if index else "t0"
    slots = len(_PIECES) - 1
    # What ends one cycle goes before the next cycle's first token.
    before = _PIECES[0] if index == 0 else _PIECES[index % slots]
    if index and index % slots == 0:
        before = _PIECES[-1] + _PIECES[0]
    return f"{before}t{index}"


class PacedProvider:
    name = "paced"
    label = "paced (benchmark)"
    temperature: float | None = None

    def __init__(self, *, model: str = "paced", token_interval: float = 0.02) -> None:
        self.model = model or "paced"
        self.token_interval = token_interval

    async def stream(self, turns: list[ChatTurn], result: StreamResult) -> AsyncGenerator[str]:
        prompt = next((t.content for t in reversed(turns) if t.role == "user"), "")
        count = answer_length(prompt)
        markdown = "markdown" in prompt
        loop = asyncio.get_running_loop()
        start = loop.time()
        for index in range(count):
            delay = start + index * self.token_interval - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            yield token_text(index, markdown=markdown)
        result.usage.completion_tokens = count
        result.usage.finish_reason = "stop"
