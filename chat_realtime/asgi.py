"""ASGI entry point: HTTP goes to Django, websockets to the one /ws/ consumer."""

import os

import django

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "chat_realtime.settings")
# Django must be set up before anything imports models (as get_asgi_application does).
django.setup(set_prefix=False)

from chat_realtime.request_threads import PooledThreadsASGIHandler  # noqa: E402

django_asgi_app = PooledThreadsASGIHandler()

from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from django.urls import path  # noqa: E402

from chat_realtime.consumers import RealtimeConsumer  # noqa: E402
from chat_realtime.websocket_guards import (  # noqa: E402
    AccessTokenAuthMiddleware,
    AllowedHostsOriginValidator,
    SessionUserMiddleware,
)

websocket_urlpatterns = [path("ws/", RealtimeConsumer.as_asgi())]

application = ProtocolTypeRouter(
    {
        "http": django_asgi_app,
        "websocket": AllowedHostsOriginValidator(
            SessionUserMiddleware(AccessTokenAuthMiddleware(URLRouter(websocket_urlpatterns)))
        ),
    }
)
