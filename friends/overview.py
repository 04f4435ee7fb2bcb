"""Each friend with their chat, its last message and unread count, and whether they are online.

What the friend list API and the home page's sidebar both show; composed here once.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from accounts.models import User
from friends.selectors import friend_list
from messaging.selectors import chat_summaries
from messaging.store import StoredMessage
from presence.selectors import online_among_or_none


@dataclass(frozen=True)
class FriendOverview:
    user: User
    chat_id: int | None
    last_message: StoredMessage | None
    unread_count: int
    online: bool
    last_activity_at: Any


def friend_overview(user: User, friend_ids: set[int] | None = None) -> list[FriendOverview]:
    """Most recent chat activity first (only these friends, if given). A fixed number of queries, whatever
    the number of friends."""
    entries = friend_list(user, only=friend_ids)
    chats = {s.chat.pk: s for s in chat_summaries(user, [e.chat_id for e in entries if e.chat_id])}
    online = online_among_or_none(e.user.pk for e in entries)
    overview = []
    for entry in entries:
        summary = chats.get(entry.chat_id)
        overview.append(
            FriendOverview(
                user=entry.user,
                chat_id=entry.chat_id,
                last_message=summary.last_message if summary else None,
                unread_count=summary.unread_count if summary else 0,
                online=entry.user.pk in online,
                last_activity_at=entry.last_activity_at,
            )
        )
    return overview
