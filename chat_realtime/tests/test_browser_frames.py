"""A browser's socket (`?format=html`) gets the same events as HTML fragments for htmx to swap in."""

import pytest
from asgiref.sync import async_to_sync, sync_to_async
from channels.testing import WebsocketCommunicator
from rest_framework_simplejwt.tokens import AccessToken

from chat_realtime.asgi import application
from chat_realtime.tests.sockets import ask
from friends import services as friends_services

pytestmark = pytest.mark.django_db(transaction=True)


async def browser_socket(user):
    socket = WebsocketCommunicator(application, f"/ws/?format=html&token={AccessToken.for_user(user)}")
    connected, _ = await socket.connect()
    assert connected
    return socket


async def api_socket(user):
    socket = WebsocketCommunicator(application, f"/ws/?token={AccessToken.for_user(user)}")
    connected, _ = await socket.connect()
    assert connected
    return socket


async def page_in_chat(user, chat):
    """A browser socket that joined the chat, its first fragments read."""
    page = await browser_socket(user)
    await page.send_json_to({"type": "join_chat", "chat_id": chat.pk})
    await received(page)
    return page


async def received(socket, quiet=0.3) -> str:
    html = []
    while not await socket.receive_nothing(timeout=quiet):
        html.append(await socket.receive_from())
    return "".join(html)


async def test_a_new_message_arrives_as_the_bubble_the_page_renders(friends_with_chat):
    alice, bob, chat = friends_with_chat
    bob_page = await page_in_chat(bob, chat)
    alice_api = await api_socket(alice)

    await alice_api.send_json_to(
        {"type": "send_message", "chat_id": chat.pk, "text": "<script>alert(1)</script>", "client_id": "c1"}
    )
    html = await received(bob_page)

    assert f'hx-swap-oob="beforeend:#messages-{chat.pk}"' in html
    assert "bubble theirs" in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html and "<script>" not in html
    # The sidebar row is redrawn once and moved to the top, with the unread badge the frame carried.
    assert html.count(f'hx-swap-oob="delete:#chat-row-{chat.pk}"') == 1
    assert html.count('hx-swap-oob="afterbegin:#chat-list"') == 1
    assert 'aria-label="1 unread"' in html
    await bob_page.disconnect()
    await alice_api.disconnect()


async def test_the_senders_page_swaps_its_pending_bubble_for_the_stored_one(friends_with_chat):
    alice, bob, chat = friends_with_chat
    alice_page = await page_in_chat(alice, chat)

    await alice_page.send_json_to({"type": "send_message", "chat_id": chat.pk, "text": "hi", "client_id": "c42"})
    html = await received(alice_page)

    assert 'hx-swap-oob="outerHTML:#pending-c42"' in html
    assert "bubble mine" in html
    # Its sidebar row moves to the top with the new last line, once, with no badge.
    assert html.count(f'hx-swap-oob="delete:#chat-row-{chat.pk}"') == 1
    assert "You: hi" in html and "unread-badge" not in html

    # A retry of a message already stored swaps its bubble, and leaves the sidebar alone.
    await alice_page.send_json_to({"type": "send_message", "chat_id": chat.pk, "text": "hi", "client_id": "c42"})
    again = await received(alice_page)
    assert 'hx-swap-oob="outerHTML:#pending-c42"' in again and "chat-row" not in again
    await alice_page.disconnect()


async def test_a_message_sent_with_a_client_id_the_page_never_makes_is_shown_as_it_came(friends_with_chat):
    alice, bob, chat = friends_with_chat
    alice_page = await page_in_chat(alice, chat)

    await alice_page.send_json_to({"type": "send_message", "chat_id": chat.pk, "text": "hi", "client_id": "a.b:c"})
    html = await received(alice_page)

    assert f'hx-swap-oob="beforeend:#messages-{chat.pk}"' in html and "bubble mine" in html
    assert "pending-a.b:c" not in html
    assert html.count(f'hx-swap-oob="delete:#chat-row-{chat.pk}"') == 1
    await alice_page.disconnect()


async def test_a_refused_message_marks_its_pending_bubble_failed_with_a_retry(friends_with_chat):
    alice, bob, chat = friends_with_chat
    alice_page = await browser_socket(alice)

    await alice_page.send_json_to({"type": "send_message", "chat_id": chat.pk, "text": "   ", "client_id": "c7"})
    html = await received(alice_page)

    assert 'id="pending-c7"' in html and "failed" in html and "Retry" in html
    await alice_page.disconnect()


async def test_presence_changes_redraw_every_dot_of_that_person(friends_with_chat):
    alice, bob, chat = friends_with_chat
    alice_page = await browser_socket(alice)
    await received(alice_page)

    bob_api = await api_socket(bob)
    came = await received(alice_page)
    await bob_api.disconnect()
    went = await received(alice_page)

    assert f'hx-swap-oob="outerHTML:.presence-{bob.pk}"' in came and "presence-dot" in came and " online" in came
    assert f'hx-swap-oob="outerHTML:.status-{bob.pk}"' in went and "last seen" in went
    await alice_page.disconnect()


async def test_a_friend_request_lights_the_bell_and_offers_accept(user, make_user):
    carol = await sync_to_async(make_user)()
    alice_page = await browser_socket(user)
    await received(alice_page)

    await sync_to_async(friends_services.send_friend_request)(sender=carol, receiver_id=user.pk)
    html = await received(alice_page)

    assert 'id="bell-badge"' in html and ">1</span>" in html
    assert 'hx-swap-oob="afterbegin:.notification-items"' in html
    assert "Accept" in html
    await alice_page.disconnect()


async def test_api_clients_still_get_json(friends_with_chat):
    alice = friends_with_chat[0]
    socket = WebsocketCommunicator(application, f"/ws/?token={AccessToken.for_user(alice)}")
    await socket.connect()

    assert (await socket.receive_json_from())["type"] == "online_friends"
    await socket.disconnect()


def chat_update(chat, sender, text="hey"):
    from messaging.events import chat_update_frame, last_message_data
    from messaging.store import message_store

    message = message_store().add(chat_id=chat.pk, sender_id=sender.pk, text=text, image_url="", client_id=text)[0]
    return chat_update_frame(
        chat_id=chat.pk, sender_id=sender.pk, last_message=last_message_data(message), unread_count=1
    )


def test_a_socket_looks_up_a_chats_person_once_and_again_after_a_friendship_changes(
    friends_with_chat, django_assert_num_queries
):
    from chat_realtime.browser_frames import render_for_browser
    from chat_realtime.browser_view import BrowserView

    alice, bob, chat = friends_with_chat
    view = BrowserView(alice)
    one, two = chat_update(chat, bob, "one"), chat_update(chat, bob, "two")
    with django_assert_num_queries(2):  # is the chat theirs, and who else is in it
        first = async_to_sync(render_for_browser)(one, view)
    with django_assert_num_queries(0):
        second = async_to_sync(render_for_browser)(two, view)
    async_to_sync(render_for_browser)({"type": "friendship", "user_id": bob.pk, "state": "none"}, view)

    assert f'data-friend-id="{bob.pk}"' in first and "one" in first
    assert bob.username in second and "two" in second
    assert view.peers == {}


def test_a_chats_person_is_looked_up_again_after_a_while_so_a_new_name_shows(
    friends_with_chat, monkeypatch, django_assert_num_queries
):
    from chat_realtime import browser_view
    from chat_realtime.browser_frames import render_for_browser
    from chat_realtime.browser_view import BrowserView

    alice, bob, chat = friends_with_chat
    view = BrowserView(alice)
    before, after = chat_update(chat, bob, "before"), chat_update(chat, bob, "after")
    async_to_sync(render_for_browser)(before, view)
    type(bob).objects.filter(pk=bob.pk).update(username="bob_renamed")
    monkeypatch.setattr(browser_view, "PEER_SECONDS", 0)  # what it looked up is already old

    with django_assert_num_queries(2):
        html = async_to_sync(render_for_browser)(after, view)

    assert "bob_renamed" in html


def test_a_chat_update_for_a_chat_the_reader_is_not_in_draws_nothing_and_is_asked_again(
    friends_with_chat, make_user, django_assert_num_queries
):
    from chat_realtime.browser_frames import render_for_browser
    from chat_realtime.browser_view import BrowserView

    alice, bob, chat = friends_with_chat
    view = BrowserView(make_user())
    once, again = chat_update(chat, bob, "once"), chat_update(chat, bob, "again")

    assert async_to_sync(render_for_browser)(once, view) == ""
    with django_assert_num_queries(1):
        assert async_to_sync(render_for_browser)(again, view) == ""


async def test_a_chats_row_shows_its_person_online_as_the_pages_dots_do(friends_with_chat):
    alice, bob, chat = friends_with_chat
    alice_page = await browser_socket(alice)
    await received(alice_page)
    bob_api = await api_socket(bob)
    await received(alice_page)  # bob's dots light up

    await bob_api.send_json_to({"type": "send_message", "chat_id": chat.pk, "text": "here", "client_id": "o1"})
    while_online = await received(alice_page)
    await bob_api.disconnect()
    await received(alice_page)  # bob's dots go out
    await sync_to_async(send_by_api)(bob, chat, "gone")
    while_offline = await received(alice_page)

    dot = f"presence-dot presence-{bob.pk}"
    assert f'{dot} online"' in while_online and "here" in while_online
    # The row is at the top now: only its text is redrawn, and its dot stays as bob's going out left it.
    assert dot not in while_offline and "gone" in while_offline
    await alice_page.disconnect()


def send_by_api(sender, chat, text):
    from messaging import services

    services.send_message(sender=sender, chat_id=chat.pk, text=text, client_id=text)


async def test_a_message_renders_on_the_event_loop_once_its_socket_knows_the_chat(friends_with_chat):
    from chat_realtime.browser_frames import render_for_browser
    from chat_realtime.browser_view import BrowserView
    from messaging.events import new_message_frame
    from messaging.store import message_store

    alice, bob, chat = friends_with_chat
    message, _ = await sync_to_async(message_store().add)(
        chat_id=chat.pk, sender_id=bob.pk, text="no hop", image_url="", client_id="h1"
    )
    view = BrowserView(alice, online={bob.pk})
    view.remember_peer(chat.pk, bob)

    # On the loop, any query would raise SynchronousOnlyOperation.
    html = await render_for_browser({**new_message_frame(message), "unread_count": 2}, view)

    assert "no hop" in html and 'aria-label="2 unread"' in html
    assert f"presence-dot presence-{bob.pk} online" in html


async def test_typing_names_the_typist_whether_or_not_the_socket_knows_the_chat(friends_with_chat):
    from chat_realtime.browser_frames import render_for_browser
    from chat_realtime.browser_view import BrowserView

    alice, bob, chat = friends_with_chat
    frame = {"type": "typing", "chat_id": chat.pk, "user_id": alice.pk}

    bobs_view = BrowserView(bob)
    bobs_view.remember_peer(chat.pk, alice)
    known = await render_for_browser(frame, bobs_view)  # on the loop: no query
    asked = await render_for_browser(frame, BrowserView(bob))
    gone = await render_for_browser({**frame, "user_id": 10**9}, BrowserView(bob))

    assert f'id="typing-{chat.pk}"' in known and f"{alice.username} is typing" in known
    assert asked == known
    assert gone == ""


async def test_a_friend_online_before_the_page_opened_shows_online_in_its_rows(friends_with_chat):
    alice, bob, chat = friends_with_chat
    bob_api = await api_socket(bob)
    alice_page = await browser_socket(alice)
    await received(alice_page)  # online_friends: bob

    await bob_api.send_json_to({"type": "send_message", "chat_id": chat.pk, "text": "hi", "client_id": "s1"})
    html = await received(alice_page)

    assert f'presence-dot presence-{bob.pk} online"' in html
    await alice_page.disconnect()
    await bob_api.disconnect()


def test_a_new_friend_who_is_online_shows_online_in_the_rows_drawn_after(user, make_user):
    from chat_realtime.browser_frames import render_for_browser
    from chat_realtime.browser_view import BrowserView
    from presence import services as presence

    alice, bob = user, make_user()
    presence.connect(user_id=bob.pk, connection_id="bobs-tab")
    friends_services.send_friend_request(sender=alice, receiver_id=bob.pk)
    _, chat, _ = friends_services.accept_friend_request(receiver=bob, requester_id=alice.pk)
    friendship = {"type": "friendship", "user_id": bob.pk, "state": "friends", "chat_id": chat.pk}
    view = BrowserView(alice)

    html = async_to_sync(render_for_browser)(friendship, view)

    assert view.online == {bob.pk}
    assert f'presence-dot presence-{bob.pk} online"' in html


def test_friends_again_get_their_chats_row_back_with_its_last_message_and_unread_count(friends_with_chat):
    from chat_realtime.browser_frames import render_for_browser
    from chat_realtime.browser_view import BrowserView
    from messaging import services as messaging_services

    alice, bob, chat = friends_with_chat
    messaging_services.send_message(sender=bob, chat_id=chat.pk, text="still there?", client_id="b1")
    friends_services.unfriend(user=bob, friend_id=alice.pk)
    friends_services.send_friend_request(sender=bob, receiver_id=alice.pk)
    friends_services.accept_friend_request(receiver=alice, requester_id=bob.pk)
    friendship = {"type": "friendship", "user_id": bob.pk, "state": "friends", "chat_id": chat.pk}

    html = async_to_sync(render_for_browser)(friendship, BrowserView(alice))

    assert f'id="chat-row-{chat.pk}"' in html
    assert "still there?" in html and 'aria-label="1 unread"' in html


def test_after_a_read_only_the_rows_badge_is_redrawn_unless_the_row_shows_another_last_message(friends_with_chat):
    from chat_realtime.browser_frames import render_for_browser
    from chat_realtime.browser_view import BrowserView

    alice, bob, chat = friends_with_chat
    view = BrowserView(alice)
    arrived = chat_update(chat, bob, "news")
    read = {**arrived, "sender_id": None, "unread_count": 0}
    removed = {**read, "last_message": {**arrived["last_message"], "preview": "message removed"}}

    row = async_to_sync(render_for_browser)(arrived, view)
    badge = async_to_sync(render_for_browser)(read, view)
    redrawn = async_to_sync(render_for_browser)(removed, view)
    unknown = async_to_sync(render_for_browser)(read, BrowserView(alice))

    assert f'id="chat-row-{chat.pk}"' in row and 'aria-label="1 unread"' in row
    assert badge.strip() == f'<span id="unread-{chat.pk}" class="unread" hx-swap-oob="true"></span>'
    assert f'id="chat-row-{chat.pk}"' in redrawn and "message removed" in redrawn
    assert f'id="chat-row-{chat.pk}"' in unknown  # a row this socket did not draw is drawn whole


def test_a_message_in_the_chat_at_the_top_redraws_its_rows_text_in_place_and_any_other_moves_its_row_up(
    friends_with_chat, make_user, befriend
):
    from chat_realtime.browser_frames import render_for_browser
    from chat_realtime.browser_view import BrowserView

    alice, bob, chat = friends_with_chat
    carol = make_user(username="carol")
    other_chat = befriend(alice, carol)
    view = BrowserView(alice)

    def moved_up(html: str, chat_id: int) -> bool:
        return f'hx-swap-oob="delete:#chat-row-{chat_id}"' in html and 'hx-swap-oob="afterbegin:#chat-list"' in html

    first = async_to_sync(render_for_browser)(chat_update(chat, bob, "first"), view)
    again = async_to_sync(render_for_browser)(chat_update(chat, bob, "again"), view)
    elsewhere = async_to_sync(render_for_browser)(chat_update(other_chat, carol, "elsewhere"), view)
    back = async_to_sync(render_for_browser)(chat_update(chat, bob, "back"), view)
    async_to_sync(render_for_browser)({"type": "friendship", "user_id": carol.pk, "state": "none"}, view)
    after_rows_changed = async_to_sync(render_for_browser)(chat_update(chat, bob, "after"), view)

    assert moved_up(first, chat.pk) and f'presence-dot presence-{bob.pk}"' in first  # offline, as the page knows
    assert not moved_up(again, chat.pk) and f'id="chat-row-{chat.pk}"' not in again
    assert f'<span id="chat-row-body-{chat.pk}" class="row-body" hx-swap-oob="true">' in again
    assert "again" in again and 'aria-label="1 unread"' in again
    assert moved_up(elsewhere, other_chat.pk)
    assert moved_up(back, chat.pk)  # the other chat's row had gone to the top
    assert moved_up(after_rows_changed, chat.pk)  # a friendship may have put a row above it


async def test_reading_a_message_redraws_the_readers_badge(friends_with_chat):
    alice, bob, chat = friends_with_chat
    bob_page = await page_in_chat(bob, chat)
    alice_api = await api_socket(alice)
    await alice_api.send_json_to({"type": "send_message", "chat_id": chat.pk, "text": "read me", "client_id": "b1"})
    arrived = await received(bob_page)
    message_id = arrived.split('data-message-id="', 1)[1].split('"', 1)[0]

    await bob_page.send_json_to({"type": "mark_read", "chat_id": chat.pk, "message_id": message_id})
    after_read = await received(bob_page)

    assert 'aria-label="1 unread"' in arrived
    assert after_read.strip() == f'<span id="unread-{chat.pk}" class="unread" hx-swap-oob="true"></span>'
    await bob_page.disconnect()
    await alice_api.disconnect()


async def test_joining_with_the_newest_message_shown_brings_the_ones_sent_after_it(friends_with_chat):
    from messaging import services as messaging_services

    alice, bob, chat = friends_with_chat
    send = sync_to_async(messaging_services.send_message)
    shown = await send(sender=bob, chat_id=chat.pk, text="on the page", client_id="b1")
    # Sent while alice's page was being drawn, before its socket joined: no event brings these.
    for n in (2, 3):
        await send(sender=bob, chat_id=chat.pk, text=f"in between {n}", client_id=f"b{n}")
    page = await browser_socket(alice)
    await received(page)

    await page.send_json_to({"type": "join_chat", "chat_id": chat.pk, "after": shown.message.id})
    html = await received(page)

    assert f'hx-swap-oob="beforeend:#messages-{chat.pk}"' in html
    assert "on the page" not in html
    assert html.index("in between 2") < html.index("in between 3")
    await page.disconnect()


async def test_joining_an_empty_pane_brings_the_newest_messages_and_a_bad_after_is_refused(friends_with_chat):
    from messaging import services as messaging_services

    alice, bob, chat = friends_with_chat
    await sync_to_async(messaging_services.send_message)(sender=bob, chat_id=chat.pk, text="first", client_id="b1")
    page, api = await browser_socket(alice), await api_socket(alice)
    await received(page)
    await received(api)

    await page.send_json_to({"type": "join_chat", "chat_id": chat.pk, "after": ""})
    joined_empty = await received(page)
    await page.send_json_to({"type": "join_chat", "chat_id": chat.pk, "after": "not-an-id"})
    joined_unknown = await received(page)
    refused = await ask(api, {"type": "join_chat", "chat_id": chat.pk, "after": ["x"]})
    joined = await ask(api, {"type": "join_chat", "chat_id": chat.pk, "after": ""})

    assert "first" in joined_empty
    assert joined_unknown == ""
    assert (refused["type"], refused["code"], list(refused["fields"])) == ("error", "validation_error", ["after"])
    assert joined == {"type": "joined_chat", "chat_id": chat.pk, "after": ""}
    await page.disconnect()
    await api.disconnect()


def test_a_cancelled_request_redraws_the_receivers_bell(user, make_user):
    from chat_realtime.browser_frames import render_for_browser
    from chat_realtime.browser_view import BrowserView

    alice, bob = user, make_user()
    friends_services.send_friend_request(sender=bob, receiver_id=alice.pk)
    friends_services.cancel_friend_request(requester=bob, receiver_id=alice.pk)
    cancelled = {"type": "friendship", "user_id": bob.pk, "state": "none"}

    html = async_to_sync(render_for_browser)(cancelled, BrowserView(alice))

    assert 'id="bell-badge"' in html and 'hx-swap-oob="true"' in html
    assert ">1<" not in html  # nothing unread left
