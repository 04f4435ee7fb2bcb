"""What the browser shows of chats, for pages and websocket frames alike.

A bubble or a sidebar row is rendered by one partial template, whether it comes
with the page or over the socket; the socket's fragments carry `hx-swap-oob`
so htmx puts them in place.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

from channels.db import database_sync_to_async
from django.template.loader import render_to_string
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from accounts.models import User
from chat_realtime.browser_view import BrowserView, on_the_loop
from chat_realtime.errors import NotFoundError, ValidationFailed
from friends.overview import FriendOverview
from messaging.events import chat_update_shown_by
from messaging.models import ChatParticipant
from messaging.store import MessageStoreUnavailable, StoredMessage

# Said when what a page missed cannot be read (the message store away).
MISSED_UNKNOWN = "Messages that arrived meanwhile could not be loaded. Reload the page in a moment."
# Messages a join's answer, or a page fetched after a message, brings at most.
CATCH_UP_LIMIT = 100
# Client ids the page makes itself, safe inside a CSS id selector.
SAFE_CLIENT_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


def bubble(message: dict[str, Any] | StoredMessage, viewer_id: int) -> dict[str, Any]:
    """A message as its bubble template wants it: the message fields, `mine`, and its time as a real
    datetime, and written out: `time_iso` (ISO 8601, for the page's script to show in the reader's own
    time zone) and `time_shown` (hours and minutes in the site's time zone, until it does). Written here
    rather than by the template's date filters: those took a sixth of a bubble's rendering."""
    if isinstance(message, StoredMessage):
        from messaging.events import message_data

        message = message_data(message)
    created_at = message["created_at"]
    if not isinstance(created_at, datetime):
        created_at = parse_datetime(created_at)
    # Converted as the date filters convert it (a naive time stays as it is); one that is not a time shows nothing.
    local = timezone.template_localtime(created_at)
    return {
        **message,
        "created_at": created_at,
        "time_iso": local.isoformat() if local is not None else "",
        "time_shown": local.strftime("%H:%M") if local is not None else "",
        "mine": message["sender_id"] == viewer_id,
    }


def row(entry: FriendOverview, viewer_id: int) -> dict[str, Any]:
    last = entry.last_message
    return {
        "friend": entry.user,
        "chat_id": entry.chat_id,
        "last_message": bubble(last, viewer_id) if last else None,
        "preview": _preview(last),
        "unread_count": entry.unread_count,
        "online": entry.online,
    }


def _preview(message: StoredMessage | None) -> str:
    from messaging.events import preview

    return preview(message) if message else ""


def render_bubble(message, viewer_id: int) -> str:
    return render_to_string("messaging/partials/_message.html", {"message": bubble(message, viewer_id)})


# --- Socket frames, rendered for one viewer ------------------------------------


def _oob(swap: str, html: str) -> str:
    return f'<div hx-swap-oob="{swap}">{html}</div>'


async def new_message_html(frame: dict, view: BrowserView) -> str:
    """The bubble at the end of the chat, and the sidebar row the frame's unread count redraws."""
    message = frame["message"]
    html = _oob(f"beforeend:#messages-{int(message['chat_id'])}", render_bubble(message, view.user.pk))
    return html + await _sidebar_shown_by(frame, view)


async def message_ack_html(frame: dict, view: BrowserView) -> str:
    """The pending bubble ("sending...") becomes the stored message; the sidebar row follows."""
    if not SAFE_CLIENT_ID.match(frame["client_id"]):
        # Not an id this page made (a client of its own wrote it): no pending bubble has it; shown as it came.
        return await new_message_html(frame, view)
    html = render_to_string(
        "messaging/partials/_message.html",
        {"message": bubble(frame["message"], view.user.pk), "oob": f"outerHTML:#pending-{frame['client_id']}"},
    )
    return html + await _sidebar_shown_by(frame, view)


async def _sidebar_shown_by(frame: dict, view: BrowserView) -> str:
    """A message frame stands in for its chat_update on a connection that joined the chat."""
    update = chat_update_shown_by(frame)
    return await chat_update_html(update, view) if update else ""


def _look_up_peer(view: BrowserView, chat_id: int) -> User | None:
    """The other person of the reader's one-to-one chat `chat_id`, or None if the reader is not in it; kept
    in `view` (a chat the reader is not in is asked again: it may be theirs later)."""
    if not ChatParticipant.objects.is_member(chat_id=chat_id, user_id=view.user.pk):
        return None
    peer = User.objects.filter(chat_memberships__chat_id=chat_id).exclude(pk=view.user.pk).first()
    if peer is not None:
        view.remember_peer(chat_id, peer)
    return peer


async def chat_update_html(frame: dict, view: BrowserView) -> str:
    """The sidebar row of the chat, redrawn and moved to the top (only its text, in place, when this socket
    put it at the top last); redrawn in place for a read, only its badge when the row this socket drew
    shows that last message already."""
    chat_id = int(frame["chat_id"])
    last = frame.get("last_message")
    shows = (last["id"], last["preview"]) if last else None
    moves_to_top = frame.get("sender_id") is not None
    if not moves_to_top and shows is not None and view.rows.get(chat_id) == shows:
        context = {"chat_id": chat_id, "unread_count": frame["unread_count"], "oob": True}
        return render_to_string("messaging/partials/_unread_badge.html", context)
    friend = view.peer(chat_id) or await database_sync_to_async(_look_up_peer)(view, chat_id)
    if friend is None:
        return ""
    row = {
        "friend": friend,
        "chat_id": chat_id,
        "last_message": bubble(last, view.user.pk) if last else None,
        "preview": last["preview"] if last else "",
        "unread_count": frame["unread_count"],
        "online": friend.pk in view.online,
    }
    if shows is None:
        view.rows.pop(chat_id, None)
    else:
        view.rows[chat_id] = shows
    if not moves_to_top:
        return render_to_string("messaging/partials/_chat_row.html", {"row": row, "oob": "true"})
    if view.top == chat_id:
        # At the top already: its name, time, last line and badge change, its link and picture do not
        # (the page moves the row up should a list it fetched meanwhile have put another above it).
        return render_to_string("messaging/partials/_chat_row_body.html", {"row": row, "oob": True})
    row_html = render_to_string("messaging/partials/_chat_row.html", {"row": row})
    view.top = chat_id
    return _oob(f"delete:#chat-row-{chat_id}", "") + _oob("afterbegin:#chat-list", row_html)


async def typing_html(frame: dict, view: BrowserView) -> str:
    """ "... is typing": in a one-to-one chat the socket knows, the typist is its other person."""
    peer = view.peer(frame["chat_id"])
    user = peer if peer is not None and peer.pk == frame["user_id"] else await _user(frame["user_id"])
    if user is None:
        return ""
    return render_to_string("messaging/partials/_typing.html", {"chat_id": frame["chat_id"], "who": user})


_user = database_sync_to_async(User.objects.by_id)


def read_html(frame: dict, view: BrowserView) -> str:
    return render_to_string(
        "messaging/partials/_read_state.html", {"chat_id": frame["chat_id"], "message_id": frame["message_id"]}
    )


def error_html(frame: dict, view: BrowserView) -> str:
    """A refused message turns its pending bubble into an error with a retry button; other errors toast."""
    if frame.get("client_id") and not SAFE_CLIENT_ID.match(str(frame["client_id"])):
        frame = {key: value for key, value in frame.items() if key != "client_id"}
    return render_to_string("messaging/partials/_error.html", {"error": frame})


def message_deleted_html(frame: dict, view: BrowserView) -> str:
    """The bubble turns into "message removed" in place."""
    from messaging.store import message_store

    message = message_store().get(frame["message_id"])
    if message is None:
        return ""
    return render_to_string(
        "messaging/partials/_message.html",
        {"message": bubble(message, view.user.pk), "oob": f"outerHTML:#msg-{message.id}"},
    )


def joined_chat_html(frame: dict, view: BrowserView) -> str:
    """The chat on screen is joined: the messages that came after the last one the page shows (`after`),
    which no event brought it. The page was drawn before its socket joined; one sent in between, or while
    the socket was away, would be missing otherwise (and read by the join). Past CATCH_UP_LIMIT, the
    answer says where the rest begins, and the page fetches it (static/js/app.js)."""
    from messaging import selectors

    if "after" not in frame:
        return ""
    chat_id = int(frame["chat_id"])
    try:
        page = selectors.history(
            user=view.user, chat_id=chat_id, before=None, after=frame["after"] or None, limit=CATCH_UP_LIMIT
        )
    except (ValidationFailed, NotFoundError):
        return ""  # not a message id (or no longer this person's chat): nothing to add to the page
    except MessageStoreUnavailable:
        # Say so: the page cannot tell a gap it was not told of.
        frame = {"type": "error", "code": "store_unavailable", "message": MISSED_UNKNOWN}
        return render_to_string("messaging/partials/_error.html", {"error": frame})
    if not page.messages:
        return ""
    # As a page of history is drawn: a chat the page showed empty gets its newest page and the control that
    # loads older ones; past the limit after a message, a marker says where the rest begins.
    context = {
        "chat_id": chat_id,
        "messages": [bubble(m, view.user.pk) for m in (page.messages if frame["after"] else reversed(page.messages))],
        "next_before": page.next_before,
        "next_after": page.next_after,
    }
    html = render_to_string("messaging/partials/_messages_page.html", context)
    return _oob(f"beforeend:#messages-{chat_id}", html)


# The frames of every message render on the event loop (what they need is in the frame and the view, but
# a chat's person the first time); the rarer ones ask the database, in its thread.
RENDERERS = {
    "new_message": new_message_html,
    "message_ack": message_ack_html,
    "chat_update": chat_update_html,
    "message_deleted": database_sync_to_async(message_deleted_html),
    "joined_chat": database_sync_to_async(joined_chat_html),
    "typing": typing_html,
    "read": on_the_loop(read_html),
    "error": on_the_loop(error_html),
}
