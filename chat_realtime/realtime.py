"""The one place that sends events to websockets: after the transaction commits.

Services call `publish_to_user` / `publish_to_chat` with a small JSON frame;
every worker's consumers in that group receive it (`RealtimeConsumer.deliver`).
Sending after commit means nobody hears of a change that was rolled back.
"""

from __future__ import annotations

import logging
from typing import Any

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.db import transaction

from accounts.events import user_group
from messaging.events import chat_group

logger = logging.getLogger(__name__)

Frame = dict[str, Any]


def publish_to_user(user_id: int, frame: Frame) -> None:
    """Every open connection of this user, once the current transaction commits."""
    _publish_on_commit(user_group(user_id), frame)


def publish_to_chat(chat_id: int, frame: Frame) -> None:
    """Every connection looking at this chat, once the current transaction commits."""
    _publish_on_commit(chat_group(chat_id), frame)


def _publish_on_commit(group: str, frame: Frame) -> None:
    transaction.on_commit(lambda: _send(group, frame))


def _send(group: str, frame: Frame) -> None:
    try:
        async_to_sync(get_channel_layer().group_send)(group, {"type": "deliver", "frame": frame})
    except Exception:
        # The change is committed; a lost live event is repaired by the client's next fetch.
        logger.exception("could not publish %s to %s", frame.get("type"), group)
