"""Two real worker processes (`manage.py serve`) on one Redis, MySQL/SQLite and message store.

Clients spread over both chat, see each other's presence and notifications;
every message is stored once and delivered to every connected participant,
counted. Then a worker dies mid-chat and nothing acknowledged is lost.
These need a real Redis (REDIS_HOST): workers share nothing else.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
import urllib.request

import pytest
from asgiref.sync import sync_to_async
from django.conf import settings
from rest_framework_simplejwt.tokens import AccessToken

from chat_realtime.channel_layer import reaches_other_processes
from chat_realtime.tests.servers import Client, WorkerProcess
from messaging.store import message_store

pytestmark = pytest.mark.django_db(transaction=True)

# Short presence timing for the workers, so a dead worker is noticed in seconds.
FAST_PRESENCE = {"PRESENCE_HEARTBEAT_SECONDS": "0.5", "PRESENCE_TTL_SECONDS": "2", "PRESENCE_SWEEP_SECONDS": "0.5"}


@pytest.fixture
def workers(tmp_path):
    if not reaches_other_processes(settings.CHANNEL_LAYERS["default"]):
        pytest.skip("REDIS_HOST is not set: two worker processes share state only through a real Redis")
    started = [WorkerProcess(tmp_path / name, **FAST_PRESENCE).start() for name in ("a", "b")]
    yield started
    for worker in started:
        worker.stop()


def http(worker: WorkerProcess, user, method: str, path: str, body: dict | None = None) -> dict:
    request = urllib.request.Request(
        worker.url + path,
        method=method,
        data=json.dumps(body).encode() if body is not None else None,
        headers={"Authorization": f"Bearer {AccessToken.for_user(user)}", "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        raw = response.read()
    return json.loads(raw) if raw else {}


async def test_clients_on_two_workers_chat_and_every_message_is_stored_once_and_delivered_to_all(
    workers, make_user, befriend
):
    a, b = workers
    pairs = []
    for _ in range(4):
        left, right = await sync_to_async(make_user)(), await sync_to_async(make_user)()
        pairs.append((left, right, await sync_to_async(befriend)(left, right)))
    per_side = 10

    async with contextlib.AsyncExitStack() as stack:
        sockets = []
        for left, right, chat in pairs:
            left_on_a = await stack.enter_async_context(Client(left, a))
            left_on_b = await stack.enter_async_context(Client(left, b))  # the same person's second tab
            right_on_b = await stack.enter_async_context(Client(right, b))
            for client in (left_on_a, left_on_b, right_on_b):
                await client.join(chat.pk)
            sockets.append((left_on_a, left_on_b, right_on_b, chat))
            # Presence crossed workers: left, on a, saw right come online on b.
            await left_on_a.wait_for(lambda f, r=right: f == {"type": "user_online", "user_id": r.pk})

        async def talk(client, chat, side):
            return [
                (await client.send_message(chat.pk, f"{side} {n}", f"{side}-{chat.pk}-{n}"))["message"]["id"]
                for n in range(per_side)
            ]

        sent = await asyncio.gather(
            *(talk(left_on_a, chat, "L") for left_on_a, _, _, chat in sockets),
            *(talk(right_on_b, chat, "R") for _, _, right_on_b, chat in sockets),
        )
        left_sent = dict(zip([s[3].pk for s in sockets], sent[: len(sockets)], strict=True))
        right_sent = dict(zip([s[3].pk for s in sockets], sent[len(sockets) :], strict=True))

        for left_on_a, left_on_b, right_on_b, chat in sockets:
            everything = set(left_sent[chat.pk]) | set(right_sent[chat.pk])

            async def settled(client, expected, chat_id=chat.pk):
                deadline = time.monotonic() + 10
                while len(client.new_message_ids(chat_id)) < len(expected) and time.monotonic() < deadline:
                    await asyncio.sleep(0.05)
                await asyncio.sleep(0.2)  # and nothing more arrives
                return client.new_message_ids(chat_id)

            # Each connection gets every message it did not send itself, exactly once.
            assert sorted(await settled(left_on_a, right_sent[chat.pk])) == sorted(right_sent[chat.pk])
            assert sorted(await settled(left_on_b, everything)) == sorted(everything)
            assert sorted(await settled(right_on_b, left_sent[chat.pk])) == sorted(left_sent[chat.pk])
            stored = await sync_to_async(message_store().page_before)(chat.pk, before=None, limit=100)
            assert sorted(m.id for m in stored) == sorted(everything)
            assert len(stored) == 2 * per_side

        # A notification made on worker a reaches a socket on worker b.
        stranger = await sync_to_async(make_user)()
        target = sockets[0][2]
        await asyncio.to_thread(http, a, stranger, "POST", "/api/friends/requests", {"user_id": target.user.pk})
        notification = await target.wait_for(lambda f: f["type"] == "notification")
        assert notification["notification"]["sender"]["id"] == stranger.pk


async def test_a_message_from_another_worker_brings_each_connection_one_frame_with_its_unread_count(
    workers, friends_with_chat
):
    a, b = workers
    alice, bob, chat = friends_with_chat

    async with Client(alice, a) as alice_on_a, Client(bob, b) as bob_looking, Client(bob, b) as bob_sidebar:
        await alice_on_a.join(chat.pk)
        await bob_looking.join(chat.pk)

        ack = await alice_on_a.send_message(chat.pk, "across", "x1")
        await bob_looking.wait_for(lambda f: f["type"] == "new_message")
        await bob_sidebar.wait_for(lambda f: f["type"] == "chat_update")
        await asyncio.sleep(0.3)  # and nothing more arrives

    def about_the_message(client):
        return [f for f in client.frames if f["type"] in ("message_ack", "new_message", "chat_update")]

    assert ack["unread_count"] == 0 and about_the_message(alice_on_a) == [ack]
    assert about_the_message(bob_looking) == [{"type": "new_message", "message": ack["message"], "unread_count": 1}]
    (update,) = about_the_message(bob_sidebar)
    assert (update["type"], update["last_message"]["id"], update["unread_count"]) == (
        "chat_update",
        ack["message"]["id"],
        1,
    )


async def test_tabs_opened_on_another_worker_mid_chat_get_the_next_message_live(workers, friends_with_chat):
    a, b = workers
    alice, bob, chat = friends_with_chat

    async with Client(alice, a) as alice_on_a, Client(bob, a) as bob_on_a:
        await alice_on_a.join(chat.pk)
        await bob_on_a.join(chat.pk)
        # Everyone on worker a: it learns that no other worker listens, and stops publishing.
        for n in range(3):
            ack = await alice_on_a.send_message(chat.pk, f"before {n}", f"before-{n}")
            await bob_on_a.wait_for(lambda f, i=ack["message"]["id"]: f.get("message", {}).get("id") == i)

        async with Client(bob, b) as bob_looking, Client(bob, b) as bob_sidebar:
            await bob_looking.join(chat.pk)
            sent = (await alice_on_a.send_message(chat.pk, "after", "after"))["message"]["id"]

            await bob_looking.wait_for(lambda f: f["type"] == "new_message" and f["message"]["id"] == sent)
            await bob_sidebar.wait_for(
                lambda f: f["type"] == "chat_update" and (f["last_message"] or {}).get("id") == sent
            )


async def test_a_worker_dies_mid_chat_and_nothing_acknowledged_is_lost(workers, friends_with_chat):
    a, b = workers
    alice, bob, chat = friends_with_chat

    async with Client(alice, a) as alice_on_a:
        await alice_on_a.join(chat.pk)
        bob_on_b = await Client(bob, b).__aenter__()
        await bob_on_b.join(chat.pk)
        await alice_on_a.wait_for(lambda f: f == {"type": "user_online", "user_id": bob.pk})

        acked = [(await alice_on_a.send_message(chat.pk, f"m{n}", f"m{n}"))["message"]["id"] for n in range(5)]
        await bob_on_b.wait_for(lambda f: f["type"] == "new_message" and f["message"]["id"] == acked[-1])
        seen_by_bob = bob_on_b.new_message_ids(chat.pk)

        b.kill()  # no close frames, no goodbye to presence
        started = time.monotonic()
        for n in range(5, 10):
            acked.append((await alice_on_a.send_message(chat.pk, f"m{n}", f"m{n}"))["message"]["id"])

        # The dead worker's user goes offline, told by the survivor's sweep.
        await alice_on_a.wait_for(lambda f: f["type"] == "user_offline" and f["user_id"] == bob.pk, timeout=60)
        assert time.monotonic() - started < 60

        # Bob reconnects to the survivor and catches up from his last message.
        async with Client(bob, a) as bob_on_a:
            missed = await asyncio.to_thread(
                http, a, bob, "GET", f"/api/chats/{chat.pk}/messages?after={seen_by_bob[-1]}&limit=100"
            )
            caught_up = seen_by_bob + [m["id"] for m in missed["results"]]
            assert caught_up == acked  # no gap, no duplicate, in order
            assert bob_on_a.frames[0]["type"] == "online_friends"
        bob_on_b.reader.cancel()

    stored = await sync_to_async(message_store().page_before)(chat.pk, before=None, limit=100)
    assert [m.id for m in reversed(stored)] == acked
