"""WebSocket routes (HTTP routes are in urls.py)."""

from __future__ import annotations

from django.urls import path

from conversations.consumers import SyncConsumer

websocket_urlpatterns = [
    path("ws/sync/", SyncConsumer.as_asgi()),
]
