"""Redis restarts under two workers: they reconnect by themselves, and nothing acknowledged is lost; a
socket that closes while the channel layer's Redis is away leaves nothing behind.

The test runs its own redis-server on a free port, so restarting it disturbs nothing else.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import subprocess
import time

import pytest
from asgiref.sync import sync_to_async
from channels.layers import channel_layers, get_channel_layer
from channels.routing import URLRouter
from channels.testing import WebsocketCommunicator
from django.urls import path
from rest_framework_simplejwt.tokens import AccessToken

from chat_realtime.consumers import RealtimeConsumer
from chat_realtime.tests import redis_namespace
from chat_realtime.tests.servers import Client, WorkerProcess, free_port
from chat_realtime.tests.test_two_workers import FAST_PRESENCE
from chat_realtime.websocket_guards import AccessTokenAuthMiddleware
from messaging.store import message_store
from presence import selectors
from presence.services import online_users_key

pytestmark = pytest.mark.django_db(transaction=True)

REDIS_SERVER = shutil.which("redis-server")


class PrivateRedis:
    def __init__(self, directory) -> None:
        self.port = free_port()
        self.directory = directory
        self.process: subprocess.Popen | None = None

    def start(self) -> None:
        self.process = subprocess.Popen(
            [REDIS_SERVER, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
            cwd=self.directory,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        import redis

        for _ in range(100):
            with contextlib.suppress(redis.exceptions.ConnectionError):
                redis.Redis(port=self.port).ping()
                return
            time.sleep(0.05)
        raise RuntimeError("redis-server did not start")

    def stop(self) -> None:
        if self.process is not None:
            self.process.kill()
            self.process.wait(timeout=10)
            self.process = None


@pytest.fixture
def redis_and_workers(tmp_path):
    if REDIS_SERVER is None:
        pytest.skip("redis-server is missing: the Redis restart test did not run")
    private = PrivateRedis(tmp_path)
    private.start()
    environment = {**FAST_PRESENCE, "REDIS_HOST": "127.0.0.1", "REDIS_PORT": str(private.port), "REDIS_DB": "0"}
    workers = [WorkerProcess(tmp_path / name, **environment).start() for name in ("a", "b")]
    yield private, workers
    for worker in workers:
        worker.stop()
    private.stop()


async def test_workers_ride_out_a_redis_restart_and_lose_nothing_acknowledged(redis_and_workers, friends_with_chat):
    private, (a, b) = redis_and_workers
    alice, bob, chat = friends_with_chat

    async with Client(alice, a) as alice_on_a, Client(bob, b) as bob_on_b:
        await alice_on_a.join(chat.pk)
        await bob_on_b.join(chat.pk)
        before = (await alice_on_a.send_message(chat.pk, "before", "r0"))["message"]["id"]
        await bob_on_b.wait_for(lambda f: f["type"] == "new_message" and f["message"]["id"] == before)

        private.stop()
        during = []
        for n in range(3):
            answer = await alice_on_a.send_message(chat.pk, f"during {n}", f"r{n + 1}")
            # Redis holds no message: with it away, sending still stores and acks (live delivery waits).
            assert answer["type"] == "message_ack", answer
            during.append(answer["message"]["id"])
        private.start()

        # The workers find Redis again by themselves: delivery across them resumes.
        deadline = time.monotonic() + 30
        delivered_after = None
        n = 0
        while time.monotonic() < deadline and delivered_after is None:
            n += 1
            after = (await alice_on_a.send_message(chat.pk, f"after {n}", f"a{n}"))["message"]["id"]
            with contextlib.suppress(AssertionError):
                await bob_on_b.wait_for(
                    lambda f, i=after: f["type"] == "new_message" and f["message"]["id"] == i, timeout=1
                )
                delivered_after = after
        assert delivered_after is not None, "delivery between workers did not resume after Redis came back"

        # The restarted Redis came back empty; the next heartbeats put presence back.
        import redis

        await asyncio.sleep(1.5)
        online = await asyncio.to_thread(redis.Redis(port=private.port).smembers, online_users_key())
        assert {int(member) for member in online} == {alice.pk, bob.pk}

        stored_ids = {m.id for m in await sync_to_async(message_store().page_before)(chat.pk, before=None, limit=100)}
        assert before in stored_ids and set(during) <= stored_ids and len(during) == 3
        assert alice_on_a.socket.state.name == "OPEN" and bob_on_b.socket.state.name == "OPEN"


# --- A socket that closes while the channel layer's Redis is away -------------------------------


class PrivateConsumer(RealtimeConsumer):
    # A class attribute: Channels' consumers ignore the keyword arguments of as_asgi().
    channel_layer_alias = "private"


@pytest.fixture
def private_redis(tmp_path, settings):
    """The channel layer on a redis-server of its own (presence stays on the tests' Redis)."""
    if REDIS_SERVER is None:
        pytest.skip("redis-server is missing: the Redis restart tests did not run")
    private = PrivateRedis(tmp_path)
    private.start()
    settings.CHANNEL_LAYERS = {
        **settings.CHANNEL_LAYERS,
        "private": {
            "BACKEND": "chat_realtime.channel_layer.LocalFirstPubSubChannelLayer",
            "CONFIG": {
                "hosts": [f"redis://127.0.0.1:{private.port}/0"],
                "prefix": redis_namespace.CHANNEL_LAYER_PREFIX,
            },
        },
    }
    yield private
    private.stop()
    channel_layers.backends.pop("private", None)


async def open_then_close_while_redis_is_away(private_redis, user, *, noticed: bool):
    app = AccessTokenAuthMiddleware(URLRouter([path("ws/", PrivateConsumer.as_asgi())]))
    socket = WebsocketCommunicator(app, f"/ws/?token={AccessToken.for_user(user)}")
    assert (await socket.connect())[0]
    await socket.receive_json_from(timeout=3)
    layer = get_channel_layer("private")._get_layer()
    user_group = layer._get_group_channel_name(f"user.{user.pk}")
    assert user_group in layer.groups

    private_redis.stop()
    if noticed:
        await asyncio.sleep(1.5)  # the layer's receiving loop has seen its connection drop
    with contextlib.suppress(Exception):
        await socket.disconnect(timeout=30)
    private_redis.start()  # back, on the same port
    await asyncio.sleep(3)  # the receiving loop reconnects; redis-py subscribes again to what it holds
    shard = layer._get_shard(user_group)
    return layer, shard, user_group, (await shard._redis.pubsub_numsub(user_group))[0][1]


async def test_a_socket_closed_just_as_the_layers_redis_goes_away_leaves_no_subscription_behind(
    private_redis, make_user
):
    user = await sync_to_async(make_user)()
    layer, shard, user_group, subscribers = await open_then_close_while_redis_is_away(
        private_redis, user, noticed=False
    )

    assert user_group not in layer.groups and user_group not in shard._subscribed_to  # the layer thinks it left...
    assert subscribers == 0  # ...but Redis still sends this worker the group's messages


async def test_a_socket_closed_while_the_layers_redis_is_away_is_released_from_its_groups_and_presence(
    private_redis, make_user
):
    user = await sync_to_async(make_user)()
    layer, shard, user_group, subscribers = await open_then_close_while_redis_is_away(private_redis, user, noticed=True)

    assert not await sync_to_async(selectors.is_online)(user.pk)  # presence's own Redis was up all along
    assert user_group not in shard._subscribed_to and subscribers == 0
