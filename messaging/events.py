"""Group names and frames of messaging. Frames go out through chat_realtime.realtime."""

from __future__ import annotations

from typing import Any

from messaging.store import StoredMessage


def chat_group(chat_id: int) -> str:
    """The connections currently looking at one chat."""
    return f"chat.{int(chat_id)}"


def _iso(value) -> str:
    return value.isoformat().replace("+00:00", "Z")


def message_data(message: StoredMessage) -> dict[str, Any]:
    """A message as clients see it. A removed message keeps its place but not its content."""
    return {
        "id": message.id,
        "chat_id": message.chat_id,
        "sender_id": message.sender_id,
        "text": "" if message.is_deleted else message.text,
        "image_url": None if message.is_deleted or not message.image_url else message.image_url,
        "created_at": _iso(message.created_at),
        "client_id": message.client_id,
        "deleted": message.is_deleted,
    }


def preview(message: StoredMessage) -> str:
    """The sidebar's line for a message: its text, "image" for a bare image, as the original."""
    return _preview_line(deleted=message.is_deleted, text=message.text, image_url=message.image_url)


def _preview_line(*, deleted: bool, text: str, image_url: str | None) -> str:
    if deleted:
        return "message removed"
    return text or ("image" if image_url else "")


def last_message_data(message: StoredMessage | None, *, data: dict[str, Any] | None = None) -> dict[str, Any] | None:
    """The sidebar's last message; `data` is the message's `message_data`, where the caller has it already."""
    if message is None:
        return None
    return {**(data or message_data(message)), "preview": preview(message)}


def new_message_frame(message: StoredMessage) -> dict[str, Any]:
    """Shared by every connection in the chat; each gets its reader's `unread_count` added on delivery."""
    return {"type": "new_message", "message": message_data(message)}


def message_ack_frame(message: StoredMessage, *, unread_count: int | None) -> dict[str, Any]:
    """`unread_count` (the sender's, once the send is recorded) for a message just announced; None for
    the ack of an earlier message resent, which changes no sidebar."""
    frame = {"type": "message_ack", "client_id": message.client_id, "message": message_data(message)}
    if unread_count is not None:
        frame["unread_count"] = unread_count
    return frame


def chat_update_frame(
    *, chat_id: int, sender_id: int | None, last_message: dict[str, Any] | None, unread_count: int
) -> dict[str, Any]:
    """`last_message` as `last_message_data` gives it: one copy serves every participant's frame."""
    return {
        "type": "chat_update",
        "chat_id": chat_id,
        "sender_id": sender_id,
        "last_message": last_message,
        "unread_count": unread_count,
    }


def chat_update_shown_by(frame: dict[str, Any]) -> dict[str, Any] | None:
    """The `chat_update` that a delivered `new_message` or `message_ack` stands in for (both carry their
    reader's `unread_count`), for a client that draws the sidebar from chat_updates; None without a count
    (the ack of an earlier message resent moves no sidebar)."""
    if "unread_count" not in frame:
        return None
    message = frame["message"]
    line = _preview_line(deleted=message["deleted"], text=message["text"], image_url=message["image_url"])
    return chat_update_frame(
        chat_id=message["chat_id"],
        sender_id=message["sender_id"],
        last_message={**message, "preview": line},
        unread_count=frame["unread_count"],
    )


def typing_frame(*, chat_id: int, user_id: int) -> dict[str, Any]:
    return {"type": "typing", "chat_id": chat_id, "user_id": user_id}


def read_frame(*, chat_id: int, user_id: int, message_id: str) -> dict[str, Any]:
    return {"type": "read", "chat_id": chat_id, "user_id": user_id, "message_id": message_id}


def message_deleted_frame(message: StoredMessage) -> dict[str, Any]:
    return {"type": "message_deleted", "chat_id": message.chat_id, "message_id": message.id}
