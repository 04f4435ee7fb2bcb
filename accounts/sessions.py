"""The session engine (SESSION_ENGINE): Django's database sessions, whose websockets end with them.

A browser's sockets authenticate with its session once, when they open. Every
way a session ends or changes its key goes through `flush` (logout; another
person logging in in the same browser) or `cycle_key` (login, a password
change): the sockets opened with the old key close there, on every worker, and
the page (static/js/app.js) loads again with whatever its cookie now holds:
the same person's page with a new socket, or the login page.
"""

from __future__ import annotations

from django.contrib.sessions.backends import db

from chat_realtime.realtime import end_browser_session


class SessionStore(db.SessionStore):
    def flush(self) -> None:
        key = self.session_key
        super().flush()
        if key:
            end_browser_session(key)

    def cycle_key(self) -> None:
        key = self.session_key
        super().cycle_key()
        if key:
            end_browser_session(key)
