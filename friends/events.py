"""Frames that friend actions send to websockets. Sent through chat_realtime.realtime."""

from __future__ import annotations

from typing import Any

from accounts.api import PublicUserSerializer
from friends.models import Notification


def notification_data(notification: Notification) -> dict[str, Any]:
    sender = notification.sender
    return {
        "id": notification.pk,
        "type": notification.type,
        "sender": dict(PublicUserSerializer(sender).data) if sender is not None else None,
        "content": notification.content,
        "is_read": notification.is_read,
        "created_at": notification.created_at.isoformat().replace("+00:00", "Z"),
    }


def notification_frame(notification: Notification) -> dict[str, Any]:
    return {"type": "notification", "notification": notification_data(notification)}


def friendship_frame(*, user_id: int, state: str, chat_id: int | None = None) -> dict[str, Any]:
    """Tells one side that its relation with `user_id` is now `state` (none, friends, outgoing, incoming)."""
    return {"type": "friendship", "user_id": user_id, "state": state, "chat_id": chat_id}
