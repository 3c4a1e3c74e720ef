"""ASGI entry point: Daphne (or uvicorn) serves HTTP, including the SSE streams, and the
live-sync WebSocket (one per page), authenticated by the session cookie like HTTP."""

from __future__ import annotations

import os

from chatsite.request_threads import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "chatsite.settings")

# Set up Django (apps, settings) before importing anything that touches models. Django's
# handler, on reused request threads (request_threads.py).
http_application = get_asgi_application()

from channels.auth import AuthMiddlewareStack  # noqa: E402
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from channels.security.websocket import AllowedHostsOriginValidator  # noqa: E402

from conversations.routing import websocket_urlpatterns  # noqa: E402
from conversations.streaming.fast_path import serve_live_streams  # noqa: E402
from conversations.streaming.runtime import close_runtime  # noqa: E402


async def lifespan(scope, receive, send) -> None:
    """ASGI lifespan (uvicorn, granian; Daphne sends none): at shutdown the streaming
    runtime stops its background work, and answers still generating end as interrupted."""
    while True:
        event = await receive()
        if event["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif event["type"] == "lifespan.shutdown":
            await close_runtime()
            await send({"type": "lifespan.shutdown.complete"})
            return


application = ProtocolTypeRouter(
    {
        "lifespan": lifespan,
        # Live answers with a signed URL skip the request cycle; everything else is Django.
        "http": serve_live_streams(http_application),
        # Origin checked against ALLOWED_HOSTS: browsers send cookies on cross-site sockets.
        "websocket": AllowedHostsOriginValidator(
            AuthMiddlewareStack(URLRouter(websocket_urlpatterns))
        ),
    }
)
