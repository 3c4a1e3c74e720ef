"""What a user does on the chat page, as small functions the browser tests share."""

from __future__ import annotations

import re

from playwright.sync_api import Locator, Page, expect

CONVERSATION_URL = re.compile(r"/c/[0-9a-f-]{36}/$")
PASSWORD = "a-long-and-unusual-passphrase-42"


def sign_up(page: Page, email: str) -> None:
    page.goto("/accounts/signup/")
    page.get_by_label("Email").fill(email)
    page.get_by_placeholder("Password", exact=True).fill(PASSWORD)
    page.get_by_placeholder("Password (again)").fill(PASSWORD)
    page.get_by_role("button", name="Sign Up").click()
    page.wait_for_url(re.compile(r"/$"))


NEW_CHAT_URL = re.compile(r"/c/new$")


def new_conversation(page: Page) -> None:
    """Open a new chat: a composer, nothing stored until its first send."""
    page.goto("/")  # the landing page is a new chat too
    link = page.get_by_role("link", name="New chat").filter(visible=True)
    if link.count():  # not on a phone, where it is in the closed drawer
        link.first.click()
        page.wait_for_url(NEW_CHAT_URL)
    expect(page.get_by_role("heading", name="Start a conversation")).to_be_visible()


def start_conversation(page: Page, text: str) -> str:
    """A new chat's first send, which creates the conversation: its URL, once the page
    landed on it (the answer may still be streaming)."""
    new_conversation(page)
    send(page, text)
    page.wait_for_url(CONVERSATION_URL)
    return page.url


def settled(page: Page) -> None:
    """Wait until htmx has wired up the content it swapped in. It does so when the swap
    settles (20 ms later, longer on a loaded machine); a click on a new link before that
    follows its plain href, a full page load."""
    expect(page.locator(".htmx-added")).to_have_count(0)


def composer_box(page: Page) -> Locator:
    return page.get_by_role("textbox", name="Message")


def send(page: Page, text: str) -> None:
    box = composer_box(page)
    box.fill(text)
    box.press("Enter")


def echo(*words: str) -> str:
    """A prompt the e2e server's demo model answers with exactly the text after `echo:`."""
    return "echo: " + " ".join(words)


def long_echo(count: int) -> tuple[str, str]:
    """A prompt for an answer of `count` tokens (about count * 30 ms), and that answer."""
    answer = " ".join(f"word{i}" for i in range(count))
    return echo(answer), answer


def answers(page: Page) -> Locator:
    return page.locator("#transcript article.msg-assistant")


def last_answer(page: Page) -> Locator:
    return answers(page).last


def answer_text(answer: Locator) -> str:
    return answer.locator(".msg-body").inner_text()


def wait_for_text(answer: Locator, minimum_chars: int) -> str:
    """Wait until the answer is streaming and shows at least this much text."""
    answer.locator(".msg-body.streaming").wait_for()
    answer.page.wait_for_function(
        """([selector, n]) => {
          const live = [...document.querySelectorAll(selector)].at(-1);
          return live && live.textContent.length >= n;
        }""",
        arg=["#transcript article.msg-assistant .msg-body.streaming", minimum_chars],
    )
    return answer_text(answer)


def wait_until_finished(page: Page, timeout: float = 20_000) -> Locator:
    """The last answer once it is final (its Regenerate or Retry button shows)."""
    answer = last_answer(page)
    expect(answer.get_by_role("button", name=re.compile("^(Regenerate|Retry)$"))).to_be_visible(
        timeout=timeout
    )
    return answer
