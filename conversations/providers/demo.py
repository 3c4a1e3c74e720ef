"""The offline demo provider: deterministic answers with Markdown and code, realistically paced.

For the browser tests only, `DEMO_ECHO=1` makes a prompt that starts with `echo:` come back
verbatim as the answer, so a test can script the model's output (Markdown, XSS payloads, a
long answer). Off by default; the answer still goes through the one sanitizing renderer.

A prompt with the word "think" gets a few sentences of reasoning before its answer (as
`Thinking` deltas, at half the answer's pace), so the Thinking section can be seen without
a model.
"""

from __future__ import annotations

import asyncio
import hashlib
import re
from collections.abc import AsyncGenerator

from django.conf import settings

from conversations.providers.base import ChatTurn, StreamResult, Thinking, TurnFile

ECHO_MARKER = "echo:"
_TOKEN = re.compile(r"\s*\S+|\s+")
_THINK = re.compile(r"\bthink\b", re.IGNORECASE)
THINKING_PACE = 2  # a thinking token takes this many answer tokens' time

_TOPICS = [
    (
        "Streaming",
        "Server-sent events keep one HTTP response open and push small text frames.",
        "python",
        "async def stream(request):\n"
        "    async for delta in provider.stream(turns):\n"
        '        yield f"data: {delta}\\n\\n"',
    ),
    (
        "Idempotency",
        "Every send carries a client id, so a retry finds the message it already made.",
        "python",
        "message, created = Message.objects.get_or_create(\n"
        "    conversation=conversation, client_id=client_id,\n"
        "    defaults={'content': text},\n)",
    ),
    (
        "Ordering",
        "Messages are ordered by a per-conversation sequence number, because clocks lie.",
        "sql",
        "SELECT seq, role, content\n  FROM conversations_message\n"
        " WHERE conversation_id = %s\n ORDER BY seq;",
    ),
]


def demo_answer(prompt: str, *, echo: bool = False) -> str:
    """The same prompt always gives the same answer."""
    if echo and prompt.startswith(ECHO_MARKER):
        return prompt.removeprefix(ECHO_MARKER).lstrip()
    digest = int(hashlib.sha256(prompt.encode()).hexdigest(), 16)
    title, idea, lang, code = _TOPICS[digest % len(_TOPICS)]
    words = len(prompt.split())
    return (
        f"**Demo answer** (offline, no model was called). You wrote {words} "
        f"word{'s' if words != 1 else ''}.\n\n"
        f"### {title}\n\n{idea} Here is how that looks:\n\n"
        f"```{lang}\n{code}\n```\n\n"
        "- It is *deterministic*: ask the same thing again for the same answer.\n"
        "- It streams word by word, like a real model.\n\n"
        "Set `OPENAI_API_KEY` (and `OPENAI_BASE_URL` for Ollama, vLLM or llama.cpp) "
        "or `ANTHROPIC_API_KEY` to talk to a real model."
    )


def demo_thinking(prompt: str, *, echo: bool = False) -> str:
    """The reasoning before the demo's answer: some for a prompt that says "think"."""
    if (echo and prompt.startswith(ECHO_MARKER)) or not _THINK.search(prompt):
        return ""
    words = len(prompt.split())
    return (
        f"The user asked me to think, in {words} word{'s' if words != 1 else ''}. "
        "I am the offline demo, so no model is reasoning here: these sentences stream in "
        "the Thinking section, apart from the answer. A real model (vLLM, DeepSeek, Ollama, "
        "Claude with extended thinking) sends its reasoning the same way. "
        "Next, the answer itself, which is the same as for any other prompt."
    )


def attached_line(files: tuple[TurnFile, ...]) -> str:
    """What the demo says of the files a question came with, so the feature shows offline."""
    if not files:
        return ""
    # Names in code spans: "notes.md" must not become a link to a domain.
    listed = "; ".join(
        f"`{f.name.replace('`', "'")}` ({f.content_type}, {_size(f.size)})" for f in files
    )
    return f"You attached: {listed}.\n\n"


def _size(size: int) -> str:
    return f"{size} bytes" if size < 1024 else f"{size / 1024:.1f} KB"


def tokenize(text: str) -> list[str]:
    return _TOKEN.findall(text)


class DemoProvider:
    name = "demo"
    label = "demo"
    temperature: float | None = None

    def __init__(
        self, *, model: str = "demo", token_interval: float = 0.03, echo: bool | None = None
    ) -> None:
        self.model = model or "demo"
        self.token_interval = token_interval
        self.echo = settings.CHAT.get("DEMO_ECHO", False) if echo is None else echo

    async def stream(self, turns: list[ChatTurn], result: StreamResult) -> AsyncGenerator[str]:
        question = next((t for t in reversed(turns) if t.role == "user"), ChatTurn("user", ""))
        prompt = question.content
        thoughts = [Thinking(t) for t in tokenize(demo_thinking(prompt, echo=self.echo))]
        tokens = tokenize(attached_line(question.files) + demo_answer(prompt, echo=self.echo))
        loop = asyncio.get_running_loop()
        start = loop.time()
        due = 0.0  # seconds after the start
        for token in [*thoughts, *tokens]:
            # Paced on its own clock, like a real upstream: a late loop gets a burst.
            delay = start + due - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            yield token
            due += self.token_interval * (THINKING_PACE if type(token) is Thinking else 1)
        result.usage.prompt_tokens = sum(len(tokenize(t.content)) for t in turns)
        result.usage.completion_tokens = len(thoughts) + len(tokens)
        result.usage.finish_reason = "stop"
