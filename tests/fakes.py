"""A provider whose script the test states: deltas, delays, failures, hangs."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

from conversations.providers import ChatTurn, ProviderError, StreamResult, Thinking


@dataclass
class Delta:
    text: str


@dataclass
class Think:
    """A reasoning delta (what providers yield as `Thinking`)."""

    text: str


@dataclass
class Sleep:
    seconds: float


@dataclass
class Fail:
    error: Exception


@dataclass
class Hang:
    """Never yields again (until cancelled)."""


Step = Delta | Think | Sleep | Fail | Hang


@dataclass
class ScriptedProvider:
    """Each call to stream() plays the next script; the last one repeats."""

    scripts: list[list[Step]]
    name: str = "fake"
    label: str = "fake"
    model: str = "fake-model"
    vision: bool = True  # takes images (catalog.takes_images)
    calls: list[list[ChatTurn]] = field(default_factory=list)
    closed: int = 0  # streams whose upstream was closed (finished, failed or cancelled)
    yielded: int = 0

    async def stream(self, turns: list[ChatTurn], result: StreamResult) -> AsyncIterator[str]:
        script = self.scripts[min(len(self.calls), len(self.scripts) - 1)]
        self.calls.append(list(turns))
        try:
            for step in script:
                if isinstance(step, Delta):
                    self.yielded += 1
                    yield step.text
                elif isinstance(step, Think):
                    self.yielded += 1
                    yield Thinking(step.text)
                elif isinstance(step, Sleep):
                    await asyncio.sleep(step.seconds)
                elif isinstance(step, Fail):
                    raise step.error
                else:
                    await asyncio.Event().wait()
            result.usage.finish_reason = "stop"
            result.usage.completion_tokens = sum(isinstance(s, Delta) for s in script)
        finally:
            self.closed += 1


def words(text: str, *, pause: float = 0.0) -> list[Step]:
    steps: list[Step] = []
    for index, word in enumerate(text.split(" ")):
        steps.append(Delta(word if index == 0 else " " + word))
        if pause:
            steps.append(Sleep(pause))
    return steps


def retryable(message: str = "connection reset", **kwargs) -> Fail:
    return Fail(ProviderError(message, retryable=True, **kwargs))


def fatal(message: str = "bad request", user_message: str = "The model rejected it.") -> Fail:
    return Fail(ProviderError(message, user_message=user_message))
