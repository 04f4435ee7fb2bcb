"""The channel layers: Channels' in-memory layer for one process, channels-redis's pub/sub layer for several.

Both are the well-known layers, subclassed where measurement showed a cost.

`InProcessChannelLayer` (the embedded defaults, no REDIS_HOST): the stock
in-memory layer scans every channel and every group membership on each receive
and group_send to expire old messages, starts a task per member on group_send,
and drops a group membership a day after it was made, even while its socket is
still open. Here the scan runs at most once a second, group_send puts straight
into the members' queues, and a membership lasts as long as its socket: a
consumer that dies without leaving is still dropped from its groups when its
undelivered messages expire.

`LocalFirstPubSubChannelLayer` (REDIS_HOST set) delivers to this worker's own group members at once.

The stock layer sends every group message through Redis, even when the only
members of the group are connections of this very process: a write to Redis,
a read back, a decode, and only then delivery. Here `group_send` puts the
message straight into the queues of this process's members and publishes it,
tagged with this layer's id, for the other workers; the copy Redis echoes back
to this process is dropped. Publishes queued while one is being written go to
Redis together in one pipeline, in the order they were sent.

Everything else (channels, subscriptions, reconnection) is channels-redis's own.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections import deque

from channels.exceptions import ChannelFull
from channels.layers import InMemoryChannelLayer
from channels_redis.pubsub import RedisPubSubChannelLayer, RedisPubSubLoopLayer, RedisSingleShardConnection
from channels_redis.utils import _wrap_close

logger = logging.getLogger(__name__)

ORIGIN_BYTES = 16
EXPIRY_SCAN_EVERY_SECONDS = 1.0


def reaches_other_processes(layer_config: dict) -> bool:
    """Whether this channel layer configuration carries group messages to other worker processes."""
    return layer_config["BACKEND"] != f"{__name__}.InProcessChannelLayer"


class InProcessChannelLayer(InMemoryChannelLayer):
    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._next_scan = 0.0

    def _clean_expired(self) -> None:
        now = time.monotonic()
        if now >= self._next_scan:
            self._next_scan = now + EXPIRY_SCAN_EVERY_SECONDS
            super()._clean_expired()

    async def group_add(self, group: str, channel: str) -> None:
        await super().group_add(group, channel)
        self.groups[group][channel] = None  # no join time: never expires while the socket is open

    async def group_send(self, group: str, message: dict) -> None:
        assert isinstance(message, dict), "message is not a dict"
        self.require_valid_group_name(group)
        self._clean_expired()
        for channel in list(self.groups.get(group, ())):
            # As in the stock layer: a full channel misses the message, the others still get it.
            with contextlib.suppress(ChannelFull):
                await self.send(channel, message)


class LocalFirstPubSubChannelLayer(RedisPubSubChannelLayer):
    def _get_layer(self) -> LocalFirstLoopLayer:
        loop = asyncio.get_running_loop()
        layer = self._layers.get(loop)
        if layer is None:
            layer = self._layers[loop] = LocalFirstLoopLayer(*self._args, **self._kwargs, channel_layer=self)
            _wrap_close(self, loop)
        return layer


class LocalFirstLoopLayer(RedisPubSubLoopLayer):
    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.origin = uuid.uuid4().bytes
        self._shards = [TaggedShardConnection(shard.host, self) for shard in self._shards]

    def _get_group_channel_name(self, group: str) -> str:
        # Not the stock layer's name: its workers cannot read tagged messages, so during a rolling
        # upgrade the two kinds of worker must not share group channels (nothing is misread).
        return f"{self.prefix}__tagged_group__{group}"

    async def group_send(self, group: str, message: dict) -> None:
        group_channel = self._get_group_channel_name(group)
        data = self.channel_layer.serialize(message)
        for channel in self.groups.get(group_channel, ()):
            queue = self.channels.get(channel)
            if queue is not None:
                queue.put_nowait(data)
        await self._get_shard(group_channel).publish_batched(group_channel, self.origin + data)


class TaggedShardConnection(RedisSingleShardConnection):
    """One Redis connection of the layer: drops its own group messages, batches its publishes."""

    def __init__(self, host: str | dict, channel_layer: LocalFirstLoopLayer) -> None:
        super().__init__(host, channel_layer)
        self._outgoing: deque[tuple[str, bytes]] = deque()
        self._written: asyncio.Future[None] | None = None
        self._writer: asyncio.Task | None = None  # held here: the loop keeps only a weak reference to tasks

    async def publish_batched(self, channel: str, message: bytes) -> None:
        """Publish with whatever else is waiting: one round trip for all of them, in order."""
        self._outgoing.append((channel, message))
        if self._written is None:
            written = self._written = asyncio.get_running_loop().create_future()
            # Every sender may have stopped waiting by the time a failure is known; it is theirs, not the loop's.
            written.add_done_callback(lambda done: done.cancelled() or done.exception())
            self._writer = asyncio.get_running_loop().create_task(self._write_outgoing(written))
        await asyncio.shield(self._written)

    async def _write_outgoing(self, written: asyncio.Future[None]) -> None:
        try:
            # Let the senders of this loop iteration queue up before the first write.
            await asyncio.sleep(0)
            async with self._lock:
                batch, self._outgoing = self._outgoing, deque()
                if self._written is written:
                    self._written = None
                self._ensure_redis()
                pipeline = self._redis.pipeline(transaction=False)
                for channel, message in batch:
                    pipeline.publish(channel, message)
                await pipeline.execute()
        except BaseException as error:
            # Whatever stopped this write (even a cancellation), the next publish starts a new one.
            if self._written is written:
                self._written = None
            if not written.done():
                written.set_exception(error if isinstance(error, Exception) else ConnectionError(repr(error)))
            if not isinstance(error, Exception):
                raise
        else:
            written.set_result(None)

    def _receive_message(self, message: dict | None) -> None:
        if message is None:
            return
        name = message["channel"]
        if isinstance(name, bytes):
            name = name.decode()
        if name not in self.channel_layer.groups:
            super()._receive_message(message)
            return
        data = message["data"]
        if data[:ORIGIN_BYTES] == self.channel_layer.origin:
            return  # delivered locally when it was sent
        super()._receive_message({**message, "data": data[ORIGIN_BYTES:]})
