"""The one place that sends events to websockets: after the transaction commits.

Services call `publish_to_user` / `publish_to_chat` with a small JSON frame,
or `publish` with several events (`to_user`, `to_chat`) that go out together;
every worker's consumers in that group receive them (`RealtimeConsumer.deliver`).
Sending after commit means nobody hears of a change that was rolled back.

Two optional keys save a connection frames it does not need:
- `personal` (`to_chat`): fields of the frame that differ per person,
  `{str(user_id): {field: value}}`; each connection gets its own person's
  fields merged into the shared frame.
- `news` (a topic and an id, e.g. a chat's group and a message id): what the
  frame shows. Each connection remembers the news it last showed per topic
  (the ack of a send counts too, `RealtimeConsumer.mark_shown`); an event
  with `skip_if_shown` passes by a connection whose last shown news of that
  topic is this very one. A chat's `new_message` carries the reader's sidebar
  state, so the `chat_update` that follows it reaches only the connections
  that are not looking at the chat. Redis carries a topic and id as a list.
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
# A group and the layer message for it; `publish` takes several, handed over together and in order.
Event = tuple[str, dict[str, Any]]


# What a frame shows: a topic (a group name) and the id of the news.
News = tuple[str, str]


def to_user(user_id: int, frame: Frame, *, unless_shown: News | None = None) -> Event:
    """Every open connection of this user, except those whose last shown news of its topic is `unless_shown`."""
    message: dict[str, Any] = {"type": "deliver", "frame": frame}
    if unless_shown is not None:
        message["news"] = unless_shown
        message["skip_if_shown"] = True
    return user_group(user_id), message


def to_chat(
    chat_id: int,
    frame: Frame,
    *,
    exclude_channel: str | None = None,
    exclude_user_id: int | None = None,
    personal: dict[int, dict[str, Any]] | None = None,
    news: News | None = None,
) -> Event:
    """Every connection that joined this chat.

    `exclude_channel` leaves out the connection the change came from (it got
    its own answer); `exclude_user_id` leaves out all of one user's connections.
    `personal` adds fields per user to the frame; `news` is what the frame shows.
    """
    message: dict[str, Any] = {"type": "deliver", "frame": frame}
    if exclude_channel:
        message["exclude_channel"] = exclude_channel
    if exclude_user_id is not None:
        message["exclude_user_id"] = exclude_user_id
    if personal:
        # String keys: the Redis layer's encoding keeps no integer keys.
        message["personal"] = {str(user_id): fields for user_id, fields in personal.items()}
    if news is not None:
        message["news"] = news
    return chat_group(chat_id), message


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
    publish([(user_group(user_id), {"type": "session_ended", "frame": {"type": "session_ended"}})])


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
    layer = get_channel_layer()
    for group, message in events:
        try:
            layer.group_send_nowait(group, message)
        except Exception:
            logger.exception("could not publish %s to %s", message["frame"].get("type"), group)
