"""What a websocket passes before it reaches the consumer: its Origin, then its credentials."""

from __future__ import annotations

from importlib import import_module
from urllib.parse import parse_qs

from channels.auth import get_user
from channels.db import database_sync_to_async
from channels.security.websocket import OriginValidator
from django.conf import settings
from django.contrib.auth.models import AnonymousUser
from django.http.cookie import parse_cookie

from accounts.selectors import user_for_access_token


class AllowedHostsOriginValidator(OriginValidator):
    """Refuses browsers on other sites (cross-site websocket hijacking).

    A browser always sends Origin; its host must be one of ALLOWED_HOSTS.
    Clients that send none are not browsers: they get through and must then
    present an access token like any API client.
    """

    def __init__(self, application):
        super().__init__(application, allowed_origins=[])

    def valid_origin(self, parsed_origin) -> bool:
        if parsed_origin is None:
            return True
        self.allowed_origins = settings.ALLOWED_HOSTS
        return self.validate_origin(parsed_origin)


class SessionUserMiddleware:
    """The browser's session cookie -> `scope["user"]`, found as Channels' AuthMiddlewareStack finds it.

    Looked up once, at connect. The stock stack also wraps the socket's `send`
    to save the session with HTTP responses, a check that ran on every frame
    and never applies to a websocket.
    """

    def __init__(self, application):
        self.application = application

    async def __call__(self, scope, receive, send):
        cookies = {}
        for name, value in scope.get("headers", ()):
            if name == b"cookie":
                cookies = parse_cookie(value.decode("latin1"))
                break
        session_key = cookies.get(settings.SESSION_COOKIE_NAME)
        user = AnonymousUser()
        if session_key:
            session = import_module(settings.SESSION_ENGINE).SessionStore(session_key)
            user = await get_user({"session": session})
        # The login session the user came from: its logout closes the socket (RealtimeConsumer.connect), and
        # so does its running out (its expiry as stored now, read with the user; accounts/sessions.py).
        logged_in_with, expires_at = None, None
        if user.is_authenticated:
            logged_in_with = session_key
            expire_date = getattr(session, "expire_date", None)
            expires_at = expire_date.timestamp() if expire_date is not None else None
        return await self.application(
            dict(scope, cookies=cookies, user=user, session_key=logged_in_with, session_expires_at=expires_at),
            receive,
            send,
        )


class AccessTokenAuthMiddleware:
    """`?token=<access JWT>` authenticates API clients; it overrides the session user (and its session).

    A token that is present but forged or expired leaves the connection
    anonymous; it does not fall back to a cookie.
    """

    def __init__(self, application):
        self.application = application

    async def __call__(self, scope, receive, send):
        query = parse_qs(scope.get("query_string", b"").decode("latin1"), keep_blank_values=True)
        if "token" in query:
            user, expires_at = await database_sync_to_async(user_for_access_token)(query["token"][0])
            # The socket closes when the token it opened with expires.
            scope = dict(
                scope,
                user=user or AnonymousUser(),
                token_expires_at=expires_at,
                session_key=None,
                session_expires_at=None,
            )
        return await self.application(scope, receive, send)
