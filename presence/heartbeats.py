"""This worker's open connections, heartbeated together.

Every PRESENCE_HEARTBEAT_SECONDS one task renews all of them in one call on
the database thread (`presence.services.renew`: a Redis pipeline, then a
sweep if due). Each connection beating on its own took two thread hops and
two Redis round trips per period: about a core at 10,000 open sockets
(docs/benchmarks.md).

A connection leaves before its disconnect is stored: both run on the one
database thread in the order asked, so a renewal never brings back a
connection that already closed.
"""

from __future__ import annotations

import asyncio
import logging

from channels.db import database_sync_to_async
from django.conf import settings

from chat_realtime.per_loop import PerLoop
from presence import services

logger = logging.getLogger(__name__)


class Heartbeats:
    def __init__(self) -> None:
        self.connections: dict[str, int] = {}  # connection id -> user id
        self.beating: asyncio.Task | None = None  # held here: the loop keeps only a weak reference to tasks

    def add(self, connection_id: str, user_id: int) -> None:
        self.connections[connection_id] = user_id
        if self.beating is None or self.beating.done():
            self.beating = asyncio.get_running_loop().create_task(self._beat())

    def discard(self, connection_id: str) -> None:
        self.connections.pop(connection_id, None)

    async def _beat(self) -> None:
        while self.connections:
            await asyncio.sleep(settings.PRESENCE_HEARTBEAT_SECONDS)
            connections = list(self.connections.items())
            if not connections:
                return
            try:
                await database_sync_to_async(services.renew)(connections)
            except Exception:
                # The next period tries again: stopping would show everyone here offline while connected.
                logger.exception("presence heartbeats of %d connections failed", len(connections))


# One per event loop: its task belongs to the loop that made it.
heartbeats = PerLoop(Heartbeats).get
