"""The channel layers: in one process (embedded defaults), and on Redis, where a worker's own members get
messages at once and other workers' members get them through Redis."""

from __future__ import annotations

import asyncio
import os
import time

import pytest

from chat_realtime import channel_layer
from chat_realtime.channel_layer import InProcessChannelLayer, LocalFirstPubSubChannelLayer, Mailbox, MailboxOverflow
from chat_realtime.tests import redis_namespace

needs_redis = pytest.mark.skipif(
    not os.environ.get("REDIS_HOST"),
    reason="REDIS_HOST is not set: the Redis channel layer is tested against a real Redis (CI runs it)",
)


def worker_layer() -> LocalFirstPubSubChannelLayer:
    """The layer as one worker process has it (each worker is one of these, with its own id)."""
    host = os.environ["REDIS_HOST"]
    port = os.environ.get("REDIS_PORT", "6379")
    return LocalFirstPubSubChannelLayer(hosts=[f"redis://{host}:{port}/0"], prefix=redis_namespace.CHANNEL_LAYER_PREFIX)


async def member(layer, group: str) -> str:
    channel = await layer.new_channel()
    await layer.group_add(group, channel)
    return channel


async def received(layer, channel: str, *, within: float = 2.0) -> list[dict]:
    """Everything that reaches `channel` until nothing more comes for a moment."""
    messages = []
    try:
        while True:
            messages.append(await asyncio.wait_for(layer.receive(channel), timeout=within if not messages else 0.3))
    except TimeoutError:
        return messages


@needs_redis
async def test_a_member_on_the_sending_worker_gets_each_group_message_once():
    here = worker_layer()
    try:
        channel = await member(here, "chat.1")

        await here.group_send("chat.1", {"type": "deliver", "n": 1})

        assert await received(here, channel) == [{"type": "deliver", "n": 1}]
    finally:
        await here.flush()


@needs_redis
async def test_a_member_on_another_worker_gets_it_through_redis_once():
    here, there = worker_layer(), worker_layer()
    try:
        local, remote = await member(here, "chat.2"), await member(there, "chat.2")

        await here.group_send("chat.2", {"type": "deliver", "n": 1})

        assert await received(there, remote) == [{"type": "deliver", "n": 1}]
        assert await received(here, local) == [{"type": "deliver", "n": 1}]
    finally:
        await here.flush()
        await there.flush()


@needs_redis
async def test_messages_sent_together_arrive_in_order_on_every_worker():
    here, there = worker_layer(), worker_layer()
    try:
        local, remote = await member(here, "chat.3"), await member(there, "chat.3")

        await asyncio.gather(*(here.group_send("chat.3", {"type": "deliver", "n": n}) for n in range(50)))

        expected = [{"type": "deliver", "n": n} for n in range(50)]
        assert await received(here, local) == expected
        assert await received(there, remote) == expected
    finally:
        await here.flush()
        await there.flush()


@needs_redis
async def test_messages_sent_together_go_to_redis_in_one_write(monkeypatch):
    from redis.asyncio.connection import Connection

    writes = []
    send_packed_command = Connection.send_packed_command

    async def recorded(connection, command, *args, **kwargs):
        written = command if isinstance(command, bytes) else b"".join(command)
        if b"PUBLISH" in written:
            writes.append(written)
        return await send_packed_command(connection, command, *args, **kwargs)

    monkeypatch.setattr(Connection, "send_packed_command", recorded)
    here, there = worker_layer(), worker_layer()
    try:
        remote = await member(there, "chat.6")
        await here.group_send("chat.6", {"type": "deliver", "n": -1})  # the first publish connects
        writes.clear()

        await asyncio.gather(*(here.group_send("chat.6", {"type": "deliver", "n": n}) for n in range(5)))

        assert len(writes) == 1 and writes[0].count(b"PUBLISH") == 5
        assert await received(there, remote) == [{"type": "deliver", "n": n} for n in range(-1, 5)]
    finally:
        await here.flush()
        await there.flush()


@needs_redis
async def test_a_publish_cut_off_midway_fails_alone_and_the_next_goes_through(monkeypatch, caplog):
    from redis.asyncio.connection import Connection
    from redis.exceptions import ConnectionError as RedisConnectionError

    here, there = worker_layer(), worker_layer()
    try:
        remote = await member(there, "chat.7")
        await here.group_send("chat.7", {"type": "deliver", "n": 0})
        send_packed_command, read_response = Connection.send_packed_command, Connection.read_response
        publishing, cut = set(), []

        async def sent(connection, command, *args, **kwargs):
            if b"PUBLISH" in (command if isinstance(command, bytes) else b"".join(command)):
                publishing.add(connection)
            return await send_packed_command(connection, command, *args, **kwargs)

        async def cut_off_once(connection, *args, **kwargs):
            if connection in publishing and not cut:  # the publisher's, not the subscribers' reads
                cut.append(connection)
                raise RedisConnectionError("connection reset midway")
            return await read_response(connection, *args, **kwargs)

        monkeypatch.setattr(Connection, "send_packed_command", sent)
        monkeypatch.setattr(Connection, "read_response", cut_off_once)

        with pytest.raises(RedisConnectionError):
            await here.group_send("chat.7", {"type": "deliver", "n": 1})
        # Its answer unread, the connection was closed at once: nobody reads that answer as theirs.
        assert not cut[0].is_connected
        await here.group_send("chat.7", {"type": "deliver", "n": 2})

        assert "could not publish group messages to Redis" in caplog.text
        # The cut came after the write: Redis had published it.
        assert await received(there, remote) == [{"type": "deliver", "n": n} for n in range(3)]
    finally:
        await here.flush()
        await there.flush()


@needs_redis
async def test_a_worker_without_members_of_the_group_gets_nothing():
    here, there = worker_layer(), worker_layer()
    try:
        await member(here, "chat.4")
        bystander = await member(there, "chat.5")

        await here.group_send("chat.4", {"type": "deliver"})
        await here.group_send("chat.5", {"type": "deliver", "for": "chat.5"})

        # Only the message of its own group reaches it: Redis works, and the other stays away.
        assert await received(there, bystander) == [{"type": "deliver", "for": "chat.5"}]
    finally:
        await here.flush()
        await there.flush()


@needs_redis
async def test_a_worker_hears_groups_joined_while_it_waits_and_after_it_left_them_all():
    here, there = worker_layer(), worker_layer()
    try:
        first = await member(there, "chat.6")  # its reader now waits for the next message, with no timeout
        joined_while_waiting = await member(there, "chat.7")
        await here.group_send("chat.7", {"type": "deliver", "n": 1})
        heard_while_waiting = await received(there, joined_while_waiting)
        await there.group_discard("chat.6", first)
        await there.group_discard("chat.7", joined_while_waiting)
        joined_again = await member(there, "chat.8")
        await here.group_send("chat.8", {"type": "deliver", "n": 2})

        assert heard_while_waiting == [{"type": "deliver", "n": 1}]
        assert await received(there, joined_again) == [{"type": "deliver", "n": 2}]
    finally:
        await here.flush()
        await there.flush()


async def test_in_one_process_every_member_gets_each_group_message_once_in_order():
    layer = InProcessChannelLayer()
    first, second, outsider = await member(layer, "chat.1"), await member(layer, "chat.1"), await layer.new_channel()

    for n in range(3):
        await layer.group_send("chat.1", {"type": "deliver", "n": n})

    expected = [{"type": "deliver", "n": n} for n in range(3)]
    assert await received(layer, first) == expected
    assert await received(layer, second) == expected
    assert await received(layer, outsider, within=0.2) == []


async def test_in_one_process_a_membership_lasts_as_long_as_the_socket(monkeypatch):
    monkeypatch.setattr(channel_layer, "EXPIRY_SCAN_EVERY_SECONDS", 0)
    layer = InProcessChannelLayer(group_expiry=1)
    channel = await member(layer, "chat.2")
    later = time.time() + 3600
    monkeypatch.setattr(time, "time", lambda: later)

    await layer.group_send("chat.2", {"type": "deliver"})

    assert await received(layer, channel) == [{"type": "deliver"}]


async def test_in_one_process_a_channel_nobody_reads_is_dropped_from_its_groups_when_its_messages_expire(
    monkeypatch,
):
    monkeypatch.setattr(channel_layer, "EXPIRY_SCAN_EVERY_SECONDS", 0)
    layer = InProcessChannelLayer(expiry=1)
    await member(layer, "chat.3")
    await layer.group_send("chat.3", {"type": "deliver"})
    later = time.time() + 5
    monkeypatch.setattr(time, "time", lambda: later)

    await layer.group_send("chat.3", {"type": "deliver"})  # the scan runs first, then nobody is left to send to

    assert layer.groups.get("chat.3", {}) == {}


# --- mailboxes: this process's consumers take their messages straight from the layer ---------------


async def mailbox_member(layer, group: str) -> tuple[str, Mailbox]:
    channel = await member(layer, group)
    mailbox = Mailbox(capacity=5)
    layer.attach(channel, mailbox)
    return channel, mailbox


async def taken(mailbox: Mailbox, *, within: float = 2.0) -> list[dict]:
    """Everything in the mailbox until nothing more comes for a moment."""
    messages = []
    try:
        while True:
            message, _ = await asyncio.wait_for(mailbox.get(), timeout=within if not messages else 0.3)
            messages.append(message)
    except TimeoutError:
        return messages


async def test_in_one_process_an_attached_mailbox_gets_each_group_message_in_order_without_a_queue():
    layer = InProcessChannelLayer()
    channel, mailbox = await mailbox_member(layer, "chat.6")

    for n in range(3):
        layer.group_send_nowait("chat.6", {"type": "deliver", "n": n})
    await layer.group_send("chat.6", {"type": "deliver", "n": 3})

    assert await taken(mailbox) == [{"type": "deliver", "n": n} for n in range(4)]
    assert channel not in layer.channels


async def test_in_one_process_a_group_message_skips_the_channel_it_is_told_to():
    layer = InProcessChannelLayer()
    origin, origin_mailbox = await mailbox_member(layer, "user.5")
    _, other_tab = await mailbox_member(layer, "user.5")

    layer.group_send_nowait("user.5", {"type": "deliver", "n": 1}, skip=origin)

    assert await taken(other_tab) == [{"type": "deliver", "n": 1}]
    assert await taken(origin_mailbox, within=0.2) == []


async def test_in_one_process_a_group_name_is_checked_on_send_even_with_nobody_in_it():
    layer = InProcessChannelLayer()

    with pytest.raises(TypeError):
        layer.group_send_nowait("not a valid name!", {"type": "deliver"})
    layer.group_send_nowait("chat.404", {"type": "deliver"})  # valid, nobody there: nothing happens


async def test_a_mailbox_too_far_behind_ends_after_what_it_holds_and_the_others_get_everything():
    layer = InProcessChannelLayer()
    _, slow = await mailbox_member(layer, "chat.7")
    _, keeping_up = await mailbox_member(layer, "chat.7")

    for n in range(slow.capacity + 2):
        layer.group_send_nowait("chat.7", {"type": "deliver", "n": n})
        await keeping_up.get()

    assert [(await slow.get())[0]["n"] for _ in range(slow.capacity)] == list(range(slow.capacity))
    with pytest.raises(MailboxOverflow):
        await slow.get()
    layer.group_send_nowait("chat.7", {"type": "deliver", "n": "later"})
    assert await taken(keeping_up) == [{"type": "deliver", "n": "later"}]


async def test_after_detach_a_channel_gets_its_messages_through_the_layer_again():
    layer = InProcessChannelLayer()
    channel, mailbox = await mailbox_member(layer, "chat.8")

    layer.detach(channel)
    await layer.group_send("chat.8", {"type": "deliver"})

    assert await taken(mailbox, within=0.2) == []
    assert await received(layer, channel) == [{"type": "deliver"}]


async def test_a_websocket_frame_put_in_a_mailbox_is_waited_for_until_it_is_handled():
    mailbox = Mailbox()
    putting = asyncio.create_task(mailbox.put_and_wait({"type": "websocket.receive"}))

    message, handled = await mailbox.get()
    await asyncio.sleep(0.05)
    assert not putting.done()

    handled.set_result(None)
    await asyncio.wait_for(putting, timeout=1)
    assert message == {"type": "websocket.receive"}


async def test_a_broken_feed_reaches_the_mailbox_reader_after_what_came_before():
    mailbox = Mailbox()
    mailbox.put_nowait({"type": "deliver"})

    mailbox.fail(ConnectionResetError("gone"))

    assert (await mailbox.get())[0] == {"type": "deliver"}
    with pytest.raises(ConnectionResetError):
        await mailbox.get()


@needs_redis
async def test_a_mailbox_on_another_worker_gets_group_messages_through_redis_once_in_order():
    here, there = worker_layer(), worker_layer()
    try:
        _, local = await mailbox_member(here, "chat.9")
        _, remote = await mailbox_member(there, "chat.9")

        for n in range(3):
            here.group_send_nowait("chat.9", {"type": "deliver", "n": n})

        expected = [{"type": "deliver", "n": n} for n in range(3)]
        assert await taken(local) == expected
        assert await taken(remote) == expected
    finally:
        await here.flush()
        await there.flush()


@needs_redis
async def test_on_redis_a_group_message_skips_the_channel_it_is_told_to_here_and_reaches_other_workers(workers):
    here, there = workers(), workers()
    origin, origin_mailbox = await mailbox_member(here, "user.9")
    _, other_tab = await mailbox_member(here, "user.9")
    _, remote = await mailbox_member(there, "user.9")

    here.group_send_nowait("user.9", {"type": "deliver", "n": 1}, skip=origin)

    assert await taken(other_tab) == [{"type": "deliver", "n": 1}]
    assert await taken(remote) == [{"type": "deliver", "n": 1}]
    assert await taken(origin_mailbox, within=0.3) == []


# --- Publishing only while another worker has members -------------------------------------------


def group_channel(layer, group: str) -> str:
    return layer._get_layer()._get_group_channel_name(group)


def shard(layer, group: str):
    loop_layer = layer._get_layer()
    return loop_layer._get_shard(loop_layer._get_group_channel_name(group))


async def until_alone(layer, group: str) -> None:
    """Until `layer` knows it is alone in the group: a probe's answer and its echo both came back."""
    deadline = time.monotonic() + 2
    while group_channel(layer, group) not in shard(layer, group).alone_in:
        assert time.monotonic() < deadline, f"never found itself alone in {group}"
        await asyncio.sleep(0.005)


async def drop_subscriber_connection(layer, group: str, monkeypatch) -> asyncio.Event:
    """Drop `layer`'s subscriber connection and hold its reconnection back until the event is set;
    returns once Redis no longer counts it among the group's subscribers."""
    from redis.asyncio.connection import Connection

    dropped = shard(layer, group)._pubsub.connection
    back, connect = asyncio.Event(), Connection.connect

    async def held_back(connection, *args, **kwargs):
        if connection is dropped:
            await back.wait()
        return await connect(connection, *args, **kwargs)

    monkeypatch.setattr(Connection, "connect", held_back)
    subscribers = await shard(layer, group)._redis.pubsub_numsub(group_channel(layer, group))
    await dropped.disconnect()
    while (await shard(layer, group)._redis.pubsub_numsub(group_channel(layer, group)))[0][1] == subscribers[0][1]:
        await asyncio.sleep(0.01)
    return back


@pytest.fixture
async def workers():
    """Makes channel layers as worker processes have them, each with its own id; flushed at the end."""
    made = []

    def make() -> LocalFirstPubSubChannelLayer:
        made.append(worker_layer())
        return made[-1]

    yield make
    for layer in made:
        await layer.flush()


@pytest.fixture
def publishes(monkeypatch):
    """Counts the PUBLISH commands written to Redis, by channel."""
    from redis.asyncio.connection import Connection

    written: list[bytes] = []
    send_packed_command = Connection.send_packed_command

    async def recorded(connection, command, *args, **kwargs):
        written.append(command if isinstance(command, bytes) else b"".join(command))
        return await send_packed_command(connection, command, *args, **kwargs)

    monkeypatch.setattr(Connection, "send_packed_command", recorded)

    def to(channel: str) -> int:
        name = channel.encode()
        return sum(w.count(b"PUBLISH\r\n$%d\r\n%s\r\n" % (len(name), name)) for w in written)

    return to


@needs_redis
async def test_a_worker_alone_in_a_group_stops_publishing_its_messages(workers, publishes):
    here = workers()
    first, second = await member(here, "chat.20"), await member(here, "chat.20")
    await here.group_send("chat.20", {"type": "deliver", "n": 0})
    await until_alone(here, "chat.20")

    for n in range(1, 4):
        await here.group_send("chat.20", {"type": "deliver", "n": n})

    # The first publish's answer (one receiver: this worker) tells it nobody else listens.
    assert publishes(group_channel(here, "chat.20")) == 1
    expected = [{"type": "deliver", "n": n} for n in range(4)]
    assert await received(here, first) == expected
    assert await received(here, second) == expected


@needs_redis
async def test_a_member_joining_on_another_worker_gets_every_message_sent_after_its_join_returned(workers, monkeypatch):
    here, there = workers(), workers()
    for n in range(20):
        group = f"chat.{30 + n}"
        await member(here, group)
        if n % 2:
            # Alone, and known to be.
            await here.group_send(group, {"type": "deliver", "n": "before"})
            await until_alone(here, group)
            # And slow to hear of the join: the join must wait for it.
            heard = shard(here, group)._heard_on_control_channel
            monkeypatch.setattr(
                shard(here, group),
                "_heard_on_control_channel",
                lambda data, heard=heard: asyncio.get_running_loop().call_later(0.05, heard, data),
            )
        # The join races a publish whose answer may still say "alone" when it comes back.
        channel, _ = await asyncio.gather(
            member(there, group), here.group_send(group, {"type": "deliver", "n": "meanwhile"})
        )
        monkeypatch.undo()

        await here.group_send(group, {"type": "deliver", "n": "after"})

        # "meanwhile" was sent while the join was under way: it may or may not arrive.
        assert [m for m in await received(there, channel, within=1.0) if m["n"] != "meanwhile"] == [
            {"type": "deliver", "n": "after"}
        ]


@needs_redis
async def test_an_answer_from_before_a_join_that_comes_back_after_it_does_not_silence_the_group(workers):
    here, there = workers(), workers()
    await member(here, "chat.24")
    late = []
    answered = shard(here, "chat.24")._probe_answered
    shard(here, "chat.24")._probe_answered = lambda *answer: late.append(answer)
    # Published when only this worker listened (one receiver), but the answer is slow to come back.
    await here.group_send("chat.24", {"type": "deliver", "n": "before"})
    channel = await member(there, "chat.24")
    answered(*late[0])

    await here.group_send("chat.24", {"type": "deliver", "n": "after"})

    assert late[0][2] == 1  # receivers
    assert await received(there, channel) == [{"type": "deliver", "n": "after"}]


@needs_redis
async def test_when_the_other_workers_members_leave_the_sender_stops_publishing_again(workers, publishes):
    here, there = workers(), workers()
    local, remote = await member(here, "chat.21"), await member(there, "chat.21")
    await here.group_send("chat.21", {"type": "deliver", "n": 0})
    published_while_there = publishes(group_channel(here, "chat.21"))
    await there.group_discard("chat.21", remote)
    sent, deadline = 1, time.monotonic() + 5
    # Published until a probe finds this worker alone (Redis applies the UNSUBSCRIBE when it gets to it).
    while group_channel(here, "chat.21") not in shard(here, "chat.21").alone_in and time.monotonic() < deadline:
        await here.group_send("chat.21", {"type": "deliver", "n": sent})
        sent += 1
    published_until_alone = publishes(group_channel(here, "chat.21"))

    for n in range(sent, sent + 3):
        await here.group_send("chat.21", {"type": "deliver", "n": n})

    assert published_while_there == 1
    assert publishes(group_channel(here, "chat.21")) == published_until_alone
    assert await received(here, local) == [{"type": "deliver", "n": n} for n in range(sent + 3)]


@needs_redis
async def test_a_worker_back_from_a_dropped_connection_is_published_for_again(workers, monkeypatch):
    here, there = workers(), workers()
    await member(here, "chat.22")
    _, remote = await mailbox_member(there, "chat.22")
    back = await drop_subscriber_connection(there, "chat.22", monkeypatch)
    # Sent while the other worker was away: only this worker counted, so this one is alone now.
    await here.group_send("chat.22", {"type": "deliver", "n": "away"})
    await until_alone(here, "chat.22")

    back.set()
    # Once its subscriptions are back, it tells the others to forget what they believed.
    deadline = time.monotonic() + 5
    heard = []
    while not heard and time.monotonic() < deadline:
        await here.group_send("chat.22", {"type": "deliver", "n": "back"})
        heard = await taken(remote, within=0.1)

    assert heard and {m["n"] for m in heard} == {"back"}


@needs_redis
async def test_a_join_waits_for_an_unanswering_worker_only_so_long_and_says_so(workers, monkeypatch, caplog):
    import redis.asyncio

    monkeypatch.setattr(channel_layer, "ACK_TIMEOUT_SECONDS", 0.3)
    here, there = workers(), workers()
    silent = redis.asyncio.Redis(host=os.environ["REDIS_HOST"], port=int(os.environ.get("REDIS_PORT", "6379")))
    listener = silent.pubsub()
    try:
        await member(there, "chat.23")  # a worker that answers
        assert "did not answer" not in caplog.text
        await listener.subscribe(shard(here, "chat.23").control_channel)  # one that never does
        await listener.get_message(timeout=1)  # its SUBSCRIBE is in effect

        channel = await member(here, "chat.23")
        await there.group_send("chat.23", {"type": "deliver"})

        assert "1 of 2 workers did not answer within 0.3 s" in caplog.text
        assert await received(here, channel) == [{"type": "deliver"}]
    finally:
        await listener.aclose()
        await silent.aclose()


@needs_redis
async def test_a_worker_whose_subscription_is_away_does_not_take_another_workers_receipt_for_its_own(
    workers, monkeypatch
):
    here, there = workers(), workers()
    _, local = await mailbox_member(here, "chat.25")
    await member(there, "chat.25")
    back = await drop_subscriber_connection(there, "chat.25", monkeypatch)

    # One receiver each time, but not this worker: it must go on publishing.
    for n in range(3):
        await there.group_send("chat.25", {"type": "deliver", "n": n})

    assert group_channel(there, "chat.25") not in shard(there, "chat.25").alone_in
    assert await taken(local) == [{"type": "deliver", "n": n} for n in range(3)]
    back.set()
    # Back: nothing of what was sent while it was away is left (its reconnection forgot it).
    while (await shard(here, "chat.25")._redis.pubsub_numsub(group_channel(here, "chat.25")))[0][1] != 2:
        await asyncio.sleep(0.01)
    await there.group_send("chat.25", {"type": "deliver", "n": 3})
    assert await taken(local) == [{"type": "deliver", "n": 3}]
    assert group_channel(there, "chat.25") not in shard(there, "chat.25")._probes


@needs_redis
async def test_a_probe_sent_before_this_workers_subscription_took_effect_is_forgotten_at_the_next_echo(workers):
    here, there = workers(), workers()
    remote = await member(there, "chat.26")
    channel = await here.new_channel()
    # A join under way: the member is counted here, its SUBSCRIBE not sent yet.
    here._get_layer().groups[group_channel(here, "chat.26")] = {channel}
    for n in range(40):  # one receiver each time, the other worker
        await here.group_send("chat.26", {"type": "deliver", "n": n})
    waiting = dict(shard(here, "chat.26")._probes[group_channel(here, "chat.26")])
    await here.group_add("chat.26", channel)

    await here.group_send("chat.26", {"type": "deliver", "n": 40})
    assert len(await received(there, remote)) == 41  # by then the echo has come back here too

    # Only the newest are kept while they wait.
    assert [probe.answered_alone for probe in waiting.values()] == [True] * channel_layer.MAX_PROBES_PER_GROUP
    assert group_channel(here, "chat.26") not in shard(here, "chat.26")._probes
    assert group_channel(here, "chat.26") not in shard(here, "chat.26").alone_in


@needs_redis
async def test_a_join_and_a_leave_that_overlap_leave_nothing_that_would_skip_the_next_joins_announcement(workers):
    here, there = workers(), workers()
    await member(here, "chat.27")
    await there.new_channel()  # the other worker listens
    channel = await there.new_channel()
    await join_and_leave_overlapping(there, "chat.27", lambda: there.group_add("chat.27", channel))
    assert group_channel(there, "chat.27") not in there._get_layer().groups
    await here.group_send("chat.27", {"type": "deliver", "n": "alone"})
    await until_alone(here, "chat.27")

    joined = await member(there, "chat.27")
    await here.group_send("chat.27", {"type": "deliver", "n": "after"})

    assert await received(there, joined) == [{"type": "deliver", "n": "after"}]


async def join_and_leave_overlapping(layer, group: str, join) -> None:
    """`join` and a leave of the same channel overlap: both wait for the shard's lock (a publish being
    written, say), the join first."""
    lock = shard(layer, group)._lock
    await lock.acquire()
    joining = asyncio.ensure_future(join())
    await asyncio.sleep(0.01)  # the join waits in subscribe(): the member is counted already
    (channel,) = layer._get_layer().groups[group_channel(layer, group)]
    leaving = asyncio.ensure_future(layer.group_discard(group, channel))
    await asyncio.sleep(0.01)
    lock.release()
    await asyncio.gather(joining, leaving)


@needs_redis
async def test_a_worker_that_loses_its_subscriber_connection_publishes_again_once_it_notices(workers, monkeypatch):
    monkeypatch.setattr(channel_layer, "HEARTBEAT_SECONDS", 0.1)
    monkeypatch.setattr(channel_layer, "SYNC_TIMEOUT_SECONDS", 0.3)
    here, there = workers(), workers()
    local = await member(here, "chat.28")
    await here.group_send("chat.28", {"type": "deliver", "n": "alone"})
    await until_alone(here, "chat.28")
    await there.new_channel()
    # Its reconnection hangs (Redis unreachable from it, say), inside redis-py's retries.
    back = await drop_subscriber_connection(here, "chat.28", monkeypatch)

    # Joined while this worker was away: it was not counted, and did not hear.
    remote = await member(there, "chat.28")
    deadline = time.monotonic() + 5
    while group_channel(here, "chat.28") in shard(here, "chat.28").alone_in and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    await here.group_send("chat.28", {"type": "deliver", "n": "away"})

    assert await received(there, remote) == [{"type": "deliver", "n": "away"}]
    back.set()
    assert [m["n"] for m in await received(here, local)] == ["alone", "away"]


@needs_redis
async def test_a_subscriber_connection_that_stops_answering_is_noticed_and_replaced(workers, monkeypatch, caplog):
    from redis.asyncio.connection import Connection

    monkeypatch.setattr(channel_layer, "HEARTBEAT_SECONDS", 0.1)
    monkeypatch.setattr(channel_layer, "SYNC_TIMEOUT_SECONDS", 0.3)
    here, there = workers(), workers()
    await member(here, "chat.29")
    await here.group_send("chat.29", {"type": "deliver", "n": "alone"})
    await until_alone(here, "chat.29")
    silent = shard(here, "chat.29")._pubsub.connection
    send_command, disconnect = Connection.send_command, Connection.disconnect
    dead = [True]

    async def swallowed(connection, *args, **kwargs):
        if connection is silent and dead[0] and args[0] == "PING":
            return None  # as on a connection that died without a word: nothing comes back
        return await send_command(connection, *args, **kwargs)

    async def closed(connection, *args, **kwargs):
        if connection is silent:
            dead[0] = False
        return await disconnect(connection, *args, **kwargs)

    monkeypatch.setattr(Connection, "send_command", swallowed)
    monkeypatch.setattr(Connection, "disconnect", closed)
    deadline = time.monotonic() + 5
    while dead[0] and time.monotonic() < deadline:
        await asyncio.sleep(0.05)

    assert not dead[0] and "Redis did not answer a PING within 0.3 s: reconnecting" in caplog.text
    assert not shard(here, "chat.29").alone_in
    remote = await member(there, "chat.29")  # answered by the reconnected worker
    await here.group_send("chat.29", {"type": "deliver", "n": "after"})
    assert await received(there, remote) == [{"type": "deliver", "n": "after"}]


@needs_redis
async def test_a_join_whose_announcement_fails_leaves_no_membership_behind(workers, monkeypatch):
    here = workers()
    await here.new_channel()  # connected, listening
    channel = await here.new_channel()

    async def unanswered():
        raise ConnectionError("Redis did not answer a PING")

    monkeypatch.setattr(shard(here, "chat.30"), "_sync", unanswered)
    with pytest.raises(ConnectionError):
        await here.group_add("chat.30", channel)

    assert group_channel(here, "chat.30") not in here._get_layer().groups
    assert group_channel(here, "chat.30") not in shard(here, "chat.30")._subscribed_to


@needs_redis
async def test_a_pattern_subscriber_does_not_hold_joins_up(workers, caplog, monkeypatch):
    import redis.asyncio

    monkeypatch.setattr(channel_layer, "ACK_TIMEOUT_SECONDS", 0.3)
    here = workers()
    watcher = redis.asyncio.Redis(host=os.environ["REDIS_HOST"], port=int(os.environ.get("REDIS_PORT", "6379")))
    everything = watcher.pubsub()
    try:
        await everything.psubscribe(f"{redis_namespace.CHANNEL_LAYER_PREFIX}*")  # someone watching, never answering
        await everything.get_message(timeout=1)

        await member(here, "chat.31")

        assert "did not answer" not in caplog.text
    finally:
        await everything.aclose()
        await watcher.aclose()


@needs_redis
async def test_two_shards_on_one_redis_server_neither_hold_joins_up_nor_lose_messages(monkeypatch, caplog):
    monkeypatch.setattr(channel_layer, "ACK_TIMEOUT_SECONDS", 0.3)
    host, port = os.environ["REDIS_HOST"], os.environ.get("REDIS_PORT", "6379")
    hosts = [f"redis://{host}:{port}/0", f"redis://{host}:{port}/1"]
    here, there = (
        LocalFirstPubSubChannelLayer(hosts=hosts, prefix=redis_namespace.CHANNEL_LAYER_PREFIX) for _ in range(2)
    )
    try:
        by_shard = {}
        for n in range(40, 80):
            by_shard.setdefault(id(shard(here, f"chat.{n}")), []).append(f"chat.{n}")
        assert len(by_shard) == 2
        groups = [group for on_one_shard in by_shard.values() for group in on_one_shard[:3]]
        remote = {}
        for group in groups:
            await member(here, group)
            await here.group_send(group, {"type": "deliver", "n": "alone"})
            remote[group] = await member(there, group)
            await here.group_send(group, {"type": "deliver", "n": "after"})

        assert "did not answer" not in caplog.text
        for group in groups:
            assert await received(there, remote[group]) == [{"type": "deliver", "n": "after"}]
    finally:
        await here.flush()
        await there.flush()


@needs_redis
async def test_a_malformed_message_on_the_control_channel_is_reported_and_the_worker_publishes_again(workers, caplog):
    here, there = workers(), workers()
    local = await member(here, "chat.50")
    await here.group_send("chat.50", {"type": "deliver", "n": "alone"})
    await until_alone(here, "chat.50")
    remote = await member(there, "chat.50")
    await there.group_send("chat.50", {"type": "deliver", "n": "from there"})

    for garbage in (b"", b"hello", b"A" + bytes(20), b"A" + bytes(16) + bytes(8) + b"\xff\xfe"):
        await shard(here, "chat.50")._redis.publish(shard(here, "chat.50").control_channel, garbage)
    await there.group_send("chat.50", {"type": "deliver", "n": "still from there"})

    assert [m["n"] for m in await received(here, local)] == ["alone", "from there", "still from there"]
    assert caplog.text.count("malformed message on") == 2 * 4  # both workers listen
    assert "Unexpected exception in receive task" not in caplog.text
    assert group_channel(here, "chat.50") not in shard(here, "chat.50").alone_in
    await here.group_send("chat.50", {"type": "deliver", "n": "published"})
    assert [m["n"] for m in await received(there, remote)] == ["from there", "still from there", "published"]
