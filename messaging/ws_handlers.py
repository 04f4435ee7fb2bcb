"""Websocket frames of messaging: check the frame's shape, call a service, answer.

Each handler takes the connection and the parsed frame and returns the frame
to send back (or None). Refusals are ApplicationErrors, which the consumer
turns into error frames; the connection stays open.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from channels.db import database_sync_to_async

from chat_realtime.errors import ApplicationError, ValidationFailed
from messaging import events, services
from messaging.group_commit import read_queue, send_queue

if TYPE_CHECKING:
    from chat_realtime.consumers import RealtimeConsumer

Frame = dict[str, Any]


def _chat_id(frame: Frame) -> int:
    chat_id = frame.get("chat_id")
    # bool is an int in Python; JSON's true is no chat id.
    if not isinstance(chat_id, int) or isinstance(chat_id, bool) or not 0 < chat_id < 2**63:
        raise ValidationFailed({"chat_id": ["chat_id must be a positive integer."]})
    return chat_id


async def join_chat(connection: RealtimeConsumer, frame: Frame) -> Frame:
    chat_id = _chat_id(frame)
    after = frame.get("after")
    if after is not None and (not isinstance(after, str) or len(after) > 64):
        raise ValidationFailed({"after": ["after must be a message id (a string), or empty."]})
    # Opening a chat reads it: with the other reads that arrive meanwhile (messaging.group_commit).
    await read_queue().submit(services.ReadMark.up_to_newest(user=connection.user, chat_id=chat_id))
    await connection.join_group(events.chat_group(chat_id))
    joined = {"type": "joined_chat", "chat_id": chat_id}
    if after is not None:
        # The last message the client shows: a browser's answer brings what came after it (messaging.browser).
        joined["after"] = after
    return joined


async def leave_chat(connection: RealtimeConsumer, frame: Frame) -> Frame:
    chat_id = _chat_id(frame)
    await connection.leave_group(events.chat_group(chat_id))
    return {"type": "left_chat", "chat_id": chat_id}


async def send_message(connection: RealtimeConsumer, frame: Frame) -> Frame:
    chat_id = _chat_id(frame)
    draft = services.MessageDraft(
        sender=connection.user,
        chat_id=chat_id,
        text=frame.get("text"),
        client_id=frame.get("client_id"),
        origin_channel=connection.channel_name,
        grant=connection.write_grants.get(chat_id),
    )
    try:
        sent = await send_queue().submit(draft)
    except ApplicationError:
        connection.write_grants.pop(chat_id, None)
        raise
    if sent.grant is not None:
        connection.write_grants[chat_id] = sent.grant
    else:
        connection.write_grants.pop(chat_id, None)
    # The ack of a message just announced shows the sidebar's new state (its events pass this connection by).
    return events.message_ack_frame(sent.message, unread_count=sent.unread_count if sent.announced else None)


async def typing(connection: RealtimeConsumer, frame: Frame) -> None:
    await _announce_typing(user=connection.user, chat_id=_chat_id(frame))


# Wrapped once; the service is looked up at each call (tests replace services).
_announce_typing = database_sync_to_async(lambda user, chat_id: services.announce_typing(user=user, chat_id=chat_id))


async def mark_read(connection: RealtimeConsumer, frame: Frame) -> None:
    mark = services.ReadMark(user=connection.user, chat_id=_chat_id(frame), message_id=frame.get("message_id"))
    await read_queue().submit(mark)


FRAME_HANDLERS = {
    "join_chat": join_chat,
    "leave_chat": leave_chat,
    "send_message": send_message,
    "typing": typing,
    "mark_read": mark_read,
}
