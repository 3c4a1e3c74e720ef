"""Presets: a user's prompt templates (system prompt, model, temperature) that a new chat
starts from; published ones, made in the admin, that everyone may start from or copy."""

from __future__ import annotations

import io
import json
import uuid

import pytest
from django.contrib.auth.models import Group
from django.core.management import call_command
from django.db import connection
from django.test import AsyncClient, Client
from django.test.utils import CaptureQueriesContext

from conversations.models import Conversation, Message, Preset
from conversations.providers import catalog
from conversations.services import export
from tests.conftest import make_user
from tests.streams import send_data, wait_until_final
from tests.test_model_choice import claude, endpoints, local  # noqa: F401 (fixtures)

HTMX = {"HX-Request": "true"}


def preset_data(**changes: object) -> dict[str, object]:
    return {
        "name": "French tutor",
        "system_prompt": "Answer in French.",
        "model": "demo/demo-mini",
        "temperature": "0.4",
        **changes,
    }


@pytest.fixture
def tutor(alice) -> Preset:
    return Preset.objects.create(
        owner=alice, name="Tutor", system_prompt="Be a patient tutor.", model="demo/demo-mini"
    )


@pytest.fixture
def bobs(bob) -> Preset:
    return Preset.objects.create(owner=bob, name="Bob's secret", system_prompt="Bob only.")


@pytest.fixture
def published(db) -> Preset:
    return Preset.objects.create(
        owner=None, name="Code reviewer", system_prompt="Review code tersely.", temperature=0.2
    )


def first_send(client: Client, **extra: str) -> object:
    return client.post("/c/new/messages", {**send_data("Hello"), **extra}, headers=HTMX)


# ---- the Presets page: create, edit, delete -----------------------------------------------


@pytest.mark.parametrize("headers", [HTMX, {}], ids=["htmx", "plain"])
def test_a_user_creates_a_preset_and_sees_it_listed(alice_client, alice, headers):
    response = alice_client.post("/presets/", preset_data(), headers=headers)

    preset = Preset.objects.get()
    assert (preset.owner, preset.name, preset.system_prompt) == (
        alice,
        "French tutor",
        "Answer in French.",
    )
    assert (preset.model, preset.temperature) == ("demo/demo-mini", 0.4)
    if headers:
        assert response.status_code == 200
        body = response.content.decode()
        assert body.strip().startswith(
            '<div class="presets" id="presets">'
        )  # the section, in place
        assert "Saved." in body
    else:
        assert response.status_code == 302 and response["Location"] == "/presets/"
    page = alice_client.get("/presets/").content.decode()
    assert "French tutor" in page and "Answer in French." in page and "demo/demo-mini" in page


def test_the_presets_page_is_linked_from_the_sidebar(alice_client):
    assert '<a class="btn btn-link" href="/presets/">Presets</a>' in alice_client.get("/").text


def test_blank_model_and_temperature_mean_the_defaults(alice_client):
    alice_client.post("/presets/", preset_data(model="", temperature=""), headers=HTMX)

    preset = Preset.objects.get()
    assert (preset.model, preset.temperature) == ("", None)
    page = alice_client.get("/presets/").text
    assert "Model: your default" in page and "Temperature: the model's own" in page


@pytest.mark.parametrize(
    ("changes", "says"),
    [
        ({"name": ""}, "Give the preset a name."),
        ({"name": "   "}, "Give the preset a name."),
        ({"name": "n" * 81}, "A name can be at most 80 characters (this one has 81)."),
        (
            {"system_prompt": "p" * 4001},
            "A system prompt can be at most 4000 characters (this one has 4001).",
        ),
        ({"temperature": "2.01"}, "The temperature must be a number from 0 to 2 (or blank)."),
        ({"temperature": "-0.1"}, "The temperature must be a number from 0 to 2 (or blank)."),
        ({"temperature": "warm"}, "The temperature must be a number from 0 to 2 (or blank)."),
        ({"temperature": "nan"}, "The temperature must be a number from 0 to 2 (or blank)."),
        ({"model": "nowhere/x"}, "Unknown model 'nowhere/x': choose one from the list."),
        ({"model": "demo/gpt-9"}, "Demo has no model 'gpt-9'."),
    ],
)
@pytest.mark.parametrize("headers", [HTMX, {}], ids=["htmx", "plain"])
def test_bad_input_is_a_422_that_says_why_keeps_the_typing_and_stores_nothing(
    alice_client, changes, says, headers
):
    data = preset_data(**changes)

    response = alice_client.post("/presets/", data, headers=headers)

    assert response.status_code == 422
    body = response.content.decode()
    assert f'role="alert">{says}</p>' in body.replace("&#x27;", "'")
    if data["name"].strip() and len(data["name"]) <= 80:
        assert f'value="{data["name"]}"' in body  # what was typed stays in the form
    assert "Answer in French." in body or "p" * 4001 in body
    assert not Preset.objects.exists()


def test_an_edit_in_place_saves_and_shows_the_row(alice_client, tutor):
    form = alice_client.get(f"/presets/{tutor.pk}/edit", headers=HTMX)
    assert form.status_code == 200
    assert f'id="preset-{tutor.pk}"' in form.text and 'value="Tutor"' in form.text
    assert '<option value="demo/demo-mini" selected>' in form.text

    response = alice_client.post(
        f"/presets/{tutor.pk}/edit", preset_data(name="Tutor 2", temperature="1"), headers=HTMX
    )

    assert response.status_code == 200
    assert response.text.lstrip().startswith(f'<li class="preset" id="preset-{tutor.pk}">')
    assert "Tutor 2" in response.text and "Saved." in response.text
    tutor.refresh_from_db()
    assert (tutor.name, tutor.temperature) == ("Tutor 2", 1.0)


def test_a_bad_edit_is_refused_in_place_and_changes_nothing(alice_client, tutor):
    for headers in (HTMX, {}):
        response = alice_client.post(
            f"/presets/{tutor.pk}/edit", preset_data(temperature="3"), headers=headers
        )
        assert response.status_code == 422
        assert "The temperature must be a number from 0 to 2 (or blank)." in response.text
        assert 'value="3"' in response.text
    tutor.refresh_from_db()
    assert tutor.name == "Tutor" and tutor.temperature is None


def test_an_edit_without_javascript_is_the_page_with_the_form_in_place(alice_client, tutor):
    response = alice_client.get(f"/presets/{tutor.pk}/edit")

    assert response.status_code == 200
    assert "<title>Presets · StreamChat</title>" in response.text
    assert f'action="/presets/{tutor.pk}/edit"' in response.text
    redirect = alice_client.post(f"/presets/{tutor.pk}/edit", preset_data(name="Saved plainly"))
    assert redirect["Location"] == "/presets/"
    assert alice_client.get(f"/presets/{tutor.pk}/").status_code == 302  # the row, for htmx


@pytest.mark.parametrize("headers", [HTMX, {}], ids=["htmx", "plain"])
def test_delete_removes_the_preset_and_keeps_conversations_started_from_it(
    alice_client, alice, tutor, headers
):
    conversation = Conversation.objects.create(
        owner=alice, preset=tutor, system_prompt=tutor.system_prompt
    )

    response = alice_client.post(f"/presets/{tutor.pk}/delete", headers=headers)

    assert response.status_code == (200 if headers else 302)
    assert not Preset.objects.exists()
    conversation.refresh_from_db()
    assert conversation.preset is None and conversation.system_prompt == "Be a patient tutor."


# ---- ownership ------------------------------------------------------------------------------


def test_someone_elses_preset_is_a_404_on_every_route(alice_client, bobs):
    routes = [
        ("get", f"/presets/{bobs.pk}/"),
        ("get", f"/presets/{bobs.pk}/edit"),
        ("post", f"/presets/{bobs.pk}/edit"),
        ("post", f"/presets/{bobs.pk}/delete"),
        ("post", f"/presets/{bobs.pk}/copy"),
    ]
    for method, url in routes:
        for headers in (HTMX, {}):
            response = getattr(alice_client, method)(url, preset_data(), headers=headers)
            assert response.status_code == 404, (method, url)

    assert "Bob&#x27;s secret" not in alice_client.get("/presets/").text
    for value in (bobs.pk, uuid.uuid4(), "not-a-uuid"):
        response = alice_client.get(f"/presets/choice?preset={value}", headers=HTMX)
        assert response.status_code == 404 and "Bob" not in response.text
    assert bobs.pk not in [p.pk for p in Preset.objects.filter(owner__email="alice@example.com")]
    bobs.refresh_from_db()
    assert bobs.name == "Bob's secret"


def test_someone_elses_preset_on_a_first_send_is_a_400_that_stores_nothing(alice_client, bobs):
    for value in (str(bobs.pk), str(uuid.uuid4()), "not-a-uuid"):
        for headers in (HTMX, {}):
            response = alice_client.post(
                "/c/new/messages", {**send_data("Hi"), "preset": value}, headers=headers
            )
            assert response.status_code == 400
            assert response.text == "This preset is not available: choose another one."
    assert not Conversation.objects.exists() and not Message.objects.exists()


def test_signed_out_the_presets_page_asks_to_sign_in(client, tutor):
    assert client.get("/presets/")["Location"].startswith("/accounts/login/")
    assert client.post(f"/presets/{tutor.pk}/delete").status_code == 302
    assert Preset.objects.exists()


# ---- published presets ---------------------------------------------------------------------


def test_published_presets_are_listed_for_everyone_read_only(alice_client, bob, published):
    for client in (alice_client, logged_in(bob)):
        page = client.get("/presets/").text
        row = page[page.index(f'id="preset-{published.pk}"') :]
        row = row[: row.index("</li>")]
        assert "Code reviewer" in row and "published" in row
        assert f"/presets/{published.pk}/edit" not in row
        assert f"/presets/{published.pk}/delete" not in row
        assert f'action="/presets/{published.pk}/copy"' in row
    for url in (f"/presets/{published.pk}/edit", f"/presets/{published.pk}/delete"):
        assert alice_client.post(url, preset_data(name="Mine now")).status_code == 404
    published.refresh_from_db()
    assert published.name == "Code reviewer"


def test_a_published_preset_is_copied_to_ones_own(alice_client, alice, published):
    response = alice_client.post(f"/presets/{published.pk}/copy", headers=HTMX)

    assert response.status_code == 200
    copy = Preset.objects.get(owner=alice)
    assert (copy.name, copy.system_prompt, copy.temperature) == (
        "Code reviewer",
        "Review code tersely.",
        0.2,
    )
    assert alice_client.get(f"/presets/{copy.pk}/edit").status_code == 200
    assert Preset.objects.filter(owner=None).count() == 1


def logged_in(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def staff(email: str, *, moderator: bool):
    user = make_user(email)
    user.is_staff = True
    user.save()
    if moderator:
        call_command("moderators_group", stdout=io.StringIO())
        user.groups.add(Group.objects.get(name="Moderators"))
    return user


def test_moderators_publish_presets_in_the_admin(db, alice_client):
    moderator = logged_in(staff("mod@example.com", moderator=True))

    response = moderator.post(
        "/admin/conversations/preset/add/",
        {"name": "Summariser", "system_prompt": "Summarise.", "model": "", "temperature": ""},
    )

    assert response.status_code == 302, response.text
    preset = Preset.objects.get()
    assert (preset.owner, preset.name, preset.model) == (None, "Summariser", "")
    assert "Summariser" in alice_client.get("/presets/").text
    refused = moderator.post(
        "/admin/conversations/preset/add/",
        {"name": "Bad", "system_prompt": "", "model": "nowhere/x", "temperature": "5"},
    )
    assert refused.status_code == 200
    assert "Unknown model" in refused.text and "from 0 to 2" in refused.text
    assert Preset.objects.count() == 1


def test_staff_without_the_permission_cannot_publish_and_users_presets_stay_private(
    db, tutor, published
):
    onlooker = logged_in(staff("staff@example.com", moderator=False))
    moderator = logged_in(staff("mod@example.com", moderator=True))

    assert onlooker.get("/admin/conversations/preset/add/").status_code == 403
    assert onlooker.post(f"/admin/conversations/preset/{published.pk}/delete/").status_code == 403
    listing = moderator.get("/admin/conversations/preset/").text
    assert "Code reviewer" in listing and "Tutor" not in listing  # users' presets are theirs
    assert moderator.get(f"/admin/conversations/preset/{tutor.pk}/change/").status_code == 302
    assert Preset.objects.count() == 2


# ---- a new chat from a preset ------------------------------------------------------------


def test_the_new_chat_offers_ones_own_and_published_presets(alice_client, tutor, published, bobs):
    page = alice_client.get("/").text

    select = page[
        page.index('<select id="preset-select"') : page.index(
            "</select>", page.index('id="preset-select"')
        )
    ]
    assert 'name="preset" form="composer"' in select
    assert 'hx-get="/presets/choice"' in select  # says what it sets, with htmx
    assert f'<option value="{tutor.pk}">Tutor</option>' in select
    assert f'<option value="{published.pk}">Code reviewer</option>' in select
    assert str(bobs.pk) not in page
    chosen = alice_client.get(f"/c/new?preset={tutor.pk}").text  # "Start a chat" on the list
    assert f'<option value="{tutor.pk}" selected>Tutor</option>' in chosen
    assert "the system prompt “Be a patient tutor.”" in chosen


def test_the_preset_choice_says_what_it_sets(alice_client, published):
    response = alice_client.get(f"/presets/choice?preset={published.pk}", headers=HTMX)

    assert response.status_code == 200
    assert response.text.strip().startswith('<p class="preset-summary" id="preset-summary">')
    assert "temperature 0.2" in response.text and "Review code tersely." in response.text
    empty = alice_client.get("/presets/choice?preset=", headers=HTMX).text
    assert "Starts with" not in empty


@pytest.mark.parametrize("headers", [HTMX, {}], ids=["htmx", "plain"])
def test_a_chat_started_from_a_preset_gets_its_settings_and_remembers_it(
    alice_client, alice, tutor, headers
):
    tutor.temperature = 0.7
    tutor.save()

    response = alice_client.post(
        "/c/new/messages",
        {**send_data("Hello"), "preset": str(tutor.pk), "model": "demo/demo"},
        headers=headers,
    )

    assert response.status_code == (200 if headers else 302)
    conversation = Conversation.objects.get(owner=alice)
    assert conversation.preset == tutor
    assert conversation.system_prompt == "Be a patient tutor."
    assert conversation.temperature == 0.7
    assert conversation.model_id == "demo/demo-mini"  # the preset's model wins over the picker
    page = alice_client.get(f"/c/{conversation.pk}/").text
    assert '<p class="preset-origin">Started from preset: Tutor</p>' in page
    assert "Be a patient tutor.</textarea>" in page
    assert '<option value="demo/demo-mini" selected>' in page


def test_a_preset_without_a_model_uses_the_picker(alice_client, alice, published):
    first_send(alice_client, preset=str(published.pk), model="demo/demo-mini")

    conversation = Conversation.objects.get(owner=alice)
    assert conversation.model_id == "demo/demo-mini"
    assert (conversation.preset, conversation.temperature) == (published, 0.2)


@pytest.mark.parametrize("headers", [HTMX, {}], ids=["htmx", "plain"])
def test_a_preset_whose_model_was_taken_off_still_starts_with_the_default_and_says_so(
    alice_client, alice, tutor, headers
):
    tutor.model = "retired/old-model"
    tutor.save()

    response = alice_client.post(
        "/c/new/messages", {**send_data("Hello"), "preset": str(tutor.pk)}, headers=headers
    )

    note = "The preset's model retired/old-model is no longer offered: this chat uses demo instead."
    conversation = Conversation.objects.get(owner=alice)
    assert conversation.model_id == catalog.default_choice().id == "demo/demo"
    assert conversation.system_prompt == "Be a patient tutor."
    if headers:
        assert f'<p class="preset-note" role="status">{note}</p>' in response.text.replace(
            "&#x27;", "'"
        )
    else:
        page = alice_client.get(response["Location"]).text.replace("&#x27;", "'")
        assert note in page


def test_a_repeated_first_send_with_a_preset_makes_one_conversation(alice_client, alice, tutor):
    data = {**send_data("Hello"), "preset": str(tutor.pk)}

    first = alice_client.post("/c/new/messages", data, headers=HTMX)
    again = alice_client.post("/c/new/messages", data, headers=HTMX)

    assert first.status_code == again.status_code == 200
    assert Conversation.objects.filter(owner=alice).count() == 1
    assert Message.objects.filter(role="user").count() == 1
    assert first["HX-Push-Url"] == again["HX-Push-Url"]


def test_a_first_send_without_a_preset_runs_no_extra_query(alice_client, tutor):
    """The send path does not get slower: no preset, no lookup (and the same statements
    as a send from a page without the choice)."""
    with CaptureQueriesContext(connection) as without_field:
        first_send(alice_client)
    with CaptureQueriesContext(connection) as with_none:
        first_send(alice_client, preset="")

    assert len(with_none) == len(without_field)
    for queries in (without_field, with_none):
        assert not [q for q in queries if "conversations_preset" in q["sql"]]


# ---- what the model receives ---------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("endpoints")
async def test_the_model_gets_the_presets_system_prompt_first_and_its_temperature(alice, request):
    server = request.getfixturevalue("local")  # the OpenAI-compatible fake of test_model_choice
    preset = await Preset.objects.acreate(
        owner=alice,
        name="Pirate",
        system_prompt="Talk like a pirate.",
        model="local/qwen-2",
        temperature=1.3,
    )
    client = AsyncClient()
    await client.aforce_login(alice)

    response = await client.post(
        "/c/new/messages",
        {**send_data("Ahoy?"), "preset": str(preset.pk), "model": "local/llama-3-8b"},
        headers=HTMX,
    )

    assert response.status_code == 200
    answer = await wait_until_final((await Message.objects.aget(role="assistant")).pk)
    assert (answer.provider, answer.model, answer.content) == ("local", "qwen-2", "From llama")
    body = server.requests[-1]["body"]
    assert body["model"] == "qwen-2"
    assert body["temperature"] == 1.3
    assert body["messages"] == [
        {"role": "system", "content": "Talk like a pirate."},
        {"role": "user", "content": "Ahoy?"},
    ]


def test_export_names_the_preset_a_conversation_started_from(alice_client, alice, tutor):
    """The export is conversation-centred: a conversation names its preset; the presets
    themselves are not in it (docs/export-schema.md)."""
    first_send(alice_client, preset=str(tutor.pk))
    Conversation.objects.create(owner=alice, title="No preset")

    jsonl = "".join(export.export_chunks(export.select(owner=alice), "jsonl"))
    markdown = "".join(export.export_chunks(export.select(owner=alice), "markdown"))

    lines = [json.loads(line) for line in jsonl.splitlines()]
    records = {r["title"]: r for r in lines if r["type"] == "conversation"}
    assert records["Hello"]["preset"] == "Tutor"
    assert records["Hello"]["system_prompt"] == "Be a patient tutor."
    assert records["No preset"]["preset"] is None
    assert {r["type"] for r in lines} == {"header", "conversation", "message"}
    assert "- preset: Tutor\n" in markdown


def test_the_export_command_names_the_preset_too(alice_client, alice, tutor, tmp_path):
    first_send(alice_client, preset=str(tutor.pk))
    output = tmp_path / "all.jsonl"

    call_command("export_conversations", "--output", str(output), stderr=io.StringIO())

    records = [json.loads(line) for line in output.read_text().splitlines()]
    assert [r["preset"] for r in records if r["type"] == "conversation"] == ["Tutor"]


@pytest.mark.usefixtures("endpoints")
def test_a_model_outside_an_endpoints_allow_list_is_refused(alice_client):
    response = alice_client.post("/presets/", preset_data(model="claude/claude-c"), headers=HTMX)

    assert response.status_code == 422
    assert "The model &#x27;claude/claude-c&#x27; is not offered here." in response.text
    assert "claude/claude-c (not offered)" in response.text  # the choice stays shown
    assert not Preset.objects.exists()
