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
Redis together in one pipeline, in the order they were sent. And a group that
no other worker has members of is not published to at all, until another
worker joins it (`TaggedShardConnection` says how a join is never missed).

Everything else (channels, subscriptions, reconnection) is channels-redis's own;
its receiving loop is kept too, but reads without a timeout per message.

Both layers hand a group message for a consumer of this process straight to
its `Mailbox` (attached with `attach`): no queue per channel, no copy, no
encoding, no task per message. `group_send_nowait` does a group send without
awaiting anything, so events leave a database thread's commit in order (see
chat_realtime.realtime), and leaves out the one channel it is told to skip
(the connection a change came from, which got its own answer) rather than
wake its consumer for an event it would drop.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import time
import uuid
from collections import deque
from collections.abc import Awaitable, Callable
from copy import deepcopy

from channels.exceptions import ChannelFull
from channels.layers import InMemoryChannelLayer
from channels_redis.pubsub import RedisPubSubChannelLayer, RedisPubSubLoopLayer, RedisSingleShardConnection
from channels_redis.utils import _wrap_close

logger = logging.getLogger(__name__)

WORKER_ID_BYTES = 16
PROBE_BYTES = 8
HEADER_BYTES = WORKER_ID_BYTES + PROBE_BYTES
NO_PROBE = bytes(PROBE_BYTES)
REQUEST_BYTES = 8
# What workers tell each other on a shard's control channel (TaggedShardConnection).
ANNOUNCE, ACK, RESET = b"A", b"K", b"R"
SYNC_PREFIX = b"chat-realtime-sync:"
ACK_TIMEOUT_SECONDS = 2.0
SYNC_TIMEOUT_SECONDS = 5.0
HEARTBEAT_SECONDS = 5.0
MAX_PROBES_PER_GROUP = 32
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

    def group_send_nowait(self, group: str, message: dict, *, skip: str | None = None) -> None:
        """`message` to every member of `group` but `skip`."""
        assert isinstance(message, dict), "message is not a dict"
        self._clean_expired()
        members = self.groups.get(group)
        if members is None:
            # The name of a group with members was checked when they joined it.
            self.require_valid_group_name(group)
            return
        for channel in list(members):
            if channel == skip:
                continue
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
        self.worker_id = uuid.uuid4().bytes
        self.mailboxes: dict[str, Mailbox] = {}
        self._shards = [TaggedShardConnection(shard.host, self, index) for index, shard in enumerate(self._shards)]

    def attach(self, channel: str, mailbox: Mailbox) -> None:
        """Group messages for `channel` go straight into `mailbox` until `detach`."""
        self.mailboxes[channel] = mailbox

    def detach(self, channel: str) -> None:
        self.mailboxes.pop(channel, None)

    def _get_group_channel_name(self, group: str) -> str:
        # Not the stock layer's name: its workers cannot read tagged messages, so during a rolling
        # upgrade the two kinds of worker must not share group channels (nothing is misread).
        return f"{self.prefix}__probed_group__{group}"

    async def group_add(self, group: str, channel: str) -> None:
        """Returns once every other worker will publish this group's messages for this worker to hear."""
        try:
            await super().group_add(group, channel)
            group_channel = self._get_group_channel_name(group)
            await self._get_shard(group_channel).announce_member(group_channel)
        except BaseException:
            # Not joined after all: the caller will not leave it, so nothing may stay behind.
            with contextlib.suppress(Exception):
                await asyncio.shield(self.group_discard(group, channel))
            raise

    async def group_send(self, group: str, message: dict) -> None:
        published = self._group_send(group, message)
        if published is not None:
            await asyncio.shield(published)

    def group_send_nowait(self, group: str, message: dict, *, skip: str | None = None) -> None:
        """Delivered here at once (to every member but `skip`, a channel of this worker); published for the
        other workers in order with the other sends."""
        self._group_send(group, message, skip=skip)

    def _group_send(self, group: str, message: dict, *, skip: str | None = None) -> asyncio.Future[None] | None:
        group_channel = self._get_group_channel_name(group)
        shard = self._get_shard(group_channel)
        if group_channel in shard.alone_in:
            # No other worker has a member: nobody to publish for, and nothing to encode for mailboxes.
            self.deliver_here(group_channel, message, None, skip=skip)
            return None
        data = self.channel_layer.serialize(message)
        self.deliver_here(group_channel, message, data, skip=skip)
        return shard.publish_group_message(group_channel, data)

    def deliver_here(
        self, group_channel: str, message: dict | None, data: bytes | None, *, skip: str | None = None
    ) -> None:
        """A group message to this process's members of the group but `skip`, as `message` or encoded as
        `data` (whichever is None is made from the other when needed)."""
        for channel in self.groups.get(group_channel, ()):
            if channel == skip:
                continue
            mailbox = self.mailboxes.get(channel)
            if mailbox is not None:
                if message is None:
                    message = self.channel_layer.deserialize(data)
                mailbox.put_nowait(message)
                continue
            queue = self.channels.get(channel)
            if queue is not None:
                if data is None:
                    data = self.channel_layer.serialize(message)
                queue.put_nowait(data)


class TaggedShardConnection(RedisSingleShardConnection):
    """One Redis connection of the layer: drops its own group messages, batches its publishes, and
    publishes a group's messages only while another worker has members of that group.

    Each group message goes to Redis behind a header: the sending worker's id,
    then a probe number (0 for none). A worker drops what comes back with its
    own id: it delivered that message here when it sent it.

    Whether another worker has members comes from PUBLISH's answer (how many
    subscribers received it). A publish to a group this worker has members of
    is sent as a probe: answered 1, and echoed back to this worker (so the one
    receiver was this worker, not another one while this worker's subscription
    was away), the group goes into `alone_in`, and its messages are no longer
    published. Echoes come back in the order the probes went out, so a probe
    still waiting when a later one is echoed never will be, and is dropped.
    Another worker joining must be heard of before its `group_add` returns,
    or a message sent after it would miss its member:

    - the joining worker makes sure Redis has its SUBSCRIBE (a PING on the
      same connection, answered after it), then announces the group on the
      shard's control channel, which every worker with a subscription listens
      to, and waits until every other listener (counted by Redis in the same
      transaction) has answered on the joining worker's own reply channel;
    - a worker that hears the announcement takes the group out of `alone_in`,
      forgets the probes of it still on their way, and then answers;
    - a worker whose subscriber connection dropped forgets all it believed,
      and once its subscriptions are back, tells the others to forget theirs
      (they may have counted it out while it was away).

    A worker that does not answer an announcement within ACK_TIMEOUT_SECONDS
    (gone, or its loop stuck) is not waited for longer: the join goes on and
    a warning is logged.

    One window is left, where Redis dropped a worker's subscriber connection
    and the worker has not noticed yet: a worker joining then does not count
    it, and its messages to a group it was alone in miss the new member until
    it notices. It notices when a read fails or, for a connection that died
    without a word, when a PING (every HEARTBEAT_SECONDS) goes unanswered for
    SYNC_TIMEOUT_SECONDS. Its own members miss everything in that window too;
    clients repair live events lost to a dropped connection with their next
    fetch, as after any Redis outage.
    """

    def __init__(self, host: str | dict, channel_layer: LocalFirstLoopLayer, index: int = 0) -> None:
        super().__init__(host, channel_layer)
        self._outgoing: deque[tuple[str, bytes, int]] = deque()
        self._written: asyncio.Future[None] | None = None
        self._writer: asyncio.Task | None = None  # held here: the loop keeps only a weak reference to tasks
        # One per shard, even for shards on one server: pub/sub channels ignore the database number.
        self.control_channel = f"{channel_layer.prefix}__workers.{index}"
        self.reply_channel = self._reply_channel_of(channel_layer.worker_id)
        # Group channels this worker has members of and, as last heard, no other worker does.
        self.alone_in: set[str] = set()
        self._probes: dict[str, dict[int, Probe]] = {}  # group channel: its probes on their way, by number
        self._last_probe = 0
        self._listening = False  # the control channels are subscribed
        self._checker: asyncio.Task | None = None
        self._reset_after: int | None = None  # the sync whose answer says this worker's subscriptions are back
        self._joined: dict[str, asyncio.Future[None]] = {}
        self._announcements: dict[bytes, Announcement] = {}
        self._syncs: dict[int, asyncio.Future[None]] = {}
        self._last_sync = 0

    # --- Publishing -------------------------------------------------------------------------------

    def publish_group_message(self, group_channel: str, data: bytes) -> asyncio.Future[None]:
        probe = 0
        if group_channel in self.channel_layer.groups:
            self._last_probe = probe = self._last_probe + 1
            probes = self._probes.setdefault(group_channel, {})
            if len(probes) >= MAX_PROBES_PER_GROUP:
                del probes[next(iter(probes))]  # the oldest: one probe fewer only ever means publishing longer
            probes[probe] = Probe()
        header = self.channel_layer.worker_id + probe.to_bytes(PROBE_BYTES)
        return self.publish_soon(group_channel, header + data, probe)

    def publish_soon(self, channel: str, message: bytes, probe: int = 0) -> asyncio.Future[None]:
        """Publish with whatever else is waiting: one round trip for all of them, in order.

        The future is done when that round trip is; a failure is logged here,
        whether or not anybody awaits it.
        """
        self._outgoing.append((channel, message, probe))
        if self._written is None:
            written = self._written = asyncio.get_running_loop().create_future()
            written.add_done_callback(_log_failed_publish)
            self._writer = asyncio.get_running_loop().create_task(self._write_outgoing(written))
        return self._written

    async def _write_outgoing(self, written: asyncio.Future[None]) -> None:
        batch: deque[tuple[str, bytes, int]] = deque()
        try:
            # Let the senders of this loop iteration queue up before the first write.
            await asyncio.sleep(0)
            async with self._lock:
                batch, self._outgoing = self._outgoing, deque()
                if self._written is written:
                    self._written = None
                self._ensure_redis()
                pipeline = self._redis.pipeline(transaction=False)
                for channel, message, _ in batch:
                    pipeline.publish(channel, message)
                receivers = await pipeline.execute()
        except BaseException as error:
            for channel, _, probe in batch:
                if probe:
                    self._drop_probe(channel, probe)
            # Whatever stopped this write (even a cancellation), the next publish starts a new one.
            if self._written is written:
                self._written = None
            if not written.done():
                written.set_exception(error if isinstance(error, Exception) else ConnectionError(repr(error)))
            if not isinstance(error, Exception):
                raise
        else:
            for (channel, _, probe), count in zip(batch, receivers, strict=True):
                if probe:
                    self._probe_answered(channel, probe, count)
            written.set_result(None)

    def _probe_answered(self, group_channel: str, number: int, receivers: int) -> None:
        probe = self._probes.get(group_channel, {}).get(number)
        if probe is None:
            return  # doubted while on its way, or overtaken by a later probe's echo
        if receivers != 1:
            self._drop_probe(group_channel, number)
        elif probe.heard(answered_alone=True):
            self._alone(group_channel)

    def _probe_echoed(self, group_channel: str, number: int) -> None:
        probes = self._probes.get(group_channel)
        if not probes:
            return
        # Echoes come in the order the probes were published: one still waiting for its echo went out
        # while this worker's subscription was not in effect, and its echo will never come.
        for earlier in [earlier for earlier in probes if earlier < number]:
            del probes[earlier]
        probe = probes.get(number)
        if probe is None:
            if not probes:
                del self._probes[group_channel]
        elif probe.heard(echoed=True):
            self._alone(group_channel)

    def _drop_probe(self, group_channel: str, number: int) -> None:
        probes = self._probes.get(group_channel)
        if probes is not None:
            probes.pop(number, None)
            if not probes:
                del self._probes[group_channel]

    def _alone(self, group_channel: str) -> None:
        self.alone_in.add(group_channel)
        self._probes.pop(group_channel, None)

    def _doubt(self, group_channel: str) -> None:
        """Another worker may have joined the group, or this one left it: publish again, and let no probe
        already on its way say otherwise."""
        self.alone_in.discard(group_channel)
        self._probes.pop(group_channel, None)

    def _forget_all(self) -> None:
        self.alone_in.clear()
        self._probes.clear()

    # --- Subscribing and announcing ---------------------------------------------------------------

    async def subscribe(self, channel: str) -> None:
        async with self._lock:
            if channel in self._subscribed_to:
                return
            self._ensure_redis()
            self._ensure_receiver()
            # The control channels first: a probe's echo then also shows this worker hears announcements.
            channels = [channel] if self._listening else [self.control_channel, self.reply_channel, channel]
            await self._pubsub.subscribe(*channels)
            self._subscribed_to.update(channels)
            # A new subscription needs its own announcement, whatever an earlier one of this channel did.
            self._joined.pop(channel, None)
            if not self._listening:
                self._listening = True
                self._pubsub.connection.register_connect_callback(self._reconnected)
                self._checker = asyncio.ensure_future(self._check_subscriber())

    async def unsubscribe(self, channel: str) -> None:
        self._joined.pop(channel, None)
        self._doubt(channel)
        try:
            await super().unsubscribe(channel)
        finally:
            # Forgotten whatever became of the command: redis-py keeps a channel until Redis confirms the
            # UNSUBSCRIBE, and subscribes again to all it keeps when it reconnects. Sent into a connection
            # that just died (or refused with Redis away), it would come back, and stay, unwanted.
            self._subscribed_to.discard(channel)
            if self._pubsub is not None:
                self._pubsub.channels.pop(channel.encode(), None)  # redis-py keeps the names encoded

    async def announce_member(self, group_channel: str) -> None:
        """Returns once the other workers know this one subscribes to `group_channel`."""
        if group_channel not in self._subscribed_to:
            return  # its members left again meanwhile: nothing to announce
        joined = self._joined.get(group_channel)
        if joined is None:
            joined = self._joined[group_channel] = asyncio.ensure_future(self._announce(group_channel))
            joined.add_done_callback(functools.partial(self._join_ended, group_channel))
        await asyncio.shield(joined)

    def _join_ended(self, group_channel: str, joined: asyncio.Future[None]) -> None:
        if (joined.cancelled() or joined.exception() is not None) and self._joined.get(group_channel) is joined:
            del self._joined[group_channel]  # the next group_add tries again

    async def _announce(self, group_channel: str) -> None:
        await self._sync()
        request = uuid.uuid4().bytes[:REQUEST_BYTES]
        announcement = self._announcements[request] = Announcement()
        try:
            async with self._lock:
                self._ensure_redis()
                # Counted in the same transaction: the channel's own listeners (PUBLISH's count would add
                # pattern subscribers, such as a `redis-cli psubscribe`, which never answer).
                pipeline = self._redis.pipeline(transaction=True)
                pipeline.pubsub_numsub(self.control_channel)
                pipeline.publish(
                    self.control_channel, ANNOUNCE + self.channel_layer.worker_id + request + group_channel.encode()
                )
                ((_, listeners),), _ = await pipeline.execute()
            # One of the listeners is this worker.
            if not announcement.heard_from(listeners - 1):
                await asyncio.wait_for(asyncio.shield(announcement.all_heard), ACK_TIMEOUT_SECONDS)
        except TimeoutError:
            logger.warning(
                "%d of %d workers did not answer within %s s that they will publish %s's messages here",
                listeners - 1 - len(announcement.acks),
                listeners - 1,
                ACK_TIMEOUT_SECONDS,
                group_channel,
            )
        finally:
            del self._announcements[request]

    async def _sync(self) -> None:
        """Returns once Redis has handled everything sent before on the subscriber connection.

        No answer in time: the connection is taken for dead (it can die without
        a word, behind a firewall that forgets it): what this worker believed is
        forgotten, and the connection is closed, so that the receiving loop
        reconnects, subscribes again and tells the others.
        """
        token = None
        try:
            # The PING's own sending counts too: redis-py may be reconnecting within it.
            async with asyncio.timeout(SYNC_TIMEOUT_SECONDS):
                async with self._lock:
                    self._ensure_redis()
                    self._ensure_receiver()
                    token = await self._send_sync(self._pubsub.execute_command)
                await asyncio.shield(self._syncs[token])
        except TimeoutError:
            logger.warning("Redis did not answer a PING within %s s: reconnecting", SYNC_TIMEOUT_SECONDS)
            self._forget_all()
            if self._pubsub is not None and self._pubsub.connection is not None:
                await self._pubsub.connection.disconnect()
            raise ConnectionError(f"Redis did not answer a PING within {SYNC_TIMEOUT_SECONDS} s") from None
        finally:
            self._syncs.pop(token, None)

    async def _check_subscriber(self) -> None:
        """While this worker may believe it is alone somewhere: a dead subscriber connection is noticed."""
        while True:
            await asyncio.sleep(HEARTBEAT_SECONDS)
            # _sync says when Redis does not answer, the receiving loop when Redis is down.
            with contextlib.suppress(Exception):
                await self._sync()

    async def _send_sync(self, send: Callable[..., Awaitable]) -> int:
        self._last_sync += 1
        token = self._last_sync
        self._syncs[token] = asyncio.get_running_loop().create_future()
        await send("PING", SYNC_PREFIX + str(token).encode())
        return token

    async def _reconnected(self, connection) -> None:
        # Called by redis-py once it sent the SUBSCRIBE for everything this connection had subscribed.
        self._forget_all()
        self._reset_after = await self._send_sync(functools.partial(connection.send_command, check_health=False))

    def _synced(self, token: int) -> None:
        # Answers come in order, and a PING lost with a dropped connection is covered by the
        # reconnection's own, sent after its SUBSCRIBE: a later answer settles every earlier one.
        for waiting in [waiting for waiting in self._syncs if waiting <= token]:
            pong = self._syncs.pop(waiting)
            if not pong.done():
                pong.set_result(None)
        if self._reset_after is not None and token >= self._reset_after:
            self._reset_after = None
            self.publish_soon(self.control_channel, RESET + self.channel_layer.worker_id)

    def _reply_channel_of(self, worker: bytes) -> str:
        return f"{self.control_channel}.{worker.hex()}"

    def _heard_on_control_channel(self, data: bytes) -> None:
        # ANNOUNCE: kind, sender, request, group channel. RESET: kind, sender.
        kind, worker = data[:1], data[1 : 1 + WORKER_ID_BYTES]
        request = data[1 + WORKER_ID_BYTES : 1 + WORKER_ID_BYTES + REQUEST_BYTES]
        if kind not in (ANNOUNCE, RESET) or len(worker) != WORKER_ID_BYTES:
            raise ValueError("not an announcement or a reset")
        if worker == self.channel_layer.worker_id:
            return
        if kind == ANNOUNCE:
            if len(request) != REQUEST_BYTES:
                raise ValueError("an announcement without its request")
            self._doubt(data[1 + WORKER_ID_BYTES + REQUEST_BYTES :].decode())
            self.publish_soon(self._reply_channel_of(worker), ACK + request + self.channel_layer.worker_id)
        elif kind == RESET:
            self._forget_all()

    def _heard_on_reply_channel(self, data: bytes) -> None:
        # ACK: kind, request, the worker answering.
        announcement = self._announcements.get(data[1 : 1 + REQUEST_BYTES])
        if data[:1] == ACK and announcement is not None:
            announcement.acked(data[1 + REQUEST_BYTES :])

    async def flush(self) -> None:
        if self._checker is not None:
            self._checker.cancel()
            self._checker = None
        await super().flush()
        self._forget_all()
        self._listening = False
        self._reset_after = None
        self._joined.clear()
        for pong in self._syncs.values():
            pong.cancel()  # the connection that would have answered is closed
        self._syncs.clear()

    # --- Receiving --------------------------------------------------------------------------------

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
                # Maybe the connection dropped: what this worker believed may be out of date already.
                self._forget_all()
                logger.exception("Unexpected exception in receive task")
                await asyncio.sleep(1)

    def _receive_message(self, message: dict | None) -> None:
        if message is None:
            return
        if message["type"] == "pong":
            data = message["data"]
            if data.startswith(SYNC_PREFIX):
                self._synced(int(data[len(SYNC_PREFIX) :]))
            return
        name = message["channel"]
        if isinstance(name, bytes):
            name = name.decode()
        if name not in self.channel_layer.groups:
            if name == self.control_channel:
                try:
                    self._heard_on_control_channel(message["data"])
                except ValueError:
                    # Not from a worker of ours (written by hand, say): whatever it meant, publishing
                    # everything again is always safe, and the group messages go on.
                    self._forget_all()
                    logger.warning("malformed message on %s: %r", name, message["data"][:100])
            elif name == self.reply_channel:
                self._heard_on_reply_channel(message["data"])
            else:
                super()._receive_message(message)
            return
        data = message["data"]
        if data[:WORKER_ID_BYTES] == self.channel_layer.worker_id:
            # Delivered here when it was sent.
            if data[WORKER_ID_BYTES:HEADER_BYTES] != NO_PROBE:
                self._probe_echoed(name, int.from_bytes(data[WORKER_ID_BYTES:HEADER_BYTES]))
            return
        self.channel_layer.deliver_here(name, None, data[HEADER_BYTES:])


class Probe:
    """A publish whose answer and echo may show that only this worker has members of the group."""

    __slots__ = ("answered_alone", "echoed")

    def __init__(self) -> None:
        self.answered_alone = False
        self.echoed = False

    def heard(self, *, answered_alone: bool = False, echoed: bool = False) -> bool:
        """Records the answer or the echo (they come in either order); True once both are in."""
        self.answered_alone |= answered_alone
        self.echoed |= echoed
        return self.answered_alone and self.echoed


class Announcement:
    """Which workers answered that they heard of this worker's new subscription."""

    def __init__(self) -> None:
        self.acks: set[bytes] = set()
        self.expected: int | None = None
        self.all_heard: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def heard_from(self, expected: int) -> bool:
        self.expected = expected
        return self._check()

    def acked(self, worker: bytes) -> None:
        self.acks.add(worker)
        self._check()

    def _check(self) -> bool:
        if self.expected is not None and len(self.acks) >= self.expected:
            if not self.all_heard.done():
                self.all_heard.set_result(None)
            return True
        return False


def _log_failed_publish(written: asyncio.Future[None]) -> None:
    if not written.cancelled() and written.exception() is not None:
        # The changes are committed; clients repair a lost live event with their next fetch.
        logger.error("could not publish group messages to Redis: %r", written.exception())
