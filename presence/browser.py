"""Presence in the browser: every dot and "last seen" of a user, redrawn in place."""

from __future__ import annotations

from channels.db import database_sync_to_async
from django.template.loader import render_to_string
from django.utils.dateparse import parse_datetime

from accounts.models import User
from chat_realtime.browser_view import BrowserView


def _presence_of(user: User, online: bool) -> str:
    dot = render_to_string("presence/partials/_dot.html", {"user_id": user.pk, "online": online, "oob": True})
    status = render_to_string("presence/partials/_status.html", {"person": user, "online": online, "oob": True})
    return dot + status


def user_online_html(frame: dict, view: BrowserView) -> str:
    view.online.add(frame["user_id"])
    user = User.objects.filter(pk=frame["user_id"]).first()
    return _presence_of(user, True) if user else ""


def user_offline_html(frame: dict, view: BrowserView) -> str:
    view.online.discard(frame["user_id"])
    user = User.objects.filter(pk=frame["user_id"]).first()
    if user is None:
        return ""
    # The frame may arrive before last_seen is saved: it carries the time itself.
    user.last_seen = parse_datetime(frame["last_seen"]) or user.last_seen
    return _presence_of(user, False)


def online_friends_html(frame: dict, view: BrowserView) -> str:
    """After (re)connecting: who is online now, so dots are right even if events were missed."""
    from friends.selectors import friend_ids

    online = view.online = set(frame["user_ids"])
    friends = User.objects.filter(pk__in=friend_ids(view.user.pk))
    return "".join(_presence_of(friend, friend.pk in online) for friend in friends)


# Each asks the database for the people it draws, in its thread.
RENDERERS = {
    "user_online": database_sync_to_async(user_online_html),
    "user_offline": database_sync_to_async(user_offline_html),
    "online_friends": database_sync_to_async(online_friends_html),
}
