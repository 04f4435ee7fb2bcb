"""The one place that sends events to websockets: after the transaction commits.

Services call `publish_to_user` / `publish_to_chat` with a small JSON frame;
every worker's consumers in that group receive it (`RealtimeConsumer.deliver`).
Sending after commit means nobody hears of a change that was rolled back.
"""

from __future__ import annotations

import asyncio
import logging
import os
from typing import Any

from asgiref.sync import SyncToAsync, async_to_sync
from channels.layers import get_channel_layer
from django.db import transaction

from accounts.events import user_group
from messaging.events import chat_group

logger = logging.getLogger(__name__)

Frame = dict[str, Any]


def publish_to_user(user_id: int, frame: Frame) -> None:
    """Every open connection of this user, once the current transaction commits."""
    _publish_on_commit(user_group(user_id), {"frame": frame})


def publish_to_chat(
    chat_id: int, frame: Frame, *, exclude_channel: str | None = None, exclude_user_id: int | None = None
) -> None:
    """Every connection that joined this chat, once the current transaction commits.

    `exclude_channel` leaves out the connection the change came from (it got
    its own answer); `exclude_user_id` leaves out all of one user's connections.
    """
    event: dict[str, Any] = {"frame": frame}
    if exclude_channel:
        event["exclude_channel"] = exclude_channel
    if exclude_user_id is not None:
        event["exclude_user_id"] = exclude_user_id
    _publish_on_commit(chat_group(chat_id), event)


def end_sessions(user_id: int) -> None:
    """Close every open websocket of this user (on every worker), once the transaction commits."""
    transaction.on_commit(lambda: _send(user_group(user_id), {"frame": {"type": "session_ended"}}, "session_ended"))


def _publish_on_commit(group: str, event: dict[str, Any]) -> None:
    transaction.on_commit(lambda: _send(group, event))


def _send(group: str, event: dict[str, Any], handler: str = "deliver") -> None:
    message = {"type": handler, **event}
    loop = _serving_loop()
    if loop is not None:
        # In a server's database thread: hand the event to its loop and go on, rather than
        # hold the one thread all database work shares until the layer has sent it.
        try:
            loop.call_soon_threadsafe(_hand_over, group, message)
            return
        except RuntimeError:  # the loop closed meanwhile
            pass
    try:
        async_to_sync(get_channel_layer().group_send)(group, message)
    except Exception:
        # The change is committed; a lost live event is repaired by the client's next fetch.
        logger.exception("could not publish %s to %s", event["frame"].get("type"), group)


def _serving_loop() -> asyncio.AbstractEventLoop | None:
    """The running event loop this thread works for (through sync_to_async), if any."""
    loop = getattr(SyncToAsync.threadlocal, "main_event_loop", None)
    if loop is None or getattr(SyncToAsync.threadlocal, "main_event_loop_pid", None) != os.getpid():
        return None
    return loop if loop.is_running() else None


def _hand_over(group: str, message: dict[str, Any]) -> None:
    """On the serving loop, in the order the database threads handed events over: every layer
    of ours delivers to this process's members at once and queues its publishes in that order."""
    try:
        get_channel_layer().group_send_nowait(group, message)
    except Exception:
        logger.exception("could not publish %s to %s", message["frame"].get("type"), group)
