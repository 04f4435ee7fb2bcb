"""Announcements of one user published by two workers may arrive in either order: the newest one stands."""

import pytest
from asgiref.sync import sync_to_async
from django.db import transaction

from chat_realtime import realtime, shared_redis
from chat_realtime.tests.sockets import close, open_socket
from presence import selectors, services

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def alice_and_bob(make_user, befriend):
    alice, bob = make_user(username="alice"), make_user(username="bob")
    befriend(alice, bob)
    return alice, bob


@pytest.fixture
def held_back(monkeypatch):
    """What presence announces is kept here, as if its worker were slow to publish it, until released."""
    held: list = []
    monkeypatch.setattr(services, "publish", held.extend)
    return held


def about(user, events) -> list:
    return [event for event in events if event[1]["frame"]["user_id"] == user.pk]


def release(events) -> None:
    realtime.publish(list(events))


def comes_and_reloads(user) -> None:
    """The user opens a page, then reloads it: the old tab's worker takes them offline, the new tab's worker
    online again."""
    services.connect(user_id=user.pk, connection_id="old-tab")
    services.disconnect(user_id=user.pk, connection_id="old-tab")
    services.connect(user_id=user.pk, connection_id="new-tab")


async def shown_before_pong(socket) -> list[dict]:
    """The frames the socket shows before the answer to a ping: everything delivered to it by now."""
    await socket.send_json_to({"type": "ping"})
    frames = []
    while (frame := await socket.receive_json_from(timeout=3))["type"] != "pong":
        frames.append(frame)
    return frames


async def test_an_offline_that_arrives_after_the_later_online_is_not_shown(alice_and_bob, held_back):
    alice, bob = alice_and_bob
    alice_tab = await open_socket(alice)
    await sync_to_async(comes_and_reloads)(bob)
    _, offline, online_again = about(bob, held_back)

    await sync_to_async(release)([online_again, offline])  # the old tab's worker was the slower one

    assert [f["type"] for f in await shown_before_pong(alice_tab)] == ["user_online"]
    await close(alice_tab)


async def test_announcements_in_their_own_order_are_all_shown(alice_and_bob, held_back):
    alice, bob = alice_and_bob
    alice_tab = await open_socket(alice)
    await sync_to_async(comes_and_reloads)(bob)

    await sync_to_async(release)(about(bob, held_back))

    shown = await shown_before_pong(alice_tab)
    assert [f["type"] for f in shown] == ["user_online", "user_offline", "user_online"]
    await close(alice_tab)


async def test_an_announcement_older_than_the_sockets_list_of_online_friends_is_not_shown(alice_and_bob, held_back):
    alice, bob = alice_and_bob
    await sync_to_async(services.connect)(user_id=bob.pk, connection_id="tab")
    await sync_to_async(services.disconnect)(user_id=bob.pk, connection_id="tab")
    online, _ = about(bob, held_back)
    alice_tab = await open_socket(alice)
    assert alice_tab.greeting["user_ids"] == []  # bob, offline by now

    await sync_to_async(release)([online])

    assert await shown_before_pong(alice_tab) == []
    await close(alice_tab)


async def test_new_friends_news_of_each_other_online_does_not_undo_a_later_offline(make_user, befriend, held_back):
    alice, bob = await sync_to_async(make_user)(username="alice"), await sync_to_async(make_user)(username="bob")
    alice_tab = await open_socket(alice)
    await sync_to_async(services.connect)(user_id=bob.pk, connection_id="tab")
    await sync_to_async(befriend)(alice, bob)
    await sync_to_async(services.disconnect)(user_id=bob.pk, connection_id="tab")
    (online_as_friends, offline) = about(bob, held_back)  # to alice: they were not friends when he came

    await sync_to_async(release)([offline, online_as_friends])

    assert [f["type"] for f in await shown_before_pong(alice_tab) if f["type"] in ("user_online", "user_offline")] == [
        "user_offline"
    ]
    await close(alice_tab)


async def test_a_presence_clock_stepped_back_does_not_hide_what_comes_next(alice_and_bob):
    alice, bob = alice_and_bob
    alice_tab = await open_socket(alice)
    await sync_to_async(services.connect)(user_id=bob.pk, connection_id="tab")
    # Bob's "online" was stamped an hour ahead of Redis's time now: the host's clock was stepped back since.
    ahead = await sync_to_async(selectors.presence_clock)() + 3_600_000_000
    await sync_to_async(shared_redis.connection().set)(services.clock_key(), ahead)
    online_ahead = services.presence_event(alice.pk, {"type": "user_online", "user_id": bob.pk}, at=ahead)
    await sync_to_async(release)([online_ahead])

    await sync_to_async(services.disconnect)(user_id=bob.pk, connection_id="tab")

    shown = [f["type"] for f in await shown_before_pong(alice_tab) if f["type"] in ("user_online", "user_offline")]
    assert shown[-1] == "user_offline"
    await close(alice_tab)


async def test_an_offline_while_a_friendship_is_being_accepted_is_not_undone_by_its_online(make_user):
    from unittest import mock

    from friends import services as friend_services

    alice, bob = await sync_to_async(make_user)(username="alice"), await sync_to_async(make_user)(username="bob")
    await sync_to_async(friend_services.send_friend_request)(sender=alice, receiver_id=bob.pk)
    alice_tab = await open_socket(alice)
    await sync_to_async(services.connect)(user_id=bob.pk, connection_id="tab")

    @sync_to_async
    def accept_while_bob_leaves():
        with transaction.atomic():
            friend_services.accept_friend_request(receiver=bob, requester_id=alice.pk)
            # Bob's last tab closes on another worker, which cannot see the friendship yet.
            with mock.patch.object(services, "friend_ids", return_value=[]):
                services.disconnect(user_id=bob.pk, connection_id="tab")

    await accept_while_bob_leaves()

    shown = [f for f in await shown_before_pong(alice_tab) if f["type"] in ("user_online", "user_offline")]
    assert shown == []  # bob is offline: nothing says otherwise
    await close(alice_tab)


async def test_a_friend_announced_while_a_socket_reads_its_friends_is_shown(make_user, befriend, monkeypatch):
    alice, bob = await sync_to_async(make_user)(username="alice"), await sync_to_async(make_user)(username="bob")
    await sync_to_async(services.connect)(user_id=bob.pk, connection_id="tab")
    read_friends = selectors.friend_ids

    def friendship_committed_meanwhile(user_id):
        friends = read_friends(user_id)  # without bob: not friends yet
        if user_id == alice.pk and not friends:
            befriend(alice, bob)  # committed and announced now, before the socket's list is out
        return friends

    monkeypatch.setattr(selectors, "friend_ids", friendship_committed_meanwhile)

    alice_tab = await open_socket(alice)

    assert alice_tab.greeting["user_ids"] == []
    shown = [f for f in await shown_before_pong(alice_tab) if f["type"] == "user_online"]
    assert shown == [{"type": "user_online", "user_id": bob.pk}]
    await close(alice_tab)
