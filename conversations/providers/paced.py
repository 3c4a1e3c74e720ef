"""A paced fake upstream for load tests: numbered tokens on its own clock.

Token k is " t<k>" (the first has no space), due at start + k * interval. A late event loop
gets every due token at once, as from a real upstream that kept sending. Numbered tokens
let a client tell exactly which token arrived when. The answer has `tokens=N` tokens when
the prompt says so (the benchmark sets each answer's length), else DEFAULT_TOKENS.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncGenerator

from conversations.providers.base import ChatTurn, StreamResult

DEFAULT_TOKENS = 200
MAX_TOKENS = 100_000
_LENGTH = re.compile(r"\btokens=(\d+)")


def answer_length(prompt: str) -> int:
    match = _LENGTH.search(prompt)
    return min(int(match.group(1)), MAX_TOKENS) if match else DEFAULT_TOKENS


class PacedProvider:
    name = "paced"
    label = "paced (benchmark)"

    def __init__(self, *, model: str = "paced", token_interval: float = 0.02) -> None:
        self.model = model or "paced"
        self.token_interval = token_interval

    async def stream(self, turns: list[ChatTurn], result: StreamResult) -> AsyncGenerator[str]:
        prompt = next((t.content for t in reversed(turns) if t.role == "user"), "")
        count = answer_length(prompt)
        loop = asyncio.get_running_loop()
        start = loop.time()
        for index in range(count):
            delay = start + index * self.token_interval - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            yield f" t{index}" if index else "t0"
        result.usage.completion_tokens = count
        result.usage.finish_reason = "stop"
