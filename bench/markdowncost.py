"""CPU per token of the Markdown view (live_markdown.py), plain answers against Markdown-heavy
ones, measured in one process: steadier than `python -m bench`, whose figures move by 20%
between runs on a noisy host.

    .venv/bin/python -m bench.markdowncost              # 1,000-token answers, 5 rounds
    .venv/bin/python -m bench.markdowncost --tokens 300 --rounds 9

Each answer is the paced provider's (the benchmark's own numbered tokens, `markdown` layout
or plain words), fed as the hub does: a few tokens per frame (50 tokens/s, 40 ms frames), one
view per stream. Then the final bubble's HTML: the whole text rendered again (before
`LiveMarkdown.final_html`) and the blocks reused (now). Prints µs of CPU per token, the
median of the rounds, and each Markdown figure as a ratio to the plain one.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import django

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "chatsite.settings")
django.setup()

from conversations.live_markdown import LiveMarkdown  # noqa: E402
from conversations.providers.paced import token_text  # noqa: E402
from conversations.rendering import render_markdown  # noqa: E402

TOKENS_PER_FRAME = 2  # 50 tokens/s in 40 ms frames (CHAT_TICK_SECONDS)


def frames(tokens: list[str]) -> list[str]:
    return [
        "".join(tokens[i : i + TOKENS_PER_FRAME]) for i in range(0, len(tokens), TOKENS_PER_FRAME)
    ]


def cost(tokens: list[str]) -> dict[str, float]:
    """µs of CPU per token: the live view, the final render whole, the final from blocks."""
    text, pieces = "".join(tokens), frames(tokens)
    started = time.process_time()
    view = LiveMarkdown()
    for piece in pieces:
        view.feed(piece)
    live = time.process_time() - started
    started = time.process_time()
    render_markdown(text)
    whole = time.process_time() - started
    started = time.process_time()
    view.final_html(text)
    reused = time.process_time() - started
    per_token = 1e6 / len(tokens)
    return {"live": live * per_token, "final, whole": whole * per_token,
            "final, reused": reused * per_token}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.markdowncost")
    parser.add_argument("--tokens", type=int, default=1000, help="tokens per answer")
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    answers = {
        style: [token_text(i, markdown=style == "markdown") for i in range(args.tokens)]
        for style in ("plain", "markdown")
    }
    for tokens in answers.values():
        cost(tokens)  # warm up: imports, Pygments' lexer, compiled patterns
    rounds: dict[str, list[dict[str, float]]] = {style: [] for style in answers}
    for _ in range(args.rounds):
        for style, tokens in answers.items():  # in turn, so a slower host slows both
            rounds[style].append(cost(tokens))
    median = {
        style: {key: statistics.median(r[key] for r in results) for key in results[0]}
        for style, results in rounds.items()
    }
    print(f"µs of CPU per token, {args.tokens}-token answers, median of {args.rounds} rounds")
    print(f"{'':<10} {'live view':>10} {'final, whole':>13} {'final, reused':>14}"
          f" {'before':>8} {'now':>8}")  # fmt: skip
    for style, figures in median.items():
        before = figures["live"] + figures["final, whole"]
        now = figures["live"] + figures["final, reused"]
        print(f"{style:<10} {figures['live']:>10.1f} {figures['final, whole']:>13.1f} "
              f"{figures['final, reused']:>14.1f} {before:>8.1f} {now:>8.1f}")  # fmt: skip

    def total(figures: dict[str, float], final: str) -> float:
        return figures["live"] + figures[final]

    plain, heavy = median["plain"], median["markdown"]
    before = total(heavy, "final, whole") / total(plain, "final, whole")
    now = total(heavy, "final, reused") / total(plain, "final, reused")
    print(f"markdown / plain, per token: before {before:.1f}x, now {now:.1f}x")


if __name__ == "__main__":
    main()
