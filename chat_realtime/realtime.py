"""The one place that sends events to websockets: after the transaction commits.

Services call `publish_to_user` / `publish_to_chat` with a small JSON frame,
or `publish` with several events (`to_user`, `to_chat`, `to_participant`) that
go out together; every worker's consumers in that group receive them
(`RealtimeConsumer.deliver`). Sending after commit means nobody hears of a
change that was rolled back.

A new message is one event per participant (`to_participant`), to their own
group: each of their connections that joined the chat (has it on screen) gets
the message itself, carrying the reader's unread count, and the others the
sidebar's news of it, if any. One layer message per participant, one frame per
connection: no connection is handed a frame that another one already showed it.
"""

from __future__ import annotations

import asyncio
import logging
import os
from typing import Any

from asgiref.sync import SyncToAsync, async_to_sync
from channels.layers import get_channel_layer
from django.db import transaction

from accounts.events import session_group, user_group
from messaging.events import chat_group

logger = logging.getLogger(__name__)

Frame = dict[str, Any]
# A group and the layer message for it; `publish` takes several, handed over together and in order.
Event = tuple[str, dict[str, Any]]


def to_user(user_id: int, frame: Frame) -> Event:
    """Every open connection of this user."""
    return user_group(user_id), {"type": "deliver", "frame": frame}


def to_chat(
    chat_id: int, frame: Frame, *, exclude_channel: str | None = None, exclude_user_id: int | None = None
) -> Event:
    """Every connection that joined this chat.

    `exclude_channel` leaves out the connection the change came from (it got
    its own answer); `exclude_user_id` leaves out all of one user's connections.
    """
    message: dict[str, Any] = {"type": "deliver", "frame": frame}
    if exclude_channel:
        message["exclude_channel"] = exclude_channel
    if exclude_user_id is not None:
        message["exclude_user_id"] = exclude_user_id
    return chat_group(chat_id), message


def to_participant(
    user_id: int, chat_id: int, *, on_screen: Frame, elsewhere: Frame | None, exclude_channel: str | None = None
) -> Event:
    """Every open connection of one participant of a chat: `on_screen` to those that joined the chat,
    `elsewhere` (or nothing, if None) to the others; nothing to `exclude_channel`, the connection the
    change came from (it got its own answer)."""
    message: dict[str, Any] = {"type": "deliver", "frame": elsewhere, "on_screen": [chat_group(chat_id), on_screen]}
    if exclude_channel:
        message["exclude_channel"] = exclude_channel
    return user_group(user_id), message


def publish(events: list[Event]) -> None:
    """These events, in this order, once the current transaction commits (at once outside one)."""
    if events:
        transaction.on_commit(lambda: _send(events))


def publish_to_user(user_id: int, frame: Frame) -> None:
    publish([to_user(user_id, frame)])


def publish_to_chat(
    chat_id: int, frame: Frame, *, exclude_channel: str | None = None, exclude_user_id: int | None = None
) -> None:
    publish([to_chat(chat_id, frame, exclude_channel=exclude_channel, exclude_user_id=exclude_user_id)])


def end_sessions(user_id: int) -> None:
    """Close every open websocket of this user (on every worker), once the transaction commits."""
    publish([(user_group(user_id), _session_ended())])


def end_browser_session(session_key: str) -> None:
    """Close the websockets a browser opened with this login session (on every worker): it logged out."""
    publish([(session_group(session_key), _session_ended())])


def _session_ended() -> dict[str, Any]:
    return {"type": "session_ended", "frame": {"type": "session_ended"}}


def _send(events: list[Event]) -> None:
    loop = _serving_loop()
    if loop is not None:
        # In a server's database thread: hand the events to its loop and go on, rather than
        # hold the one thread all database work shares until the layer has sent them.
        try:
            loop.call_soon_threadsafe(_hand_over, events)
            return
        except RuntimeError:  # the loop closed meanwhile
            pass
    try:
        async_to_sync(_group_send_each)(events)
    except Exception:
        # The change is committed; a lost live event is repaired by the client's next fetch.
        logger.exception("could not publish %d events", len(events))


async def _group_send_each(events: list[Event]) -> None:
    layer = get_channel_layer()
    for group, message in events:
        try:
            await layer.group_send(group, message)
        except Exception:
            logger.exception("could not publish %s to %s", message["frame"].get("type"), group)


def _serving_loop() -> asyncio.AbstractEventLoop | None:
    """The running event loop this thread works for (through sync_to_async), if any."""
    loop = getattr(SyncToAsync.threadlocal, "main_event_loop", None)
    if loop is None or getattr(SyncToAsync.threadlocal, "main_event_loop_pid", None) != os.getpid():
        return None
    return loop if loop.is_running() else None


def _hand_over(events: list[Event]) -> None:
    """On the serving loop, in the order the database threads handed events over: every layer
    of ours delivers to this process's members at once and queues its publishes in that order."""
    # Looked up once: on Redis the layer object stands for one layer per event loop, found per attribute.
    group_send_nowait = get_channel_layer().group_send_nowait
    for group, message in events:
        try:
            # The connection the change came from (if any) is one of this process's: its consumer would drop
            # the event, so it is not woken for it.
            group_send_nowait(group, message, skip=message.get("exclude_channel"))
        except Exception:
            logger.exception("could not publish %s to %s", message["frame"].get("type"), group)
