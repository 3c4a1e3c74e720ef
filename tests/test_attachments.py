"""Attachments: the upload's checks (each bad input refused, nothing stored), a send carrying
them (idempotent on client_id), what the model receives, who may open a file, cleanup."""

from __future__ import annotations

import base64
import io
import uuid
from pathlib import Path
from types import SimpleNamespace

import pytest
from django.contrib.auth import get_user_model
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import connection
from django.test import AsyncClient, Client
from django.test.utils import CaptureQueriesContext
from PIL import Image

from conversations.models import Attachment, Conversation, Message
from conversations.providers import ChatTurn, StreamResult
from conversations.providers.base import TurnFile
from conversations.providers.demo import DemoProvider
from conversations.services import ratelimit, sharing
from tests.streams import send_data, wait_until_final

HTMX = {"HX-Request": "true"}


def png(width: int = 4, height: int = 3, color: str = "red") -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (width, height), color).save(buffer, format="PNG")
    return buffer.getvalue()


def minimal_pdf(text: str) -> bytes:
    """A one-page PDF whose page shows `text` (offsets computed, so strict readers take it)."""
    stream = f"BT /F1 12 Tf 72 720 Td ({text}) Tj ET".encode()
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] "
        b"/Resources << /Font << /F1 5 0 R >> >> /Contents 4 0 R >>",
        b"<< /Length %d >>\nstream\n" % len(stream) + stream + b"\nendstream",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ]
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % number + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    for offset in offsets:
        out += b"%010d 00000 n \n" % offset
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (
        len(objects) + 1,
        xref,
    )
    return bytes(out)


@pytest.fixture(autouse=True)
def media(settings, tmp_path) -> Path:
    settings.MEDIA_ROOT = str(tmp_path / "media")
    return tmp_path / "media"


def stored_files(media: Path) -> list[Path]:
    return [p for p in media.rglob("*") if p.is_file()] if media.exists() else []


def upload(client: Client, name: str, data: bytes, content_type: str = "application/octet-stream"):
    return client.post(
        "/files/upload", {"file": SimpleUploadedFile(name, data, content_type=content_type)}
    )


# ---------------------------------------------------------------------------------------
# The upload.


def test_an_image_is_stored_under_a_generated_name_with_its_sniffed_type(alice_client, media):
    response = upload(alice_client, "photo.png", png(), content_type="text/html")
    assert response.status_code == 201
    body = response.json()
    attachment = Attachment.objects.get(pk=body["id"])
    assert (attachment.kind, attachment.content_type) == ("image", "image/png")  # not text/html
    assert (attachment.width, attachment.height, attachment.message) == (4, 3, None)
    assert attachment.storage_name.startswith(f"attachments/{attachment.owner_id}/")
    assert "photo" not in attachment.storage_name
    assert stored_files(media) == [media / attachment.storage_name]
    assert body["url"] == f"/files/{attachment.pk}"


def test_text_markdown_csv_and_code_are_taken_as_text(alice_client):
    for name, data in [
        ("notes.md", b"# Notes\n\nSome *text*."),
        ("table.csv", b"a,b\n1,2\n"),
        ("main.py", "print('héllo')\n".encode()),
        ("plain.txt", b"\xef\xbb\xbfwith a BOM"),
    ]:
        assert upload(alice_client, name, data).status_code == 201, name
    texts = dict(Attachment.objects.values_list("name", "text"))
    assert texts["main.py"] == "print('héllo')\n"
    assert texts["plain.txt"] == "with a BOM"
    assert Attachment.objects.get(name="table.csv").content_type == "text/csv"


def test_a_pdfs_text_is_extracted(alice_client):
    response = upload(alice_client, "report.pdf", minimal_pdf("Quarterly figures"))
    assert response.status_code == 201
    attachment = Attachment.objects.get()
    assert (attachment.kind, attachment.content_type) == ("pdf", "application/pdf")
    assert "Quarterly figures" in attachment.text


def test_a_documents_text_is_cut_at_the_setting(alice_client, settings):
    settings.CHAT = {**settings.CHAT, "ATTACHMENT_TEXT_CHARS": 10}
    assert upload(alice_client, "long.txt", b"x" * 50).status_code == 201
    text = Attachment.objects.get().text
    assert text.startswith("x" * 10 + "\n[")
    assert "only the first 10 characters are sent" in text


def test_a_path_in_the_name_is_dropped_and_the_file_stored_under_a_generated_name(
    alice_client, media
):
    response = upload(alice_client, "../../../etc/\x00pass\x1bwd.txt", b"root:x:0:0")
    assert response.status_code == 201
    attachment = Attachment.objects.get()
    assert attachment.name == "passwd.txt"
    assert ".." not in attachment.storage_name and "etc" not in attachment.storage_name
    assert stored_files(media)[0].is_relative_to(media / "attachments")
    response = upload(alice_client, "..\\..\\windows\\win.ini.txt", b"[x]")
    assert response.json()["name"] == "win.ini.txt"


def bomb_png() -> bytes:
    buffer = io.BytesIO()
    Image.new("1", (6000, 6000)).save(buffer, format="PNG")  # 36 Mpx, a few KB compressed
    return buffer.getvalue()


@pytest.mark.parametrize(
    ("name", "data", "says"),
    [
        ("empty.txt", b"", "This file is empty."),
        ("big.txt", b"x" * 1001, "This file is 1001 bytes: files can be at most 1000 bytes."),
        ("tool.exe", b"MZ\x90\x00binary", "This type of file is not taken"),
        ("archive.zip", b"PK\x03\x04zip", "This type of file is not taken"),
        ("noextension", b"just text", "This type of file is not taken"),
        ("notes.txt", png(), "does not match its name"),
        ("photo.jpg", png(), "does not match its name"),
        ("photo.png", b"plain text pretending", "does not match its name"),
        ("doc.pdf", b"not a pdf at all", "does not match its name"),
        ("report.txt", minimal_pdf("x"), "does not match its name"),
        ("latin1.txt", "café".encode("latin-1"), "is not UTF-8 text"),
        ("nul.txt", b"a\x00b", "does not match its name"),
        ("broken.pdf", b"%PDF-1.4\n1 0 obj << /Type /Catalog", "This PDF could not be read"),
        ("truncated.png", png(40, 40)[:60], "This image is damaged"),
        ("fake.png", b"\x89PNG\r\n\x1a\n" + b"\x00" * 40, "This image is damaged"),
        ("huge.png", png(50, 50), "This image is too large to open (50 x 50 pixels"),
    ],
)
def test_bad_files_are_refused_saying_why_and_nothing_is_stored(
    alice_client, settings, media, name, data, says
):
    settings.CHAT = {**settings.CHAT, "ATTACHMENT_MAX_BYTES": 1000, "ATTACHMENT_MAX_PIXELS": 2000}
    response = upload(alice_client, name, data)
    assert response.status_code == 400
    assert says in response.json()["error"]
    assert not Attachment.objects.exists()
    assert stored_files(media) == []


def test_a_decompression_bomb_is_refused_by_pillows_own_check(alice_client, media, monkeypatch):
    # Our pixel cap is above it here: Pillow's MAX_IMAGE_PIXELS refuses it first.
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1_000_000)
    response = upload(alice_client, "bomb.png", bomb_png())
    assert response.status_code == 400
    assert "This image is too large to open" in response.json()["error"]
    assert not Attachment.objects.exists() and stored_files(media) == []


def test_the_storage_per_user_is_capped(alice_client, settings, media):
    settings.CHAT = {**settings.CHAT, "ATTACHMENT_STORAGE_PER_USER": 100}
    assert upload(alice_client, "a.txt", b"x" * 60).status_code == 201
    response = upload(alice_client, "b.txt", b"x" * 60)
    assert response.status_code == 400
    assert "delete some conversations with files" in response.json()["error"]
    assert Attachment.objects.count() == 1 and len(stored_files(media)) == 1


def test_an_upload_without_a_file_is_a_400(alice_client):
    assert alice_client.post("/files/upload", {}).status_code == 400


def test_uploads_need_a_signed_in_user(db):
    response = upload(Client(), "a.txt", b"x")
    assert response.status_code == 302 and not Attachment.objects.exists()


# ---------------------------------------------------------------------------------------
# Sending with files.


async def upload_async(client: AsyncClient, name: str, data: bytes) -> str:
    response = await client.post("/files/upload", {"file": SimpleUploadedFile(name, data)})
    assert response.status_code == 201, response.content
    return response.json()["id"]


@pytest.mark.django_db(transaction=True)
async def test_a_send_carries_its_files_to_the_model_and_a_retry_stores_nothing_twice(
    provider, alice_async, conversation
):
    image = await upload_async(alice_async, "cat.png", png())
    notes = await upload_async(alice_async, "notes.md", b"# Milk\n\nBuy two.")
    client_id = uuid.uuid4()
    data = {**send_data("What is this?", client_id), "attachment": [image, notes]}
    url = f"/c/{conversation.pk}/messages"
    response = await alice_async.post(url, data, headers=HTMX)
    assert response.status_code == 200
    html = response.content.decode()
    assert f'src="/files/{image}"' in html  # the thumbnail, served by the app
    assert "notes.md" in html
    answer = await Message.objects.aget(role="assistant")
    await wait_until_final(answer.pk)

    # The same send again (a retry after a lost response): the first one's messages.
    again = await alice_async.post(url, data, headers=HTMX)
    assert again.status_code == 200
    assert await Message.objects.acount() == 2
    assert await Attachment.objects.acount() == 2
    question = await Message.objects.aget(role="user")
    assert question.attachment_count == 2
    assert {a.message_id async for a in Attachment.objects.all()} == {question.pk}

    turn = provider.calls[0][-1]
    assert [(f.name, f.kind, f.content_type) for f in turn.files] == [
        ("cat.png", "image", "image/png"),
        ("notes.md", "text", "text/markdown"),
    ]
    assert turn.files[0].data == png()
    assert turn.files[1].text == "# Milk\n\nBuy two."


@pytest.mark.django_db(transaction=True)
async def test_files_already_sent_with_another_message_are_refused(
    provider, alice_async, conversation
):
    image = await upload_async(alice_async, "cat.png", png())
    url = f"/c/{conversation.pk}/messages"
    first = await alice_async.post(url, {**send_data("One"), "attachment": image}, headers=HTMX)
    assert first.status_code == 200
    await wait_until_final((await Message.objects.aget(role="assistant")).pk)
    second = await alice_async.post(url, {**send_data("Two"), "attachment": image}, headers=HTMX)
    assert second.status_code == 400
    assert "cat.png was already sent with another message." in second.content.decode()
    assert await Message.objects.acount() == 2


def test_more_files_than_allowed_are_refused_and_nothing_is_stored(
    provider, alice_client, conversation, settings
):
    settings.CHAT = {**settings.CHAT, "ATTACHMENTS_PER_MESSAGE": 2}
    ids = [upload(alice_client, f"{n}.txt", b"x").json()["id"] for n in range(3)]
    response = alice_client.post(
        f"/c/{conversation.pk}/messages", {**send_data("Hi"), "attachment": ids}, headers=HTMX
    )
    assert response.status_code == 400
    assert "at most 2 files (this one has 3)" in response.content.decode()
    assert not Message.objects.exists()
    assert not Attachment.objects.filter(message__isnull=False).exists()


def test_someone_elses_or_a_malformed_file_id_is_refused(provider, alice_client, conversation, bob):
    bobs = Client()
    bobs.force_login(bob)
    theirs = upload(bobs, "b.txt", b"bob's").json()["id"]
    url = f"/c/{conversation.pk}/messages"
    for ids, says in [
        ([theirs], "is no longer here"),
        ([str(uuid.uuid4())], "is no longer here"),
        (["../../etc"], "malformed file id"),
    ]:
        response = alice_client.post(url, {**send_data("Hi"), "attachment": ids}, headers=HTMX)
        assert response.status_code == 400 and says in response.content.decode()
    assert not Message.objects.exists()
    assert Attachment.objects.get().message is None


def test_an_image_to_a_model_that_takes_none_is_a_400_naming_it(alice_client, settings):
    settings.CHAT = {
        **settings.CHAT,
        "ENDPOINTS": '[{"id": "textonly", "kind": "openai", "label": "Text Only",'
        ' "vision": false, "models": ["t1"]}]',
    }
    image = upload(alice_client, "cat.png", png()).json()["id"]
    response = alice_client.post(
        "/c/new/messages", {**send_data("See?"), "attachment": image}, headers=HTMX
    )
    assert response.status_code == 400
    assert response.content.decode() == (
        "The model Text Only cannot see images: remove them or choose another model."
    )
    assert not Conversation.objects.exists() and not Message.objects.exists()
    # A document is fine for it.
    notes = upload(alice_client, "n.txt", b"words").json()["id"]
    response = alice_client.post(
        "/c/new/messages", {**send_data("Read"), "attachment": notes}, headers=HTMX
    )
    assert response.status_code == 200


def test_the_demo_takes_no_images_unless_configured(settings):
    from conversations.providers import catalog

    assert not catalog.takes_images("demo")
    seeing = '[{"id": "demo", "kind": "demo", "vision": true}]'
    settings.CHAT = {**settings.CHAT, "ENDPOINTS": seeing}
    assert catalog.takes_images("demo")
    settings.CHAT = {**settings.CHAT, "ENDPOINTS": '[{"id": "o", "kind": "openai"}]'}
    assert catalog.takes_images("o")


def test_a_send_without_files_runs_no_query_for_them(provider, alice_client, conversation):
    with CaptureQueriesContext(connection) as queries:
        response = alice_client.post(
            f"/c/{conversation.pk}/messages", send_data("Plain"), headers=HTMX
        )
    assert response.status_code == 200
    assert not [q for q in queries if "conversations_attachment" in q["sql"]]


def test_the_page_loads_attachments_in_one_query_and_none_without_any(
    provider, alice, alice_client, conversation
):
    with CaptureQueriesContext(connection) as queries:
        alice_client.get(f"/c/{conversation.pk}/")
    assert not [q for q in queries if "conversations_attachment" in q["sql"]]
    previous = None
    for n in range(3):
        message = Message.objects.create(
            conversation=conversation, seq=n + 1, role="user", content=f"m{n}", parent=previous
        )
        previous = message
        attachment = upload(alice_client, f"{n}.txt", b"x")
        Attachment.objects.filter(pk=attachment.json()["id"]).update(message=message)
        Message.objects.filter(pk=message.pk).update(attachment_count=1)
    Conversation.objects.filter(pk=conversation.pk).update(current_leaf=previous)
    with CaptureQueriesContext(connection) as queries:
        page = alice_client.get(f"/c/{conversation.pk}/").content.decode()
    assert len([q for q in queries if "conversations_attachment" in q["sql"]]) == 1
    assert all(f"{n}.txt" in page for n in range(3))


# ---------------------------------------------------------------------------------------
# What the model receives.


def test_demo_lists_the_files_it_was_sent():
    import asyncio

    files = (
        TurnFile(name="cat.png", content_type="image/png", size=2048, kind="image", data=b"x"),
        TurnFile(name="n.md", content_type="text/markdown", size=12, kind="text", text="hi"),
    )

    async def answer() -> str:
        provider = DemoProvider(token_interval=0)
        return "".join(
            [d async for d in provider.stream([ChatTurn("user", "Look", files)], StreamResult())]
        )

    assert asyncio.run(answer()).startswith(
        "You attached: `cat.png` (image/png, 2.0 KB); `n.md` (text/markdown, 12 bytes)."
    )


# ---------------------------------------------------------------------------------------
# Who may open a file.


@pytest.fixture
def sent(provider, alice, conversation):
    """A question of Alice's with an image and a document attached, and its answer."""
    question = Message.objects.create(
        conversation=conversation, seq=1, role="user", content="Look", attachment_count=2
    )
    answer = Message.objects.create(
        conversation=conversation, seq=2, role="assistant", content="Nice", parent=question
    )
    Conversation.objects.filter(pk=conversation.pk).update(current_leaf=answer)
    client = Client()
    client.force_login(alice)
    made = [upload(client, "cat.png", png()).json(), upload(client, "a.csv", b"a,b\n").json()]
    Attachment.objects.update(message=question)
    return {"image": made[0]["id"], "csv": made[1]["id"], "question": question}


def test_the_owner_gets_a_file_with_strict_headers(alice_client, sent):
    image = alice_client.get(f"/files/{sent['image']}")
    assert image.status_code == 200
    assert image["Content-Type"] == "image/png"
    assert image["X-Content-Type-Options"] == "nosniff"
    assert image["Content-Security-Policy"] == "default-src 'none'; img-src 'self'; sandbox"
    assert image["Content-Disposition"].startswith("inline")
    assert b"".join(image.streaming_content) == png()
    document = alice_client.get(f"/files/{sent['csv']}")
    assert document["Content-Type"] == "text/plain; charset=utf-8"
    assert document["Content-Disposition"] == 'attachment; filename="a.csv"'
    assert document["X-Content-Type-Options"] == "nosniff"


def test_anyone_elses_file_a_hidden_one_or_an_unknown_one_is_a_404(alice_client, bob, sent):
    bobs = Client()
    bobs.force_login(bob)
    assert bobs.get(f"/files/{sent['image']}").status_code == 404
    assert alice_client.get(f"/files/{uuid.uuid4()}").status_code == 404
    Attachment.objects.filter(pk=sent["image"]).update(hidden=True)
    assert alice_client.get(f"/files/{sent['image']}").status_code == 404
    # A file of a message, or of a conversation, a moderator hid: 404 too.
    Message.objects.filter(pk=sent["question"].pk).update(hidden=True)
    assert alice_client.get(f"/files/{sent['csv']}").status_code == 404
    Message.objects.filter(pk=sent["question"].pk).update(hidden=False)
    Conversation.objects.update(hidden=True)
    assert alice_client.get(f"/files/{sent['csv']}").status_code == 404
    Conversation.objects.update(hidden=False)
    assert alice_client.get(f"/files/{sent['csv']}").status_code == 200
    assert Client().get(f"/files/{sent['csv']}").status_code == 302  # to sign in


@pytest.mark.django_db(transaction=True)
async def test_a_hidden_attachment_is_not_sent_to_the_model(provider, alice_async, conversation):
    image = await upload_async(alice_async, "cat.png", png())
    notes = await upload_async(alice_async, "n.txt", b"secret")
    await Attachment.objects.filter(pk=notes).aupdate(hidden=True)
    url = f"/c/{conversation.pk}/messages"
    await alice_async.post(url, {**send_data("x"), "attachment": [image, notes]}, headers=HTMX)
    await wait_until_final((await Message.objects.aget(role="assistant")).pk)
    assert [f.name for f in provider.calls[0][-1].files] == ["cat.png"]


def test_a_shared_link_serves_the_images_of_its_messages_only(alice_client, conversation, sent):
    link = sharing.share(conversation=conversation)
    page = Client().get(f"/s/{link.token}").content.decode()
    assert f'src="/s/{link.token}/files/{sent["image"]}"' in page
    assert "a.csv" in page and f"/files/{sent['csv']}" not in page
    viewer = Client()
    assert viewer.get(f"/s/{link.token}/files/{sent['image']}").status_code == 200
    assert viewer.get(f"/s/{link.token}/files/{sent['csv']}").status_code == 404  # a document
    # An image on a message after the shared snapshot, or of another conversation: 404.
    later = Message.objects.create(
        conversation=conversation, seq=3, role="user", content="later", parent=sent["question"]
    )
    extra = upload(alice_client, "dog.png", png(color="blue")).json()["id"]
    Attachment.objects.filter(pk=extra).update(message=later)
    assert viewer.get(f"/s/{link.token}/files/{extra}").status_code == 404
    assert viewer.get(f"/s/{link.token}/files/{uuid.uuid4()}").status_code == 404
    sharing.revoke(link=link, by=conversation.owner)
    assert viewer.get(f"/s/{link.token}/files/{sent['image']}").status_code == 404


# ---------------------------------------------------------------------------------------
# Cleanup.


def test_deleting_a_conversation_removes_its_files(
    alice_client, conversation, sent, media, django_capture_on_commit_callbacks
):
    unsent = upload(alice_client, "keep.txt", b"not sent yet").json()["id"]
    assert len(stored_files(media)) == 3
    with django_capture_on_commit_callbacks(execute=True):
        alice_client.post(f"/c/{conversation.pk}/delete")
    assert list(Attachment.objects.values_list("pk", flat=True)) == [uuid.UUID(unsent)]
    assert len(stored_files(media)) == 1


def test_deleting_an_account_removes_its_files(
    alice, sent, media, django_capture_on_commit_callbacks
):
    assert len(stored_files(media)) == 2
    with django_capture_on_commit_callbacks(execute=True):
        get_user_model().objects.filter(pk=alice.pk).delete()
    assert not Attachment.objects.exists() and stored_files(media) == []


def test_a_rolled_back_delete_keeps_the_file(sent, media):
    from django.db import transaction

    with pytest.raises(RuntimeError), transaction.atomic():
        Attachment.objects.all().delete()
        raise RuntimeError
    assert len(stored_files(media)) == 2


def test_uploads_never_sent_expire(alice, media, django_capture_on_commit_callbacks):
    from datetime import timedelta

    from django.core.management import call_command
    from django.utils import timezone

    client = Client()
    client.force_login(alice)
    old = upload(client, "old.txt", b"old").json()["id"]
    upload(client, "new.txt", b"new")
    Attachment.objects.filter(pk=old).update(created_at=timezone.now() - timedelta(hours=25))
    with django_capture_on_commit_callbacks(execute=True):
        call_command("purge_attachments")
    assert list(Attachment.objects.values_list("name", flat=True)) == ["new.txt"]
    assert len(stored_files(media)) == 1


# ---------------------------------------------------------------------------------------
# The exact image parts each API receives (the SDKs unmodified, against fake servers).


@pytest.fixture
def upstreams(settings):
    from conversations.providers import catalog
    from tests.test_anthropic_provider import FakeAnthropicServer
    from tests.test_anthropic_provider import Reply as AnthropicReply
    from tests.test_openai_provider import FakeOpenAIServer
    from tests.test_openai_provider import Reply as OpenAIReply

    local, claude = FakeOpenAIServer(), FakeAnthropicServer()
    local.models, claude.models = ["llava"], ["claude-a"]
    local.replies = [OpenAIReply(deltas=["A ", "cat"])]
    claude.replies = [AnthropicReply(deltas=["A ", "cat"])]
    settings.CHAT = {
        **settings.CHAT,
        "ENDPOINTS": (
            f'[{{"id": "local", "kind": "openai", "base_url": "{local.url}", "models": ["llava"]}},'
            f' {{"id": "claude", "kind": "anthropic", "base_url": "{claude.url}",'
            ' "models": ["claude-a"]}]'
        ),
    }
    yield local, claude
    local.close()
    claude.close()
    catalog.reset()


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("model", ["local/llava", "claude/claude-a"])
async def test_the_image_part_each_api_receives(upstreams, alice_async, model):
    local, claude = upstreams
    image = await upload_async(alice_async, "cat.png", png())
    notes = await upload_async(alice_async, "notes.txt", b"Buy milk.")
    response = await alice_async.post(
        "/c/new/messages",
        {**send_data("What is it?"), "model": model, "attachment": [image, notes]},
        headers=HTMX,
    )
    assert response.status_code == 200, response.content
    answer = await wait_until_final((await Message.objects.aget(role="assistant")).pk)
    assert answer.content == "A cat"
    encoded = base64.b64encode(png()).decode()
    text = "What is it?\n\n[Attached file: notes.txt (text/plain)]\nBuy milk."
    if model.startswith("local"):
        assert local.requests[-1]["body"]["messages"] == [
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": text},
                    {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{encoded}"}},
                ],
            }
        ]
    else:
        assert claude.requests[-1]["body"]["messages"] == [
            {
                "role": "user",
                "content": [
                    {
                        "type": "image",
                        "source": {"type": "base64", "media_type": "image/png", "data": encoded},
                    },
                    {"type": "text", "text": text},
                ],
            }
        ]


# ---------------------------------------------------------------------------------------
# Moderators.


@pytest.fixture
def moderator(db):
    from conversations.services.moderation import ensure_moderators_group

    user = get_user_model().objects.create_user(
        username="mod", email="mod@example.com", password="x", is_staff=True
    )
    user.groups.add(ensure_moderators_group())
    client = Client()
    client.force_login(user)
    return client


def test_moderators_see_attachments_in_the_transcript_and_can_hide_them(
    moderator, alice_client, conversation, sent
):
    from conversations.models import ModerationAction

    page = moderator.get(f"/admin/conversations/conversation/{conversation.pk}/change/")
    html = page.content.decode()
    file_url = f"/admin/conversations/attachment/{sent['image']}/file/"
    assert f'src="{file_url}"' in html and "a.csv" in html
    response = moderator.post(
        "/admin/conversations/attachment/",
        {"action": "hide_attachments", "_selected_action": [sent["image"]], "reason": "gore"},
    )
    assert response.status_code == 302
    assert Attachment.objects.get(pk=sent["image"]).hidden
    assert ModerationAction.objects.get().target.startswith(f"attachment {sent['image']} (cat.png)")
    assert alice_client.get(f"/files/{sent['image']}").status_code == 404  # not served
    assert moderator.get(file_url).status_code == 200  # the moderator still sees it
    page = alice_client.get(f"/c/{conversation.pk}/").content.decode()
    assert "A file hidden by a moderator" in page and f"/files/{sent['image']}" not in page


def test_the_admins_file_view_is_for_moderators_only(alice_client, sent):
    url = f"/admin/conversations/attachment/{sent['image']}/file/"
    assert alice_client.get(url).status_code == 302  # the admin's sign-in


# ---------------------------------------------------------------------------------------
# Export and import.


def test_export_lists_attachments_and_with_files_round_trips_them(
    alice, conversation, sent, media, tmp_path, django_capture_on_commit_callbacks
):
    import json

    from django.core.management import call_command

    out, files_dir = tmp_path / "export.jsonl", tmp_path / "files"
    call_command("export_conversations", "--output", str(out), "--with-files", str(files_dir))
    records = [json.loads(line) for line in out.read_text().splitlines()]
    question = next(r for r in records if r["type"] == "message" and r["role"] == "user")
    answer = next(r for r in records if r["type"] == "message" and r["role"] == "assistant")
    assert "attachments" not in answer
    assert question["attachments"] == [
        {
            "id": sent["image"],
            "name": "cat.png",
            "kind": "image",
            "content_type": "image/png",
            "size": len(png()),
            "hidden": False,
            "file": f"{sent['image']}.png",
        },
        {
            "id": sent["csv"],
            "name": "a.csv",
            "kind": "text",
            "content_type": "text/csv",
            "size": 4,
            "hidden": False,
            "file": f"{sent['csv']}.csv",
        },
    ]
    assert (files_dir / f"{sent['image']}.png").read_bytes() == png()
    csv_export = tmp_path / "export.csv"
    call_command("export_conversations", "--format", "csv", "--output", str(csv_export))
    assert "cat.png" not in csv_export.read_text()  # CSV keeps its columns

    with django_capture_on_commit_callbacks(execute=True):
        Conversation.objects.all().delete()
    assert stored_files(media) == []
    call_command("import_conversations", str(out), "--with-files", str(files_dir))
    question_row = Message.objects.get(role="user")
    assert question_row.attachment_count == 2
    restored = Attachment.objects.get(pk=sent["image"])
    assert (restored.message_id, restored.owner_id, restored.name) == (
        question_row.pk,
        alice.pk,
        "cat.png",
    )
    client = Client()
    client.force_login(alice)
    assert b"".join(client.get(f"/files/{sent['image']}").streaming_content) == png()
    assert Attachment.objects.get(pk=sent["csv"]).text == "a,b\n"
    # A second export is the same file.
    again = tmp_path / "again.jsonl"
    call_command("export_conversations", "--output", str(again))
    assert again.read_text() == out.read_text()


def test_an_import_whose_file_is_missing_or_lies_fails_that_conversation(
    conversation, sent, tmp_path, media
):
    from django.core.management import call_command
    from django.core.management.base import CommandError

    out, files_dir = tmp_path / "export.jsonl", tmp_path / "files"
    call_command("export_conversations", "--output", str(out), "--with-files", str(files_dir))
    Conversation.objects.all().delete()
    Attachment.objects.all().delete()
    (files_dir / f"{sent['image']}.png").write_bytes(b"text, not an image")
    with pytest.raises(CommandError):
        call_command("import_conversations", str(out), "--with-files", str(files_dir))
    assert not Conversation.objects.exists() and not Attachment.objects.exists()
    # Without the files, the messages come without them.
    call_command("import_conversations", str(out))
    assert Message.objects.get(role="user").attachment_count == 0
    assert not Attachment.objects.exists()


def test_an_upload_clears_the_uploaders_own_expired_uploads_first(alice_client, bob, media):
    from datetime import timedelta

    from django.utils import timezone

    bobs = Client()
    bobs.force_login(bob)
    mine = upload(alice_client, "old.txt", b"old").json()["id"]
    theirs = upload(bobs, "old.txt", b"old").json()["id"]
    long_ago = timezone.now() - timedelta(hours=25)
    Attachment.objects.filter(pk__in=[mine, theirs]).update(created_at=long_ago)
    upload(alice_client, "new.txt", b"new")
    assert sorted(Attachment.objects.values_list("owner__username", "name")) == [
        ("alice", "new.txt"),
        ("bob", "old.txt"),
    ]


def test_a_vision_flag_that_is_not_a_boolean_stops_start_up():
    from django.core.exceptions import ImproperlyConfigured

    from conversations.providers import catalog

    with pytest.raises(ImproperlyConfigured, match="vision must be true or false"):
        catalog.endpoints_from_settings({"ENDPOINTS": '[{"id": "a", "vision": "yes"}]'})


@pytest.mark.django_db(transaction=True)
async def test_files_alone_can_be_sent_and_title_a_new_chat(upstreams, alice_async):
    _local, claude = upstreams
    image = await upload_async(alice_async, "cat.png", png())
    response = await alice_async.post(
        "/c/new/messages",
        {**send_data(""), "model": "claude/claude-a", "attachment": image},
        headers=HTMX,
    )
    assert response.status_code == 200, response.content
    await wait_until_final((await Message.objects.aget(role="assistant")).pk)
    conversation = await Conversation.objects.aget()
    assert conversation.title == "cat.png"
    encoded = base64.b64encode(png()).decode()
    assert claude.requests[-1]["body"]["messages"] == [
        {
            "role": "user",
            "content": [
                {
                    "type": "image",
                    "source": {"type": "base64", "media_type": "image/png", "data": encoded},
                }
            ],
        }
    ]


def test_no_text_and_no_files_is_still_refused_and_an_edit_needs_text(
    provider, alice_client, conversation
):
    response = alice_client.post(
        f"/c/{conversation.pk}/messages", {**send_data(""), "attachment": ""}, headers=HTMX
    )
    assert response.status_code == 422
    assert "Type a message first." in response.content.decode()
    question = Message.objects.create(conversation=conversation, seq=1, role="user", content="q")
    notes = upload(alice_client, "n.txt", b"x").json()["id"]
    response = alice_client.post(
        f"/c/{conversation.pk}/m/{question.pk}/edit",
        {**send_data(""), "attachment": notes},
        headers=HTMX,
    )
    assert response.status_code == 422
    assert Message.objects.count() == 1


@pytest.mark.django_db(transaction=True)
async def test_an_edit_keeps_the_questions_files_and_their_bytes_go_with_the_last_row(
    provider, alice_async, conversation, media
):
    image = await upload_async(alice_async, "cat.png", png())
    hidden = await upload_async(alice_async, "secret.txt", b"hidden by a moderator")
    url = f"/c/{conversation.pk}/messages"
    await alice_async.post(url, {**send_data("Look"), "attachment": [image, hidden]}, headers=HTMX)
    await wait_until_final((await Message.objects.aget(role="assistant")).pk)
    await Attachment.objects.filter(pk=hidden).aupdate(hidden=True)
    question = await Message.objects.aget(role="user")

    response = await alice_async.post(
        f"/c/{conversation.pk}/m/{question.pk}/edit", send_data("Look again"), headers=HTMX
    )
    assert response.status_code == 200
    edited = await Message.objects.aget(role="user", content="Look again")
    await wait_until_final((await Message.objects.aget(reply_to=edited)).pk)
    assert edited.attachment_count == 1
    copy = await Attachment.objects.aget(message=edited)
    assert (copy.name, copy.pk != uuid.UUID(image)) == ("cat.png", True)
    assert [f.name for f in provider.calls[-1][-1].files] == ["cat.png"]
    assert len(stored_files(media)) == 2  # the bytes are not copied

    await Attachment.objects.filter(pk=image).adelete()  # committed: the copy still names them
    assert len(stored_files(media)) == 2
    await alice_async.post(f"/c/{conversation.pk}/delete")
    assert stored_files(media) == []


def test_uploads_past_the_per_minute_limit_are_refused_with_when_and_store_nothing(
    alice_client, media, settings, monkeypatch
):
    settings.CHAT = {**settings.CHAT, "UPLOADS_PER_MINUTE": 2}
    # Inside one minute's window (30 s in), however slow the machine: the window is fixed.
    monkeypatch.setattr(ratelimit, "time", SimpleNamespace(time=lambda: 1_700_000_010.0))
    for name in ("a.txt", "b.txt"):
        assert upload(alice_client, name, b"fine").status_code == 201
    refused = upload(alice_client, "c.txt", b"one too many")
    assert refused.status_code == 429
    assert "Limit of 2 uploads per minute reached. Try again in" in refused.json()["error"]
    assert refused["Retry-After"] == "30"
    assert sorted(Attachment.objects.values_list("name", flat=True)) == ["a.txt", "b.txt"]
    assert len(stored_files(media)) == 2
