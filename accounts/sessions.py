"""The session engine (SESSION_ENGINE): Django's database sessions, whose websockets end with them.

A browser's sockets authenticate with its session once, when they open. Every
way a session ends or changes its key goes through `flush` (logout; another
person logging in in the same browser) or `cycle_key` (login, a password
change): the sockets opened with the old key close there, on every worker, and
the page (static/js/app.js) loads again with whatever its cookie now holds:
the same person's page with a new socket, or the login page. A session that
simply runs out closes its sockets when it does (`RealtimeConsumer`), which
asks `stored_expiry` whether it was renewed meanwhile.
"""

from __future__ import annotations

from datetime import datetime

from django.contrib.sessions.backends import db

from chat_realtime.realtime import end_browser_session


class SessionStore(db.SessionStore):
    # When the stored session runs out, once it has been loaded (None: there is none).
    expire_date: datetime | None = None

    def _get_session_from_db(self):
        session = super()._get_session_from_db()
        self.expire_date = session.expire_date if session is not None else None
        return session

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


def stored_expiry(session_key: str) -> datetime | None:
    """When the session stored under this key runs out now (each save moves it on); None if it has ended."""
    session = SessionStore(session_key)
    session.load()
    return session.expire_date
