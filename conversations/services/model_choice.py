"""Which model answers: a conversation's choice, and a user's default for new ones."""

from __future__ import annotations

from django.contrib.auth.models import User

from conversations.models import ChatPreferences, Conversation
from conversations.providers import catalog
from conversations.providers.catalog import ModelChoice, UnknownModel

__all__ = ["ModelChoice", "UnknownModel", "choose_model", "default_for", "set_default_model"]


def choose_model(*, conversation: Conversation, choice: ModelChoice) -> Conversation:
    """The model of the conversation's next answers; earlier answers keep their own."""
    conversation.provider, conversation.model = choice.endpoint, choice.model
    conversation.save(update_fields=["provider", "model", "updated_at"])
    return conversation


def set_default_model(*, user: User, choice: ModelChoice) -> None:
    ChatPreferences.objects.update_or_create(user=user, defaults={"default_model": choice.id})


def default_for(user: User) -> ModelChoice:
    """The user's default while it is still offered (by configuration: no endpoint is
    asked), else the site's."""
    saved = (
        ChatPreferences.objects.filter(user=user).values_list("default_model", flat=True).first()
    )
    if saved:
        try:
            endpoint, model = catalog.parse(saved)
        except UnknownModel:
            pass  # the endpoint or model was taken off the list since
        else:
            return ModelChoice(endpoint.id, model, endpoint.label)
    return catalog.default_choice()


def answering(conversation: Conversation) -> tuple[str, str]:
    """The endpoint and model for the conversation's next answer: its own, or (none
    recorded: imported, or made before models could be chosen) the site's default."""
    if conversation.provider and conversation.model:
        return conversation.provider, conversation.model
    choice = catalog.default_choice()
    return choice.endpoint, choice.model
