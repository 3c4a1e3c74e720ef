"""Presets: a user's prompt templates, and what a new chat takes from one.

Reads (a user's presets, the one a request names) are in selectors.py; published presets
(no owner) are written in the admin only.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.contrib.auth.models import User

from conversations.models import Preset
from conversations.providers import catalog
from conversations.providers.catalog import ModelChoice, UnknownModel
from conversations.services import model_choice

NAME_CHARS = 80


@dataclass(frozen=True, kw_only=True)
class PresetValues:
    """What a preset says, as a form cleaned it (the model resolved, or None: the user's
    default)."""

    name: str
    system_prompt: str
    model: ModelChoice | None
    temperature: float | None


@dataclass(frozen=True)
class StartModel:
    """The model a chat started from a preset gets, and what to tell the user about it."""

    choice: ModelChoice | None  # None: the owner's default
    note: str = ""


def create_preset(*, owner: User, values: PresetValues) -> Preset:
    return Preset.objects.create(owner=owner, **_fields(values))


def update_preset(*, preset: Preset, values: PresetValues) -> Preset:
    for name, value in _fields(values).items():
        setattr(preset, name, value)
    preset.save()
    return preset


def delete_preset(*, preset: Preset) -> None:
    preset.delete()  # conversations started from it keep their settings (SET_NULL)


def copy_preset(*, preset: Preset, owner: User) -> Preset:
    """The user's own copy of a preset (a published one, typically), to edit."""
    return Preset.objects.create(
        owner=owner,
        name=preset.name,
        system_prompt=preset.system_prompt,
        model=preset.model,
        temperature=preset.temperature,
    )


def start_model(*, preset: Preset, picked: ModelChoice | None, owner: User) -> StartModel:
    """A preset's model wins over the new chat's picker; one taken off the configuration
    since (checked by configuration: no endpoint is asked on the send path) gives way to
    the picker's, else the owner's default, and the user is told."""
    if not preset.model:
        return StartModel(picked)
    try:
        endpoint, model = catalog.parse(preset.model)
    except UnknownModel:
        instead = picked or model_choice.default_for(owner)
        return StartModel(
            instead,
            f"The preset's model {preset.model} is no longer offered: "
            f"this chat uses {instead.model} instead.",
        )
    return StartModel(ModelChoice(endpoint.id, model, endpoint.label))


def _fields(values: PresetValues) -> dict[str, object]:
    return {
        "name": values.name.strip(),
        "system_prompt": values.system_prompt.strip(),
        "model": values.model.id if values.model is not None else "",
        "temperature": values.temperature,
    }
