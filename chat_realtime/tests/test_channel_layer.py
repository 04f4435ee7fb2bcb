"""The channel layer on Redis delivers to this worker's own members at once and to other workers through Redis."""

from __future__ import annotations

import asyncio
import os

import pytest

from chat_realtime.channel_layer import LocalFirstPubSubChannelLayer
from chat_realtime.tests import redis_namespace

pytestmark = pytest.mark.skipif(
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


async def test_a_member_on_the_sending_worker_gets_each_group_message_once():
    here = worker_layer()
    try:
        channel = await member(here, "chat.1")

        await here.group_send("chat.1", {"type": "deliver", "n": 1})

        assert await received(here, channel) == [{"type": "deliver", "n": 1}]
    finally:
        await here.flush()


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


async def test_a_worker_without_members_of_the_group_gets_nothing():
    here, there = worker_layer(), worker_layer()
    try:
        await member(here, "chat.4")
        bystander = await member(there, "chat.5")

        await here.group_send("chat.4", {"type": "deliver"})

        assert await received(there, bystander, within=0.5) == []
    finally:
        await here.flush()
        await there.flush()
