"""The channel layers: in one process (embedded defaults), and on Redis, where a worker's own members get
messages at once and other workers' members get them through Redis."""

from __future__ import annotations

import asyncio
import os
import time

import pytest

from chat_realtime import channel_layer
from chat_realtime.channel_layer import InProcessChannelLayer, LocalFirstPubSubChannelLayer
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
