"""Attachments: an upload checked and stored (unattached), a send's ids checked, cleanup.

A file is uploaded before its message is sent (`store_upload`), which answers with its id;
the send carries the ids (`for_send` checks them, `sending._ask` attaches them in the send's
transaction). A retry of the send (same `client_id`) finds the first send's message, so no
file is attached, or stored, twice. Uploads never sent expire (`purge_unsent`).

The real type comes from the content, never from the name or the browser: images are
opened and verified by Pillow (with a pixel cap of our own before any decoding), PDFs are
read by pypdf (their text goes to the model), text files must decode as UTF-8. The name's
extension must agree with what the content is. Bytes never pass through the hub, the relay
or the Channels layer: the storage holds them, the database the metadata.
"""

from __future__ import annotations

import io
import unicodedata
import uuid
import warnings
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import User
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.core.files.uploadedfile import UploadedFile
from django.db import transaction
from django.db.models import Sum
from django.utils import timezone

from conversations.models import Attachment, Message

# Image formats we take, as Pillow names them: (content type, extensions).
IMAGE_TYPES = {
    "PNG": ("image/png", (".png",)),
    "JPEG": ("image/jpeg", (".jpg", ".jpeg")),
    "MPO": ("image/jpeg", (".jpg", ".jpeg")),  # a camera's JPEG with more than one picture
    "GIF": ("image/gif", (".gif",)),
    "WEBP": ("image/webp", (".webp",)),
}
# Text-like files: plain text, Markdown, CSV, source code. Served as text/plain.
TEXT_TYPES = {
    ".txt": "text/plain",
    ".md": "text/markdown",
    ".markdown": "text/markdown",
    ".csv": "text/csv",
    ".tsv": "text/tab-separated-values",
    ".json": "application/json",
    ".yaml": "text/plain",
    ".yml": "text/plain",
    ".toml": "text/plain",
    ".xml": "text/plain",
    ".html": "text/plain",
    ".css": "text/plain",
    ".py": "text/x-python",
    ".js": "text/plain",
    ".ts": "text/plain",
    ".java": "text/plain",
    ".c": "text/plain",
    ".h": "text/plain",
    ".cpp": "text/plain",
    ".rs": "text/plain",
    ".go": "text/plain",
    ".rb": "text/plain",
    ".sh": "text/plain",
    ".sql": "text/plain",
    ".log": "text/plain",
}
PDF_TYPE = "application/pdf"
# Magic bytes of the images we take (Pillow confirms), and of a PDF.
_IMAGE_MAGIC = (b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff", b"GIF87a", b"GIF89a")
_PDF_MAGIC = b"%PDF-"
NAME_CHARS = 120


class AttachmentRefused(ValueError):
    """A file or a send's files we do not take; the message is safe to show."""


@dataclass(frozen=True)
class Checked:
    kind: str
    content_type: str
    extension: str
    text: str = ""
    width: int | None = None
    height: int | None = None


def limits() -> dict[str, int]:
    chat = settings.CHAT
    return {
        "max_bytes": chat["ATTACHMENT_MAX_BYTES"],
        "per_message": chat["ATTACHMENTS_PER_MESSAGE"],
        "per_user": chat["ATTACHMENT_STORAGE_PER_USER"],
        "max_pixels": chat["ATTACHMENT_MAX_PIXELS"],
        "text_chars": chat["ATTACHMENT_TEXT_CHARS"],
    }


def human_size(size: int) -> str:
    value = float(size)
    for unit in ("bytes", "KB", "MB"):
        if value < 1024 or unit == "MB":
            return f"{int(value)} {unit}" if unit == "bytes" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{size} bytes"


def display_name(raw: str) -> str:
    """The name people see: the last part of any path, no control characters, no leading
    dots, at most NAME_CHARS (the extension kept). Never used as a storage path."""
    name = unicodedata.normalize("NFC", raw or "").replace("\\", "/").rsplit("/", 1)[-1]
    name = "".join(c for c in name if unicodedata.category(c)[0] != "C").strip().lstrip(".")
    if len(name) > NAME_CHARS:
        stem, dot, ext = name.rpartition(".")
        ext = ext[:10] if dot else ""
        name = (stem if dot else name)[: NAME_CHARS - len(ext) - 1] + (f".{ext}" if ext else "")
    return name.strip() or "file"


def store_upload(*, owner: User, upload: UploadedFile) -> Attachment:
    """Check an uploaded file and store it, unattached (AttachmentRefused: nothing stored)."""
    cap = limits()
    size = upload.size or 0
    if size == 0:
        raise AttachmentRefused("This file is empty.")
    if size > cap["max_bytes"]:
        raise AttachmentRefused(
            f"This file is {human_size(size)}: files can be at most {human_size(cap['max_bytes'])}."
        )
    data = upload.read(cap["max_bytes"] + 1)
    if len(data) != size or len(data) > cap["max_bytes"]:
        raise AttachmentRefused("This file could not be read whole: try again.")
    name = display_name(upload.name or "")
    checked = sniff(data, name=name)
    if "." not in name:
        name += checked.extension
    storage_name = f"attachments/{owner.pk}/{uuid.uuid4().hex}{checked.extension}"
    # The uploader's own expired uploads go first (they count against the cap), so the rule
    # holds without the cron job for anyone who uploads again.
    purge_unsent(owner=owner)
    with transaction.atomic():
        # Under the owner's row lock (as sends take it): two uploads at once cannot both
        # pass the storage cap.
        list(get_user_model().objects.select_for_update().filter(pk=owner.pk).values_list("pk"))
        used = Attachment.objects.filter(owner=owner).aggregate(total=Sum("size"))["total"] or 0
        if used + size > cap["per_user"]:
            raise AttachmentRefused(
                f"Your files take {human_size(used)} of your {human_size(cap['per_user'])}: "
                "delete some conversations with files to make room."
            )
        stored = default_storage.save(storage_name, ContentFile(data))
        try:
            return _create(owner, checked, name=name, size=size, stored=stored)
        except BaseException:
            default_storage.delete(stored)
            raise


def _create(owner: User, checked: Checked, *, name: str, size: int, stored: str) -> Attachment:
    return Attachment.objects.create(
        owner=owner,
        kind=checked.kind,
        name=name,
        content_type=checked.content_type,
        size=size,
        storage_name=stored,
        text=checked.text,
        width=checked.width,
        height=checked.height,
    )


def sniff(data: bytes, *, name: str) -> Checked:
    """What the content is, checked against the name's extension (AttachmentRefused)."""
    extension = _extension(name)
    if data.startswith(_IMAGE_MAGIC) or (data[:4] == b"RIFF" and data[8:12] == b"WEBP"):
        checked = _image(data)
        known = IMAGE_TYPES[_pillow_format(checked.content_type)][1]
        if extension and extension not in known:
            raise AttachmentRefused(
                f"This file's content ({checked.content_type}) does not match its name."
            )
        return checked
    if data.startswith(_PDF_MAGIC):
        if extension and extension != ".pdf":
            raise AttachmentRefused(f"This file's content ({PDF_TYPE}) does not match its name.")
        return _pdf(data)
    if extension in (".png", ".jpg", ".jpeg", ".gif", ".webp", ".pdf"):
        raise AttachmentRefused("This file's content does not match its name.")
    if extension not in TEXT_TYPES:
        raise AttachmentRefused(
            "This type of file is not taken: send images (PNG, JPEG, GIF, WebP), PDFs, "
            "or text files (plain text, Markdown, CSV, source code)."
        )
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise AttachmentRefused("This text file is not UTF-8 text.") from None
    if "\x00" in text:
        raise AttachmentRefused("This file's content does not match its name.")
    return Checked(
        kind=Attachment.Kind.TEXT,
        content_type=TEXT_TYPES[extension],
        extension=extension,
        text=_capped(text.removeprefix("\ufeff")),
    )


def _image(data: bytes) -> Checked:
    from PIL import Image, UnidentifiedImageError

    # Pillow's own bomb check (an error past twice MAX_IMAGE_PIXELS) and ours, tighter,
    # read from the header before anything is decoded.
    cap = limits()["max_pixels"]
    bomb = "This image is too large to open"
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as image:
                width, height = image.size
                fmt = image.format or ""
                if width * height > cap:
                    raise AttachmentRefused(
                        f"{bomb} ({width} x {height} pixels; at most {cap:,} pixels)."
                    )
                if fmt not in IMAGE_TYPES:
                    raise AttachmentRefused("This type of image is not taken.")
                image.verify()
            with Image.open(io.BytesIO(data)) as image:
                image.load()  # verify() reads no pixels: a truncated image fails here
    except AttachmentRefused:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise AttachmentRefused(f"{bomb}.") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError):
        raise AttachmentRefused("This image is damaged or not an image.") from None
    content_type, extensions = IMAGE_TYPES[fmt]
    return Checked(
        kind=Attachment.Kind.IMAGE,
        content_type=content_type,
        extension=extensions[0],
        width=width,
        height=height,
    )


def _pillow_format(content_type: str) -> str:
    return next(fmt for fmt, (ct, _exts) in IMAGE_TYPES.items() if ct == content_type)


def _pdf(data: bytes) -> Checked:
    from pypdf import PdfReader
    from pypdf.errors import PyPdfError

    cap = limits()["text_chars"]
    try:
        reader = PdfReader(io.BytesIO(data), strict=False)
        if reader.is_encrypted:
            raise AttachmentRefused(
                "This PDF is encrypted: send one that opens without a password."
            )
        parts: list[str] = []
        length = 0
        for page in reader.pages:
            text = page.extract_text() or ""
            parts.append(text)
            length += len(text)
            if length > cap:
                break
    except AttachmentRefused:
        raise
    except (PyPdfError, ValueError, KeyError, TypeError, OSError, RecursionError):
        raise AttachmentRefused("This PDF could not be read: it may be damaged.") from None
    return Checked(
        kind=Attachment.Kind.PDF,
        content_type=PDF_TYPE,
        extension=".pdf",
        text=_capped("\n\n".join(parts).replace("\x00", "")),
    )


def _capped(text: str) -> str:
    cap = limits()["text_chars"]
    if len(text) <= cap:
        return text
    return text[:cap] + f"\n[… cut here: only the first {cap:,} characters are sent]"


def _extension(name: str) -> str:
    stem, dot, ext = name.rpartition(".")
    return f".{ext.lower()}" if dot and stem else ""


# ---------------------------------------------------------------------------------------
# A send's attachments.


def parse_ids(raw: Iterable[str]) -> list[uuid.UUID]:
    ids: list[uuid.UUID] = []
    for value in raw:
        try:
            pk = uuid.UUID(value)
        except ValueError:
            raise AttachmentRefused(
                "This page sent a malformed file id. Reload the page."
            ) from None
        if pk not in ids:
            ids.append(pk)
    return ids


def for_send(
    *, owner: User, ids: list[uuid.UUID], client_id: uuid.UUID | None, endpoint_id: str
) -> list[Attachment]:
    """The uploads a send names, checked (AttachmentRefused): the sender's, not yet sent
    with another message (a repeat of the same send, same `client_id`, may name its own),
    no more than allowed, and no image for a model that takes none. Called only when the
    send names files: a send without any runs no query here."""
    from conversations.providers import catalog

    cap = limits()["per_message"]
    if len(ids) > cap:
        raise AttachmentRefused(
            f"A message can have at most {cap} files (this one has {len(ids)})."
        )
    found = list(Attachment.objects.filter(owner=owner, pk__in=ids).select_related("message"))
    if len(found) != len(ids):
        raise AttachmentRefused(
            "A file of this message is no longer here: remove it and attach it again."
        )
    for attachment in found:
        sent = attachment.message
        if sent is not None and (client_id is None or sent.client_id != client_id):
            raise AttachmentRefused(f"{attachment.name} was already sent with another message.")
    if any(a.is_image for a in found) and not catalog.takes_images(endpoint_id):
        raise AttachmentRefused(
            f"The model {catalog.label_of(endpoint_id)} cannot see images: "
            "remove them or choose another model."
        )
    order = {pk: i for i, pk in enumerate(ids)}
    return sorted(found, key=lambda a: order[a.pk])


def attach(*, message: Message, attachments: list[Attachment]) -> None:
    """Inside the send's transaction, the message stored with its `attachment_count`: the
    uploads become its. One that another send took meanwhile fails the whole send (the
    transaction is rolled back)."""
    taken = Attachment.objects.filter(
        pk__in=[a.pk for a in attachments],
        owner_id=message.conversation.owner_id,
        message__isnull=True,
    ).update(message=message)
    if taken != len(attachments):
        raise AttachmentRefused("A file of this message was just sent with another message.")
    for attachment in attachments:
        attachment.message = message
    message.shown_attachments = attachments


def carried_by_edit(message: Message) -> list[Attachment]:
    """Copies of `message`'s files (not those a moderator hid) for the new version an edit
    makes of it: new rows naming the same stored bytes, saved by `attach_copies`."""
    if not message.attachment_count:
        return []
    return [
        Attachment(
            owner_id=a.owner_id,
            kind=a.kind,
            name=a.name,
            content_type=a.content_type,
            size=a.size,
            storage_name=a.storage_name,
            text=a.text,
            width=a.width,
            height=a.height,
        )
        for a in message.attachments.filter(hidden=False)
    ]


def attach_copies(*, message: Message, copies: list[Attachment]) -> None:
    for copy in copies:
        copy.message = message
    Attachment.objects.bulk_create(copies)
    message.shown_attachments = copies


# ---------------------------------------------------------------------------------------
# Reading and cleanup.


def purge_unsent(*, older_than: timedelta | None = None, owner: User | None = None) -> int:
    """Delete uploads never sent and older than CHAT_ATTACHMENT_UNSENT_HOURS (of `owner`
    only, if given); how many."""
    age = older_than or timedelta(hours=settings.CHAT["ATTACHMENT_UNSENT_HOURS"])
    stale = Attachment.objects.filter(message__isnull=True, created_at__lt=timezone.now() - age)
    if owner is not None:
        stale = stale.filter(owner=owner)
    count = 0
    for attachment in stale.iterator():
        attachment.delete()  # the signal removes the file once committed
        count += 1
    return count


def remove_file(sender: type[Attachment], instance: Attachment, **kwargs: object) -> None:
    """Its bytes go once the row's deletion commits, unless another row still names them
    (an edit's copy): a conversation or an account deleted (cascades send this per row),
    an expired upload. A rollback keeps the file."""
    name = instance.storage_name

    def remove() -> None:
        if not Attachment.objects.filter(storage_name=name).exists():
            default_storage.delete(name)

    transaction.on_commit(remove)
