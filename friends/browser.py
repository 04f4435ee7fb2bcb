"""What the browser shows of friends and notifications, for pages and websocket frames alike."""

from __future__ import annotations

from channels.db import database_sync_to_async
from django.template.loader import render_to_string

from accounts.models import User
from chat_realtime.browser_view import BrowserView
from chat_realtime.errors import ApplicationError
from friends import selectors
from friends.models import Notification


def search_results(viewer: User, query: str, page: int) -> dict:
    found = selectors.search_users(viewer=viewer, query=query, page=page, page_size=20)
    states = selectors.friendship_states(viewer.pk, [p.pk for p in found.items])
    return {
        "query": query,
        "people": [{"person": p, "state": states[p.pk]} for p in found.items],
        "page": found,
    }


def action_context(viewer: User, user_id: int, error: ApplicationError | None = None) -> dict:
    person = User.objects.filter(pk=user_id, is_active=True).first()
    friendship = selectors.friendship_between(viewer.pk, user_id) if person else None
    return {"person": person, "user_id": user_id, "state": selectors.state_from(friendship, viewer.pk), "error": error}


def notification_html(frame: dict, view: BrowserView) -> str:
    """A new notification: the bell's badge and the top of any open list."""
    notification = Notification.objects.select_related("sender").filter(pk=frame["notification"]["id"]).first()
    if notification is None:
        return ""
    item = render_to_string("friends/partials/_notification.html", {"n": notification})
    badge = render_to_string(
        "friends/partials/_bell_badge.html",
        {"unread_count": selectors.unread_notification_count(view.user), "oob": True},
    )
    return badge + f'<div hx-swap-oob="afterbegin:.notification-items">{item}</div>'


def friendship_html(frame: dict, view: BrowserView) -> str:
    """A relation changed: its action buttons, request rows and sidebar row follow."""
    user_id = int(frame["user_id"])
    # Rows come and go with friendships: the chats' people are looked up again, their rows drawn whole.
    view.peers.clear()
    view.rows.clear()
    view.top = None
    parts = [
        render_to_string("friends/partials/_friend_action.html", {**action_context(view.user, user_id), "oob": True}),
        f"<div hx-swap-oob=\"delete:[data-request-user='{user_id}']\"></div>",
    ]
    state = frame["state"]
    person = User.objects.filter(pk=user_id).first()
    if person is not None and state in ("incoming", "outgoing"):
        request = selectors.FriendRequest(user=person, created_at=None)
        row = render_to_string("friends/partials/_request_row.html", {"request": request, "kind": state})
        parts.append(f'<div hx-swap-oob="afterbegin:#{state}-requests">{row}</div>')
    if state == "none":
        view.online.discard(user_id)  # no presence events come from an ex-friend
        parts.append(f"<div hx-swap-oob=\"delete:.chat-row[data-friend-id='{user_id}']\"></div>")
        # A request cancelled takes its notification with it: the bell counts again.
        unread = selectors.unread_notification_count(view.user)
        parts.append(render_to_string("friends/partials/_bell_badge.html", {"unread_count": unread, "oob": True}))
    if state == "friends" and frame.get("chat_id") and person is not None:
        from friends.overview import friend_overview
        from messaging.browser import row

        # A new friend's row; friends again, the chat comes back with its history: its last message and badge.
        for entry in friend_overview(view.user, {user_id}):
            if entry.online:
                view.online.add(user_id)  # presence events of a new friend come from now on
            html = render_to_string("messaging/partials/_chat_row.html", {"row": row(entry, view.user.pk)})
            parts.append(f"<div hx-swap-oob=\"delete:.chat-row[data-friend-id='{user_id}']\"></div>")
            parts.append(f'<div hx-swap-oob="afterbegin:#chat-list">{html}</div>')
    return "".join(parts)


# Each asks the database, in its thread.
RENDERERS = {
    "notification": database_sync_to_async(notification_html),
    "friendship": database_sync_to_async(friendship_html),
}
