"""Two people chatting over real websockets (Channels' WebsocketCommunicator)."""

import pytest
from asgiref.sync import sync_to_async
from django.test import override_settings
from rest_framework.test import APIClient

from chat_realtime.tests.sockets import ask, close, of_type, open_socket
from chat_realtime.tests.sockets import drain as drain_all
from messaging.store import message_store

pytestmark = pytest.mark.django_db(transaction=True)


async def drain(socket) -> list[dict]:
    """The chat frames a socket received; presence comes and goes as the test's sockets open."""
    return [f for f in await drain_all(socket) if f["type"] not in ("user_online", "user_offline")]


async def joined(user, chat):
    socket = await open_socket(user)
    assert await ask(socket, {"type": "join_chat", "chat_id": chat.pk}) == {"type": "joined_chat", "chat_id": chat.pk}
    await drain(socket)
    return socket


async def test_a_message_is_acked_to_its_sender_and_delivered_to_everyone_in_the_chat(friends_with_chat):
    alice, bob, chat = friends_with_chat
    alice_tab, alice_other_tab, bob_tab = await joined(alice, chat), await joined(alice, chat), await joined(bob, chat)
    alice_elsewhere = await open_socket(alice)  # open, but not looking at this chat

    ack = await ask(alice_tab, {"type": "send_message", "chat_id": chat.pk, "text": "hi bob", "client_id": "c1"})

    assert (ack["type"], ack["client_id"], ack["unread_count"]) == ("message_ack", "c1", 0)
    message = ack["message"]
    assert (message["text"], message["sender_id"], message["chat_id"]) == ("hi bob", alice.pk, chat.pk)
    sender, other_tab, receiver, elsewhere = [
        await drain(s) for s in (alice_tab, alice_other_tab, bob_tab, alice_elsewhere)
    ]
    # One frame per connection, each with its own person's unread count: the sending tab has its ack,
    # every other connection in the chat gets new_message, and one not looking at the chat a chat_update.
    assert sender == []
    assert other_tab == [{"type": "new_message", "message": message, "unread_count": 0}]
    assert receiver == [{"type": "new_message", "message": message, "unread_count": 1}]
    (update,) = elsewhere
    assert update["type"] == "chat_update"
    assert (update["chat_id"], update["sender_id"], update["unread_count"]) == (chat.pk, alice.pk, 0)
    assert update["last_message"] == {**message, "preview": "hi bob"}
    await close(alice_tab, alice_other_tab, bob_tab, alice_elsewhere)


async def test_a_connection_not_looking_at_the_chat_gets_the_sidebar_update_with_its_unread_count(
    friends_with_chat,
):
    alice, bob, chat = friends_with_chat
    alice_tab = await joined(alice, chat)
    bob_sidebar = await open_socket(bob)

    ack = await ask(alice_tab, {"type": "send_message", "chat_id": chat.pk, "text": "psst", "client_id": "s1"})

    assert await drain(bob_sidebar) == [
        {
            "type": "chat_update",
            "chat_id": chat.pk,
            "sender_id": alice.pk,
            "last_message": {**ack["message"], "preview": "psst"},
            "unread_count": 1,
        }
    ]
    await close(alice_tab, bob_sidebar)


async def test_a_connection_that_sent_without_the_chat_on_screen_has_its_ack_and_then_each_update(
    friends_with_chat,
):
    alice, bob, chat = friends_with_chat
    alice_sidebar = await open_socket(alice)  # sends without looking at the chat
    bob_tab = await joined(bob, chat)

    ack = await ask(alice_sidebar, {"type": "send_message", "chat_id": chat.pk, "text": "mine", "client_id": "m2"})
    after_own = await drain(alice_sidebar)
    await ask(bob_tab, {"type": "send_message", "chat_id": chat.pk, "text": "yours", "client_id": "y2"})
    after_bobs = await drain(alice_sidebar)

    assert ack["unread_count"] == 0 and after_own == []  # the ack showed the sidebar's news of it
    assert [(u["last_message"]["text"], u["unread_count"]) for u in of_type(after_bobs, "chat_update")] == [
        ("yours", 1)
    ]
    await close(alice_sidebar, bob_tab)


async def test_unread_counts_grow_with_each_message_and_drop_when_the_chat_is_opened(friends_with_chat):
    alice, bob, chat = friends_with_chat
    alice_tab = await joined(alice, chat)
    bob_sidebar = await open_socket(bob)

    for n in range(3):
        await ask(alice_tab, {"type": "send_message", "chat_id": chat.pk, "text": f"m{n}", "client_id": f"c{n}"})
    counts = [u["unread_count"] for u in of_type(await drain(bob_sidebar), "chat_update")]
    await ask(bob_sidebar, {"type": "join_chat", "chat_id": chat.pk})
    after_join = of_type(await drain(bob_sidebar), "chat_update")
    read_receipts = of_type(await drain(alice_tab), "read")

    assert counts == [1, 2, 3]
    assert [u["unread_count"] for u in after_join] == [0]
    assert [(r["user_id"], r["chat_id"]) for r in read_receipts] == [(bob.pk, chat.pk)]
    await close(alice_tab, bob_sidebar)


async def test_mark_read_tells_the_others_and_updates_the_readers_other_tabs(friends_with_chat):
    alice, bob, chat = friends_with_chat
    alice_tab, bob_tab = await joined(alice, chat), await joined(bob, chat)
    bob_phone = await open_socket(bob)
    ack = await ask(alice_tab, {"type": "send_message", "chat_id": chat.pk, "text": "read me", "client_id": "r1"})
    await drain(bob_tab), await drain(bob_phone), await drain(alice_tab)

    await bob_tab.send_json_to({"type": "mark_read", "chat_id": chat.pk, "message_id": ack["message"]["id"]})

    assert of_type(await drain(alice_tab), "read") == [
        {"type": "read", "chat_id": chat.pk, "user_id": bob.pk, "message_id": ack["message"]["id"]}
    ]
    assert [u["unread_count"] for u in of_type(await drain(bob_phone), "chat_update")] == [0]
    assert of_type(await drain(bob_tab), "read") == []
    await close(alice_tab, bob_tab, bob_phone)


async def test_typing_reaches_the_others_in_the_chat_and_is_throttled(friends_with_chat):
    alice, bob, chat = friends_with_chat
    alice_tab, bob_tab = await joined(alice, chat), await joined(bob, chat)

    for _ in range(5):
        await alice_tab.send_json_to({"type": "typing", "chat_id": chat.pk})

    assert await drain(bob_tab) == [{"type": "typing", "chat_id": chat.pk, "user_id": alice.pk}]
    assert await drain(alice_tab) == []
    await close(alice_tab, bob_tab)


async def test_sending_the_same_client_id_twice_stores_once_and_acks_both_times(friends_with_chat):
    alice, bob, chat = friends_with_chat
    alice_tab, bob_tab = await joined(alice, chat), await joined(bob, chat)
    frame = {"type": "send_message", "chat_id": chat.pk, "text": "once", "client_id": "dup"}

    first, second = await ask(alice_tab, frame), await ask(alice_tab, frame)

    assert first["type"] == second["type"] == "message_ack"
    assert first["message"] == second["message"]
    # The first ack moved the sidebar; the resend's changes nothing there, so it carries no count.
    assert first["unread_count"] == 0 and "unread_count" not in second
    assert len(of_type(await drain(bob_tab), "new_message")) == 1
    assert await sync_to_async(message_store().count_after)(chat.pk, after=None) == 1
    await close(alice_tab, bob_tab)


async def test_outsiders_can_neither_join_nor_send_nor_mark_read(friends_with_chat, make_user):
    alice, bob, chat = friends_with_chat
    outsider = await open_socket(await sync_to_async(make_user)())
    bob_tab = await joined(bob, chat)

    refusals = [
        await ask(outsider, {"type": "join_chat", "chat_id": chat.pk}),
        await ask(outsider, {"type": "send_message", "chat_id": chat.pk, "text": "hi", "client_id": "x1"}),
        await ask(outsider, {"type": "mark_read", "chat_id": chat.pk, "message_id": "1"}),
        await ask(outsider, {"type": "join_chat", "chat_id": 999999}),
        await ask(outsider, {"type": "typing", "chat_id": chat.pk}),
    ]

    assert [(r["type"], r["code"]) for r in refusals] == [("error", "not_found")] * 5
    assert refusals[1]["client_id"] == "x1"
    assert await drain(bob_tab) == []
    assert await ask(outsider, {"type": "ping"}) == {"type": "pong"}
    await close(outsider, bob_tab)


@pytest.mark.parametrize(
    ("frame", "code", "field"),
    [
        ({"type": "send_message", "chat_id": "1", "text": "hi", "client_id": "v1"}, "validation_error", "chat_id"),
        ({"type": "send_message", "chat_id": True, "text": "hi", "client_id": "v1"}, "validation_error", "chat_id"),
        ({"type": "send_message", "chat_id": 10**30, "text": "hi", "client_id": "v1"}, "validation_error", "chat_id"),
        ({"type": "send_message", "chat_id": None, "text": "", "client_id": "v1"}, "validation_error", "chat_id"),
        ({"type": "send_message", "CHAT": 1, "text": "", "client_id": "v1"}, "validation_error", "chat_id"),
        ({"type": "send_message", "text": "   ", "client_id": "v1"}, "validation_error", "text"),
        ({"type": "send_message", "text": "x" * 4001, "client_id": "v1"}, "validation_error", "text"),
        ({"type": "send_message", "text": {"nested": 1}, "client_id": "v1"}, "validation_error", "text"),
        ({"type": "send_message", "text": "hi"}, "validation_error", "client_id"),
        ({"type": "send_message", "text": "hi", "client_id": 12}, "validation_error", "client_id"),
        ({"type": "mark_read", "message_id": 5}, "validation_error", "message_id"),
        ({"type": "mark_read"}, "validation_error", "message_id"),
    ],
)
async def test_bad_frames_get_an_error_with_their_client_id_and_the_connection_stays(
    friends_with_chat, frame, code, field
):
    alice, bob, chat = friends_with_chat
    frame = {"chat_id": chat.pk, **frame} if "chat_id" not in frame and "CHAT" not in frame else frame
    alice_tab, bob_tab = await joined(alice, chat), await joined(bob, chat)

    error = await ask(alice_tab, frame)

    assert (error["type"], error["code"]) == ("error", code)
    if field:
        assert field in error["fields"]
    if isinstance(frame.get("client_id"), str):
        assert error["client_id"] == frame["client_id"]
    assert await drain(bob_tab) == []
    assert await ask(alice_tab, {"type": "ping"}) == {"type": "pong"}
    await close(alice_tab, bob_tab)


async def test_after_unfriending_typing_is_refused_too(friends_with_chat):
    alice, bob, chat = friends_with_chat
    from friends import services as friends_services

    bob_tab = await joined(bob, chat)
    await sync_to_async(friends_services.unfriend)(user=bob, friend_id=alice.pk)
    alice_tab = await joined(alice, chat)

    error = await ask(alice_tab, {"type": "typing", "chat_id": chat.pk})

    assert error["code"] == "not_friends"
    assert of_type(await drain(bob_tab), "typing") == []
    await close(alice_tab, bob_tab)


async def test_after_unfriending_sends_are_refused_with_not_friends(friends_with_chat):
    alice, bob, chat = friends_with_chat
    from friends import services as friends_services

    await sync_to_async(friends_services.unfriend)(user=bob, friend_id=alice.pk)
    alice_tab = await joined(alice, chat)

    error = await ask(alice_tab, {"type": "send_message", "chat_id": chat.pk, "text": "hey?", "client_id": "u1"})

    assert (error["code"], error["client_id"]) == ("not_friends", "u1")
    await close(alice_tab)


async def test_a_resend_after_an_unfriend_is_acked_and_the_next_send_checked_again(friends_with_chat):
    alice, bob, chat = friends_with_chat
    from friends import services as friends_services

    alice_tab = await joined(alice, chat)
    sent = await ask(alice_tab, {"type": "send_message", "chat_id": chat.pk, "text": "hey", "client_id": "r1"})
    await sync_to_async(friends_services.unfriend)(user=bob, friend_id=alice.pk)
    await drain(alice_tab)  # its friendship event: the socket's permission goes

    resent = await ask(alice_tab, {"type": "send_message", "chat_id": chat.pk, "text": "hey", "client_id": "r1"})
    new = await ask(alice_tab, {"type": "send_message", "chat_id": chat.pk, "text": "still?", "client_id": "r2"})

    assert (resent["type"], resent["message"]["id"]) == ("message_ack", sent["message"]["id"])
    assert (new["type"], new["code"]) == ("error", "not_friends")
    await close(alice_tab)


async def test_flooding_over_the_websocket_is_refused_with_rate_limited(friends_with_chat):
    alice, bob, chat = friends_with_chat
    with override_settings(RATE_LIMITS={"message": (2, 60)}):
        alice_tab = await joined(alice, chat)
        answers = [
            await ask(alice_tab, {"type": "send_message", "chat_id": chat.pk, "text": "x", "client_id": f"f{n}"})
            for n in range(3)
        ]
        # The websocket and the API share one limit.
        api = APIClient()
        api.force_authenticate(alice)
        over_api = await sync_to_async(api.post)(
            f"/api/chats/{chat.pk}/messages", {"text": "x", "client_id": "f9"}, format="json"
        )

    assert [a["type"] for a in answers] == ["message_ack", "message_ack", "error"]
    assert (answers[2]["code"], answers[2]["client_id"]) == ("rate_limited", "f2")
    assert 1 <= answers[2]["retry_after"] <= 60
    assert over_api.status_code == 429
    await close(alice_tab)


async def test_when_the_store_is_down_the_sender_gets_an_error_and_nobody_gets_the_message(friends_with_chat, request):
    alice, bob, chat = friends_with_chat
    alice_tab, bob_tab = await joined(alice, chat), await joined(bob, chat)
    await sync_to_async(request.getfixturevalue)("broken_store")

    error = await ask(alice_tab, {"type": "send_message", "chat_id": chat.pk, "text": "lost?", "client_id": "s1"})

    assert (error["type"], error["code"], error["client_id"]) == ("error", "store_unavailable", "s1")
    assert await drain(bob_tab) == []
    assert await drain(alice_tab) == []
    await close(alice_tab, bob_tab)


async def test_sending_works_again_when_the_store_returns(friends_with_chat, mongo_store, monkeypatch):
    from pymongo.errors import AutoReconnect

    alice, bob, chat = friends_with_chat
    alice_tab, bob_tab = await joined(alice, chat), await joined(bob, chat)
    real_insert = mongo_store.collection.insert_many

    def down(*args, **kwargs):
        raise AutoReconnect("connection refused")

    monkeypatch.setattr(mongo_store.collection, "insert_many", down)
    refused = await ask(alice_tab, {"type": "send_message", "chat_id": chat.pk, "text": "one", "client_id": "b1"})
    monkeypatch.setattr(mongo_store.collection, "insert_many", real_insert)
    retried = await ask(alice_tab, {"type": "send_message", "chat_id": chat.pk, "text": "one", "client_id": "b1"})

    assert refused["code"] == "store_unavailable"
    assert retried["type"] == "message_ack"
    assert [f["message"]["id"] for f in of_type(await drain(bob_tab), "new_message")] == [retried["message"]["id"]]
    await close(alice_tab, bob_tab)


async def test_a_message_sent_through_the_api_is_delivered_like_a_websocket_one(friends_with_chat):
    alice, bob, chat = friends_with_chat
    bob_tab = await joined(bob, chat)
    api = APIClient()
    api.force_authenticate(alice)

    response = await sync_to_async(api.post)(
        f"/api/chats/{chat.pk}/messages", {"text": "from the api", "client_id": "a1"}, format="json"
    )

    assert await drain(bob_tab) == [{"type": "new_message", "message": response.json(), "unread_count": 1}]
    await close(bob_tab)


async def test_leaving_a_chat_stops_its_new_messages_but_not_the_sidebar(friends_with_chat):
    alice, bob, chat = friends_with_chat
    alice_tab, bob_tab = await joined(alice, chat), await joined(bob, chat)

    assert await ask(bob_tab, {"type": "leave_chat", "chat_id": chat.pk}) == {"type": "left_chat", "chat_id": chat.pk}
    await ask(alice_tab, {"type": "send_message", "chat_id": chat.pk, "text": "still there?", "client_id": "l1"})

    frames = await drain(bob_tab)
    assert of_type(frames, "new_message") == []
    assert len(of_type(frames, "chat_update")) == 1
    await close(alice_tab, bob_tab)


def test_a_join_that_cannot_read_what_the_page_missed_says_so(friends_with_chat, broken_store):
    from chat_realtime.browser_view import BrowserView
    from messaging.browser import MISSED_UNKNOWN, joined_chat_html

    alice, bob, chat = friends_with_chat

    html = joined_chat_html({"type": "joined_chat", "chat_id": chat.pk, "after": ""}, BrowserView(alice))

    assert MISSED_UNKNOWN in html and "toast" in html
