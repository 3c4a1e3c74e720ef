"""Attachments in a real browser, on both stacks: an image and a document attached with the
Attach button, shown as chips with their size, sent with the message, shown in its bubble
(the image served by the app), and listed in the demo model's answer; a file removed before
sending is not sent; a file we do not take says why in its chip."""

from __future__ import annotations

import io

import pytest
from PIL import Image
from playwright.sync_api import expect

from tests.e2e.chat import CONVERSATION_URL, new_conversation, send, wait_until_finished

pytestmark = pytest.mark.e2e


def png() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (24, 16), "teal").save(buffer, format="PNG")
    return buffer.getvalue()


def test_an_image_and_a_document_go_with_the_message_and_reach_the_model(tab, browser_log):
    browser_log.allow(r"status of 400")  # the refused .exe upload
    new_conversation(tab)
    files = tab.locator("#composer-files")
    tab.locator("#attach-input").set_input_files(
        [
            {"name": "cat.png", "mimeType": "image/png", "buffer": png()},
            {"name": "notes.md", "mimeType": "text/markdown", "buffer": b"# Milk\n\nBuy two."},
            {"name": "extra.txt", "mimeType": "text/plain", "buffer": b"not this one"},
            {"name": "tool.exe", "mimeType": "application/octet-stream", "buffer": b"MZ\x90"},
        ]
    )
    expect(files.locator("input[name=attachment]")).to_have_count(3)  # all uploaded
    expect(files.locator(".file-chip.failed")).to_contain_text("This type of file is not taken")
    expect(files.locator(".file-chip", has_text="notes.md")).to_contain_text("16 bytes")
    files.get_by_role("button", name="Remove extra.txt").click()
    files.get_by_role("button", name="Remove tool.exe").click()
    expect(files.locator(".file-chip")).to_have_count(2)

    send(tab, "What are these?")
    tab.wait_for_url(CONVERSATION_URL)
    question = tab.locator("#transcript .msg-user").last
    image = question.locator(".msg-files img[alt='cat.png']")
    expect(image).to_be_visible()
    assert image.evaluate("img => img.complete && img.naturalWidth") == 24  # served by the app
    expect(question.locator(".msg-files .file-chip")).to_have_text("notes.md 16 bytes")
    expect(question).not_to_contain_text("extra.txt")

    answer = wait_until_finished(tab)
    body = answer.locator(".msg-body")
    expect(body).to_contain_text("You attached: ")
    expect(body).to_contain_text(f"cat.png (image/png, {len(png())} bytes)")
    expect(body).to_contain_text("notes.md (text/markdown, 16 bytes)")
    expect(body.locator("a", has_text="notes.md")).to_have_count(0)  # a name, not a link
    expect(tab.locator("#composer-files .file-chip")).to_have_count(0)

    tab.reload()  # the page renders the same files
    expect(tab.locator("#transcript .msg-user .msg-files img[alt='cat.png']")).to_be_visible()


def test_a_send_with_files_retried_after_going_offline_stores_them_once(tab):
    new_conversation(tab)
    tab.locator("#attach-input").set_input_files(
        [{"name": "cat.png", "mimeType": "image/png", "buffer": png()}]
    )
    expect(tab.locator("#composer-files input[name=attachment]")).to_have_count(1)

    tab.context.set_offline(True)
    send(tab, "Offline with a cat")
    bubble = tab.locator("#transcript .msg-user", has_text="Offline with a cat")
    expect(bubble.get_by_text("Not sent")).to_be_visible()
    expect(bubble.locator(".msg-files")).to_have_text("cat.png")  # the files went with it
    expect(tab.locator("#composer-files .file-chip")).to_have_count(0)

    tab.context.set_offline(False)
    expect(tab.locator("#notice")).to_be_hidden()
    bubble.get_by_role("button", name="Retry").click()
    tab.wait_for_url(CONVERSATION_URL)
    wait_until_finished(tab)
    tab.reload()
    question = tab.locator("#transcript .msg-user")
    expect(question).to_have_count(1)
    expect(question.locator(".msg-files img[alt='cat.png']")).to_have_count(1)
    expect(tab.locator("#transcript .msg-assistant .msg-body")).to_contain_text(
        "You attached: cat.png"
    )


def test_files_alone_can_be_sent(tab):
    new_conversation(tab)
    send_button = tab.locator("#composer button.send")
    expect(send_button).to_be_disabled()  # nothing to send
    tab.locator("#attach-input").set_input_files(
        [{"name": "list.csv", "mimeType": "text/csv", "buffer": b"a,b\n1,2\n"}]
    )
    expect(send_button).to_be_enabled()  # a file alone can go
    send_button.click()
    tab.wait_for_url(CONVERSATION_URL)
    expect(wait_until_finished(tab).locator(".msg-body")).to_contain_text(
        "You attached: list.csv (text/csv, 8 bytes)"
    )
    expect(tab.locator("#sidebar [aria-current=page]")).to_contain_text("list.csv")


def test_a_send_the_server_refuses_keeps_its_files_in_the_composer(tab, browser_log):
    """A NUL passes the browser's checks; the 422 brings the composer back with the text
    and the reason, and the chips come back with it: fixed and sent, the file goes along."""
    browser_log.allow("status of 422")
    new_conversation(tab)
    tab.locator("#attach-input").set_input_files(
        [{"name": "notes.txt", "mimeType": "text/plain", "buffer": b"two eggs"}]
    )
    files = tab.locator("#composer-files")
    expect(files.locator("input[name=attachment]")).to_have_count(1)
    box = tab.locator("#composer textarea")
    box.fill("read\x00this")
    box.press("Enter")

    expect(tab.get_by_role("alert")).to_have_text("Null characters are not allowed.")
    expect(files.locator(".file-chip", has_text="notes.txt")).to_have_count(1)
    expect(files.locator("input[name=attachment]")).to_have_count(1)
    expect(tab.locator("#transcript .msg-user")).to_have_count(0)

    send(tab, "read this")
    tab.wait_for_url(CONVERSATION_URL)
    expect(wait_until_finished(tab).locator(".msg-body")).to_contain_text(
        "You attached: notes.txt (text/plain, 8 bytes)"
    )
    expect(files.locator(".file-chip")).to_have_count(0)
