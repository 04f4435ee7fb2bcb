"""Online, offline and last seen, right across tabs, workers, crashes and Redis flushes."""

import asyncio

import pytest
from asgiref.sync import sync_to_async
from django.conf import settings
from rest_framework.test import APIClient

from accounts.models import User
from chat_realtime import shared_redis
from chat_realtime.channel_layer import reaches_other_processes
from chat_realtime.tests.sockets import close, drain, open_socket
from friends import services as friends_services
from presence import selectors, services
from presence.services import connections_key, online_users_key

pytestmark = pytest.mark.django_db(transaction=True)

PRESENCE = ("user_online", "user_offline")


def presence_frames(frames):
    return [f for f in frames if f["type"] in PRESENCE]


@pytest.fixture
def trio(make_user, befriend):
    """alice and bob are friends; carol is a stranger to both."""
    alice, bob, carol = make_user(username="alice"), make_user(username="bob"), make_user(username="carol")
    befriend(alice, bob)
    return alice, bob, carol


def online_users() -> set[int]:
    return {int(m) for m in shared_redis.connection().smembers(online_users_key())}


@sync_to_async
def redis_loses_the_presence_of(*users) -> None:
    """As a flush or a restart of Redis without persistence would."""
    shared_redis.connection().delete(online_users_key(), *(connections_key(user.pk) for user in users))


async def last_seen(user):
    return (await User.objects.aget(pk=user.pk)).last_seen


async def test_connecting_tells_online_friends_only_and_greets_with_who_is_online(trio):
    alice, bob, carol = trio
    alice_tab, carol_tab = await open_socket(alice), await open_socket(carol)

    bob_tab = await open_socket(bob)

    assert bob_tab.greeting == {"type": "online_friends", "user_ids": [alice.pk]}
    assert presence_frames(await drain(alice_tab)) == [{"type": "user_online", "user_id": bob.pk}]
    assert presence_frames(await drain(carol_tab)) == []
    assert carol_tab.greeting == {"type": "online_friends", "user_ids": []}
    await close(alice_tab, bob_tab, carol_tab)


async def test_a_second_tab_changes_nothing_and_closing_one_of_two_changes_nothing(trio):
    alice, bob, _ = trio
    alice_tab = await open_socket(alice)
    bob_one = await open_socket(bob)
    await drain(alice_tab)

    bob_two = await open_socket(bob)
    opened = presence_frames(await drain(alice_tab))
    await bob_one.disconnect()
    closed_one = presence_frames(await drain(alice_tab))

    assert opened == [] and closed_one == []
    assert await sync_to_async(selectors.is_online)(bob.pk)
    assert await last_seen(bob) is None

    await bob_two.disconnect()
    closed_last = presence_frames(await drain(alice_tab))

    assert [f["type"] for f in closed_last] == ["user_offline"]
    seen = await last_seen(bob)
    assert seen is not None
    assert closed_last[0] == {
        "type": "user_offline",
        "user_id": bob.pk,
        "last_seen": seen.isoformat().replace("+00:00", "Z"),
    }
    assert not await sync_to_async(selectors.is_online)(bob.pk)
    assert bob.pk not in await sync_to_async(online_users)()
    await close(alice_tab)


async def test_the_original_online_users_key_lists_who_is_online(trio):
    alice, bob, carol = trio
    tabs = [await open_socket(alice), await open_socket(carol)]

    assert await sync_to_async(online_users)() == {alice.pk, carol.pk}
    await close(*tabs)
    assert await sync_to_async(online_users)() == set()


async def test_the_friend_list_says_online_exactly_while_a_connection_is_open(trio):
    alice, bob, _ = trio
    api = APIClient()
    api.force_authenticate(alice)

    async def bob_entry():
        response = await sync_to_async(api.get)("/api/friends")
        return response.json()["results"][0]

    before = await bob_entry()
    bob_tab = await open_socket(bob)
    during = await bob_entry()
    await bob_tab.disconnect()
    after = await bob_entry()

    assert (before["online"], during["online"], after["online"]) == (False, True, False)
    assert after["last_seen"] is not None


async def test_strangers_and_ex_friends_hear_nothing(trio):
    alice, bob, carol = trio
    alice_tab, carol_tab = await open_socket(alice), await open_socket(carol)
    await sync_to_async(friends_services.unfriend)(user=alice, friend_id=bob.pk)
    await drain(alice_tab)

    bob_tab = await open_socket(bob)
    await bob_tab.disconnect()

    assert presence_frames(await drain(alice_tab)) == []
    assert presence_frames(await drain(carol_tab)) == []
    await close(alice_tab, carol_tab)


async def test_new_friends_who_are_both_online_see_each_other_at_once(make_user):
    alice, dave = await sync_to_async(make_user)(), await sync_to_async(make_user)()
    alice_tab, dave_tab = await open_socket(alice), await open_socket(dave)
    await sync_to_async(friends_services.send_friend_request)(sender=alice, receiver_id=dave.pk)

    await sync_to_async(friends_services.accept_friend_request)(receiver=dave, requester_id=alice.pk)

    assert presence_frames(await drain(alice_tab)) == [{"type": "user_online", "user_id": dave.pk}]
    assert presence_frames(await drain(dave_tab)) == [{"type": "user_online", "user_id": alice.pk}]
    # And from now on, transitions reach the new friend.
    await dave_tab.disconnect()
    assert [f["type"] for f in presence_frames(await drain(alice_tab))] == ["user_offline"]
    await close(alice_tab)


async def test_a_dead_workers_connections_expire_and_the_sweep_takes_their_users_offline(trio, settings):
    alice, bob, _ = trio
    settings.PRESENCE_TTL_SECONDS = 0.5
    settings.PRESENCE_HEARTBEAT_SECONDS = 0.1  # alice's live tab keeps renewing itself
    settings.PRESENCE_SWEEP_SECONDS = 100  # ...but leaves the sweeping to this test
    alice_tab = await open_socket(alice)
    # A worker registers bob's connection, then dies without closing it or renewing it.
    await sync_to_async(services.connect)(user_id=bob.pk, connection_id="dead-worker.conn")
    await drain(alice_tab)
    assert await sync_to_async(selectors.is_online)(bob.pk)

    await asyncio.sleep(0.6)
    assert not await sync_to_async(selectors.is_online)(bob.pk)
    taken = await sync_to_async(services.sweep)()

    assert taken == 1
    assert [f["type"] for f in presence_frames(await drain(alice_tab))] == ["user_offline"]
    assert await last_seen(bob) is not None
    assert bob.pk not in await sync_to_async(online_users)()
    assert await sync_to_async(services.sweep)() == 0  # once, not per sweep
    await close(alice_tab)


async def test_live_connections_renew_themselves_and_survive_the_sweep(trio, settings):
    alice, bob, _ = trio
    settings.PRESENCE_HEARTBEAT_SECONDS = 0.1
    settings.PRESENCE_TTL_SECONDS = 0.5
    alice_tab, bob_tab = await open_socket(alice), await open_socket(bob)

    await asyncio.sleep(1.0)  # two expiry periods: only heartbeats keep bob online
    await sync_to_async(services.sweep)()

    assert await sync_to_async(selectors.is_online)(bob.pk)
    assert presence_frames(await drain(alice_tab)) == [{"type": "user_online", "user_id": bob.pk}]
    await close(alice_tab, bob_tab)


async def test_a_worker_sweeps_by_itself_while_its_connections_heartbeat(trio, settings):
    alice, bob, _ = trio
    settings.PRESENCE_HEARTBEAT_SECONDS = 0.1
    settings.PRESENCE_TTL_SECONDS = 0.3
    settings.PRESENCE_SWEEP_SECONDS = 0.1
    alice_tab = await open_socket(alice)
    await sync_to_async(services.connect)(user_id=bob.pk, connection_id="dead-worker.conn")
    await drain(alice_tab, quiet=0.1)

    await asyncio.sleep(1.5)

    assert [f["type"] for f in presence_frames(await drain(alice_tab))] == ["user_offline"]
    await close(alice_tab)


async def test_presence_rebuilds_on_the_next_heartbeat_after_redis_is_flushed(trio, settings):
    alice, bob, _ = trio
    settings.PRESENCE_HEARTBEAT_SECONDS = 0.1
    alice_tab, bob_tab = await open_socket(alice), await open_socket(bob)
    await drain(alice_tab)

    await redis_loses_the_presence_of(alice, bob)
    await asyncio.sleep(0.35)

    assert await sync_to_async(selectors.is_online)(bob.pk)
    assert await sync_to_async(online_users)() == {alice.pk, bob.pk}
    # Nobody went offline: friends at most hear "online" again, which changes nothing for them.
    assert {f["type"] for f in presence_frames(await drain(alice_tab))} <= {"user_online"}
    await close(alice_tab, bob_tab)


async def test_closing_the_last_tab_after_redis_lost_its_data_still_tells_friends(trio, settings):
    alice, bob, _ = trio
    settings.PRESENCE_HEARTBEAT_SECONDS = 10  # no heartbeat puts the data back meanwhile
    alice_tab, bob_tab = await open_socket(alice), await open_socket(bob)
    await drain(alice_tab)

    await redis_loses_the_presence_of(alice, bob)
    await bob_tab.disconnect()

    assert [f["type"] for f in presence_frames(await drain(alice_tab))] == ["user_offline"]
    assert await last_seen(bob) is not None
    await close(alice_tab)


async def test_two_workers_share_presence_through_redis(trio, settings):
    """Bob's tabs on two workers (two channel layers on one Redis), alice on a third."""
    if not reaches_other_processes(settings.CHANNEL_LAYERS["default"]):
        pytest.skip("REDIS_HOST is not set: workers share presence only through a real Redis")
    from channels.routing import ProtocolTypeRouter, URLRouter
    from django.urls import path

    from chat_realtime.consumers import RealtimeConsumer
    from chat_realtime.websocket_guards import AccessTokenAuthMiddleware

    class OnWorker2(RealtimeConsumer):
        # A class attribute: Channels' consumers ignore the keyword arguments of as_asgi().
        channel_layer_alias = "worker2"

    settings.CHANNEL_LAYERS = {**settings.CHANNEL_LAYERS, "worker2": settings.CHANNEL_LAYERS["default"]}
    worker2 = ProtocolTypeRouter(
        {"websocket": AccessTokenAuthMiddleware(URLRouter([path("ws/", OnWorker2.as_asgi())]))}
    )
    alice, bob, _ = trio
    alice_tab = await open_socket(alice)
    bob_on_1 = await open_socket(bob)
    bob_on_2 = await open_socket(bob, app=worker2)

    await bob_on_1.disconnect()
    after_one = presence_frames(await drain(alice_tab))
    await bob_on_2.disconnect()
    after_both = presence_frames(await drain(alice_tab))

    assert after_one == [{"type": "user_online", "user_id": bob.pk}]
    assert [f["type"] for f in after_both] == ["user_offline"]
    await close(alice_tab)


def test_the_presence_timing_takes_a_dead_workers_users_offline_within_a_minute():
    """Expiry, then the next sweep: whichever of heartbeat and sweep period is longer."""
    worst_case = settings.PRESENCE_TTL_SECONDS + max(
        settings.PRESENCE_HEARTBEAT_SECONDS, settings.PRESENCE_SWEEP_SECONDS
    )
    assert worst_case <= 60


async def test_with_redis_down_connections_still_open(trio):
    alice, _, _ = trio
    from django.core.cache import caches
    from django.test import override_settings

    down = {
        "default": {
            **settings.CACHES["default"],
            "LOCATION": "redis://127.0.0.1:1/0",
            "OPTIONS": {"CLIENT_CLASS": "django_redis.client.DefaultClient", "SOCKET_CONNECT_TIMEOUT": 0.5},
        }
    }
    with override_settings(CACHES=down):
        tab = await open_socket(alice)
        assert tab.greeting == {"type": "online_friends", "user_ids": []}
        await tab.disconnect()
        await sync_to_async(caches["default"].close)()
