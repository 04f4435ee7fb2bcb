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
a read back, a decode, and only then delivery. Here `group_send` hands the
message straight to this process's members and publishes it, tagged with this
layer's id, for the other workers; the copy Redis echoes back to this process
is dropped. Publishes queued while one is being written go to
Redis together in one pipeline, in the order they were sent.

Everything else (channels, subscriptions, reconnection) is channels-redis's own;
its receiving loop is kept too, but reads without a timeout per message.

Both layers hand a group message for a consumer of this process straight to
its `Mailbox` (attached with `attach`): no queue per channel, no copy, no
encoding, no task per message. `group_send_nowait` does a group send without
awaiting anything, so events leave a database thread's commit in order (see
chat_realtime.realtime).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections import deque
from copy import deepcopy

from channels.exceptions import ChannelFull
from channels.layers import InMemoryChannelLayer
from channels_redis.pubsub import RedisPubSubChannelLayer, RedisPubSubLoopLayer, RedisSingleShardConnection
from channels_redis.utils import _wrap_close

logger = logging.getLogger(__name__)

ORIGIN_BYTES = 16
EXPIRY_SCAN_EVERY_SECONDS = 1.0
# Ten full batches of sends (messaging.group_commit.MAX_BATCH) into one chat, with their chat_updates.
MAILBOX_CAPACITY = 1000


def reaches_other_processes(layer_config: dict) -> bool:
    """Whether this channel layer configuration carries group messages to other worker processes."""
    return layer_config["BACKEND"] != f"{__name__}.InProcessChannelLayer"


class MailboxOverflow(Exception):
    """A consumer fell more than its mailbox's capacity behind: it must start over rather than miss events."""


class Mailbox:
    """Everything one consumer handles, in arrival order: its websocket's frames and its layer messages.

    The layer puts messages in with `put_nowait`; the websocket's frames go in
    with `put_and_wait`, which returns once the frame was handled, so the
    client's next frame is read only then, as Channels does. `get` answers the
    next item and a future to complete once it is handled (None for layer
    messages). Messages are shared, not copied: whoever takes one must not
    change it.

    A mailbox holds `capacity` layer messages at most. Rather than drop one
    event silently and serve the rest, a full mailbox takes nothing more and,
    after what it holds, `get` raises MailboxOverflow: the consumer closes its
    socket and the client reconnects and fetches what it missed.
    """

    def __init__(self, capacity: int | None = None) -> None:
        self.capacity = MAILBOX_CAPACITY if capacity is None else capacity
        self._items: deque[tuple[dict, asyncio.Future[None] | None] | BaseException] = deque()
        self._waiter: asyncio.Future[None] | None = None
        self._closed = False

    def put_nowait(self, message: dict) -> None:
        if self._closed:
            return  # its consumer is ending: nothing more will be read
        if len(self._items) >= self.capacity:
            self.fail(MailboxOverflow(f"more than {self.capacity} messages waiting"))
            return
        self._append((message, None))

    async def put_and_wait(self, message: dict) -> None:
        handled = asyncio.get_running_loop().create_future()
        if not self._closed:
            self._append((message, handled))
        await handled

    def fail(self, error: BaseException) -> None:
        """What feeds this mailbox broke: `get` raises `error` after the items already in, and takes nothing more."""
        if not self._closed:
            self._closed = True
            self._append(error)

    async def get(self) -> tuple[dict, asyncio.Future[None] | None]:
        while not self._items:
            self._waiter = asyncio.get_running_loop().create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None
        item = self._items.popleft()
        if isinstance(item, BaseException):
            raise item
        return item

    def _append(self, item: tuple[dict, asyncio.Future[None] | None] | BaseException) -> None:
        self._items.append(item)
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)


class InProcessChannelLayer(InMemoryChannelLayer):
    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._next_scan = 0.0
        self.mailboxes: dict[str, Mailbox] = {}

    def attach(self, channel: str, mailbox: Mailbox) -> None:
        """Messages for `channel` go straight into `mailbox` until `detach`."""
        self.mailboxes[channel] = mailbox

    def detach(self, channel: str) -> None:
        self.mailboxes.pop(channel, None)

    def _clean_expired(self) -> None:
        now = time.monotonic()
        if now >= self._next_scan:
            self._next_scan = now + EXPIRY_SCAN_EVERY_SECONDS
            super()._clean_expired()

    async def send(self, channel: str, message: dict) -> None:
        mailbox = self.mailboxes.get(channel)
        if mailbox is None:
            await super().send(channel, message)
        else:
            mailbox.put_nowait(message)

    async def group_add(self, group: str, channel: str) -> None:
        await super().group_add(group, channel)
        self.groups[group][channel] = None  # no join time: never expires while the socket is open

    async def group_send(self, group: str, message: dict) -> None:
        self.group_send_nowait(group, message)

    def group_send_nowait(self, group: str, message: dict) -> None:
        assert isinstance(message, dict), "message is not a dict"
        self.require_valid_group_name(group)
        self._clean_expired()
        for channel in list(self.groups.get(group, ())):
            mailbox = self.mailboxes.get(channel)
            if mailbox is not None:
                mailbox.put_nowait(message)
                continue
            # As in the stock layer: a full channel misses the message, the others still get it.
            with contextlib.suppress(ChannelFull):
                self._enqueue(channel, message)

    def _enqueue(self, channel: str, message: dict) -> None:
        """The stock `send` without its await: a channel read through `receive` gets its own copy."""
        queue = self.channels.setdefault(channel, asyncio.Queue(maxsize=self.get_capacity(channel)))
        try:
            queue.put_nowait((time.time() + self.expiry, deepcopy(message)))
        except asyncio.QueueFull:
            raise ChannelFull(channel) from None


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
        self.mailboxes: dict[str, Mailbox] = {}
        self._shards = [TaggedShardConnection(shard.host, self) for shard in self._shards]

    def attach(self, channel: str, mailbox: Mailbox) -> None:
        """Group messages for `channel` go straight into `mailbox` until `detach`."""
        self.mailboxes[channel] = mailbox

    def detach(self, channel: str) -> None:
        self.mailboxes.pop(channel, None)

    def _get_group_channel_name(self, group: str) -> str:
        # Not the stock layer's name: its workers cannot read tagged messages, so during a rolling
        # upgrade the two kinds of worker must not share group channels (nothing is misread).
        return f"{self.prefix}__tagged_group__{group}"

    async def group_send(self, group: str, message: dict) -> None:
        await asyncio.shield(self._group_send(group, message))

    def group_send_nowait(self, group: str, message: dict) -> None:
        """Delivered here at once; published for the other workers in order with the other sends."""
        self._group_send(group, message)

    def _group_send(self, group: str, message: dict) -> asyncio.Future[None]:
        group_channel = self._get_group_channel_name(group)
        data = self.channel_layer.serialize(message)
        self.deliver_here(group_channel, message, data)
        return self._get_shard(group_channel).publish_soon(group_channel, self.origin + data)

    def deliver_here(self, group_channel: str, message: dict | None, data: bytes) -> None:
        """A group message to this process's members of the group (`message` decoded from `data` if None)."""
        for channel in self.groups.get(group_channel, ()):
            mailbox = self.mailboxes.get(channel)
            if mailbox is not None:
                if message is None:
                    message = self.channel_layer.deserialize(data)
                mailbox.put_nowait(message)
                continue
            queue = self.channels.get(channel)
            if queue is not None:
                queue.put_nowait(data)


class TaggedShardConnection(RedisSingleShardConnection):
    """One Redis connection of the layer: drops its own group messages, batches its publishes."""

    def __init__(self, host: str | dict, channel_layer: LocalFirstLoopLayer) -> None:
        super().__init__(host, channel_layer)
        self._outgoing: deque[tuple[str, bytes]] = deque()
        self._written: asyncio.Future[None] | None = None
        self._writer: asyncio.Task | None = None  # held here: the loop keeps only a weak reference to tasks

    def publish_soon(self, channel: str, message: bytes) -> asyncio.Future[None]:
        """Publish with whatever else is waiting: one round trip for all of them, in order.

        The future is done when that round trip is; a failure is logged here,
        whether or not anybody awaits it.
        """
        self._outgoing.append((channel, message))
        if self._written is None:
            written = self._written = asyncio.get_running_loop().create_future()
            written.add_done_callback(_log_failed_publish)
            self._writer = asyncio.get_running_loop().create_task(self._write_outgoing(written))
        return self._written

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

    async def _do_receiving(self) -> None:
        # channels-redis's loop, but each read waits for the next message with no timeout: entering and
        # leaving asyncio's timeout for every message cost about a tenth of the event loop's time under
        # load (docs/benchmarks.md). Closing the connection cancels the read, as it cancelled the wait.
        while True:
            try:
                if self._pubsub and self._pubsub.subscribed:
                    self._receive_message(await self._pubsub.get_message(ignore_subscribe_messages=True, timeout=None))
                else:
                    await asyncio.sleep(0.1)
            except (TimeoutError, asyncio.CancelledError, GeneratorExit):
                raise
            except BaseException:
                logger.exception("Unexpected exception in receive task")
                await asyncio.sleep(1)

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
        self.channel_layer.deliver_here(name, None, data[ORIGIN_BYTES:])


def _log_failed_publish(written: asyncio.Future[None]) -> None:
    if not written.cancelled() and written.exception() is not None:
        # The changes are committed; clients repair a lost live event with their next fetch.
        logger.error("could not publish group messages to Redis: %r", written.exception())
