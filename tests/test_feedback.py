"""Thumbs up or down on an answer, with an optional comment; seen by moderators."""

from __future__ import annotations

import io
import json
import re

import pytest
from django.core.management import call_command
from django.test import Client

from conversations.models import Message
from tests.trees import add_branches

HTMX = {"HX-Request": "true"}


@pytest.fixture
def tree(conversation):
    return add_branches(conversation)


def rate(client, answer, **data):
    return client.post(f"/c/{answer.conversation_id}/m/{answer.pk}/feedback", data, headers=HTMX)


def pressed(html: str) -> list[str]:
    return re.findall(
        r'class="btn btn-small btn-link btn-icon rate-(\w+)"\s+aria-pressed="true"', html
    )


def test_a_thumb_is_saved_then_a_comment_and_pressing_it_again_takes_it_back(alice_client, tree):
    answer = tree["a2_regenerated"]

    response = rate(alice_client, answer, rating="down")
    assert response.status_code == 200
    html = response.content.decode()
    assert pressed(html) == ["down"]
    assert "What was wrong? (optional)" in html and "Thanks: your feedback is saved." in html

    rate(alice_client, answer, rating="down", comment="  It made up a function.  ")
    answer.refresh_from_db()
    assert (answer.rating, answer.rating_comment) == ("down", "It made up a function.")
    assert answer.rated_at is not None
    page = alice_client.get(f"/c/{answer.conversation_id}/").content.decode()
    assert pressed(page) == ["down"] and 'value="It made up a function."' in page

    rate(alice_client, answer, rating="")  # the pressed thumb again
    answer.refresh_from_db()
    assert (answer.rating, answer.rating_comment, answer.rated_at) == ("", "", None)


def test_each_version_of_an_answer_is_rated_on_its_own(alice_client, tree):
    rate(alice_client, tree["a2_to_edit"], rating="up")
    rate(alice_client, tree["a2_regenerated"], rating="down")

    ratings = dict(Message.objects.filter(rating__gt="").values_list("content", "rating"))
    assert ratings == {"a2 to the edit": "up", "a2 regenerated": "down"}


@pytest.mark.parametrize(
    ("data", "status", "reason"),
    [
        ({"rating": "meh"}, 422, "Select a valid choice."),
        (
            {"rating": "up", "comment": "x" * 1001},
            422,
            "at most 1000 characters (this one has 1001)",
        ),
    ],
)
def test_bad_feedback_is_refused_and_changes_nothing(alice_client, tree, data, status, reason):
    answer = tree["a1"]

    response = rate(alice_client, answer, **data)

    assert response.status_code == status
    assert reason in response.content.decode()
    answer.refresh_from_db()
    assert answer.rating == ""


def test_only_a_finished_answer_of_ones_own_can_be_rated(alice_client, tree, bob):
    assert rate(alice_client, tree["q1"], rating="up").status_code == 409  # a question
    Message.objects.filter(pk=tree["a1"].pk).update(status=Message.Status.STREAMING)
    assert rate(alice_client, tree["a1"], rating="up").status_code == 409
    other = Client()
    other.force_login(bob)
    assert rate(other, tree["a2"], rating="down").status_code == 404
    assert not Message.objects.exclude(rating="").exists()


def test_feedback_is_exported(alice_client, tree):
    rate(alice_client, tree["a1"], rating="up", comment="clear")
    out = io.StringIO()

    call_command("export_conversations", "--format", "jsonl", stdout=out)

    records = [json.loads(line) for line in out.getvalue().splitlines()]
    rated = [r for r in records if r.get("rating")]
    assert [(r["content"], r["rating"], r["rating_comment"]) for r in rated] == [
        ("a1", "up", "clear")
    ]
    assert rated[0]["rated_at"]


def test_moderators_see_feedback_with_counts_per_model(alice_client, tree, mod_client):
    Message.objects.filter(pk=tree["a1"].pk).update(model="model-a")
    Message.objects.filter(pk__in=[tree["a2"].pk, tree["a2_regenerated"].pk]).update(
        model="model-b"
    )
    rate(alice_client, tree["a1"], rating="up")
    rate(alice_client, tree["a2"], rating="down", comment="wrong")
    rate(alice_client, tree["a2_regenerated"], rating="up")
    client = mod_client

    page = client.get("/admin/conversations/answerfeedback/").content.decode()
    filtered = client.get("/admin/conversations/answerfeedback/?rating__exact=down")

    rows = re.findall(r"<tr><td>(\w*)</td><td>([\w-]+)</td><td>(\d+)</td><td>(\d+)</td></tr>", page)
    assert [row[1:] for row in rows] == [("model-a", "1", "0"), ("model-b", "1", "1")]
    assert "wrong" in page
    assert filtered.content.decode().count("<td>model-") == 1
    assert client.post("/admin/conversations/answerfeedback/add/").status_code == 403
