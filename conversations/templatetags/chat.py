from __future__ import annotations

from django import template
from django.utils.safestring import SafeString

from conversations.rendering import render_markdown

register = template.Library()


@register.filter
def markdown(text: str) -> SafeString:
    """Model output through the one sanitizing renderer."""
    return render_markdown(text or "")
