"""The chat pages: home, a chat, older messages, sending without a socket."""

import uuid

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import connection
from django.test.utils import CaptureQueriesContext

from conftest import image_bytes
from messaging import services
from messaging.store import message_store


@pytest.fixture
def alice_client(client, friends_with_chat):
    client.force_login(friends_with_chat[0])
    return client


def say(sender, chat, text):
    return services.send_message(sender=sender, chat_id=chat.pk, text=text, client_id=uuid.uuid4().hex).message


def test_home_lists_friends_with_their_last_message_and_unread_badge(alice_client, friends_with_chat):
    alice, bob, chat = friends_with_chat
    say(bob, chat, "first")
    say(bob, chat, "see <b>this</b>")

    page = alice_client.get("/").content.decode()

    assert f'id="chat-row-{chat.pk}"' in page
    assert "bob" in page
    assert "see &lt;b&gt;this&lt;/b&gt;" in page
    assert 'class="unread-badge" aria-label="2 unread">2<' in page
    assert "Pick a chat" in page
    assert 'ws-connect="/ws/?format=html"' in page


def test_home_shows_a_chats_last_line_as_yours_when_you_wrote_it(alice_client, friends_with_chat):
    alice, bob, chat = friends_with_chat
    say(alice, chat, "my last word")

    page = alice_client.get("/").content.decode()

    assert "You: my last word" in page  # as the socket draws the row


def test_home_without_friends_invites_to_find_some(client, user):
    client.force_login(user)

    page = client.get("/").content.decode()

    assert "No friends yet" in page


def test_a_chat_page_shows_its_history_oldest_first_and_the_composer(alice_client, friends_with_chat):
    alice, bob, chat = friends_with_chat
    say(alice, chat, "one")
    say(bob, chat, "two <script>alert(1)</script>\nsecond line")

    page = alice_client.get(f"/chats/{chat.pk}/").content.decode()
    history = page.split(f'id="messages-{chat.pk}"', 1)[1]

    assert history.index(">one<") < history.index("two &lt;script&gt;")
    assert "<script>alert(1)</script>" not in page
    assert "second line" in page and "<br>" in page
    assert 'id="composer"' in page
    assert 'class="bubble mine' in page and 'class="bubble theirs' in page


def test_an_htmx_request_for_a_chat_gets_only_the_pane(alice_client, friends_with_chat):
    chat = friends_with_chat[2]

    response = alice_client.get(f"/chats/{chat.pk}/", HTTP_HX_REQUEST="true", HTTP_HX_TARGET="chat-pane")

    body = response.content.decode()
    # The pane, and the page's title for htmx to take (it names the friend, as the whole page would).
    title, pane = body.split("\n", 1)
    assert title == f"<title>{friends_with_chat[1].username} · chat-realtime</title>"
    assert pane.lstrip().startswith('<section id="chat-pane"')
    assert "<html" not in body


def test_someone_elses_chat_is_404(client, make_user, friends_with_chat):
    client.force_login(make_user())

    assert client.get(f"/chats/{friends_with_chat[2].pk}/").status_code == 404
    assert client.get(f"/chats/{friends_with_chat[2].pk}/messages/").status_code == 404
    assert client.post(f"/chats/{friends_with_chat[2].pk}/send", {"text": "hi"}).status_code == 404


def test_a_long_chat_loads_older_messages_as_you_scroll(alice_client, friends_with_chat, unlimited_messages):
    alice, bob, chat = friends_with_chat
    ids = [say(bob, chat, f"m{n}").id for n in range(45)]

    page = alice_client.get(f"/chats/{chat.pk}/").content.decode()
    older = alice_client.get(f"/chats/{chat.pk}/messages/?before={ids[15]}").content.decode()

    assert f'id="msg-{ids[-1]}"' in page and f'id="msg-{ids[14]}"' not in page
    assert f"/chats/{chat.pk}/messages/?before={ids[15]}" in page  # the sentinel
    assert f'id="msg-{ids[14]}"' in older and f'id="msg-{ids[0]}"' in older
    assert older.index(f'id="msg-{ids[0]}"') < older.index(f'id="msg-{ids[14]}"')
    assert "load-older" not in older


def test_catching_up_after_a_reconnect_returns_what_came_after(alice_client, friends_with_chat):
    alice, bob, chat = friends_with_chat
    seen = say(bob, chat, "seen")
    missed = say(bob, chat, "missed")

    body = alice_client.get(f"/chats/{chat.pk}/messages/?after={seen.id}").content.decode()

    assert f'id="msg-{missed.id}"' in body and f'id="msg-{seen.id}"' not in body


def test_a_malformed_cursor_is_a_400(alice_client, friends_with_chat):
    assert alice_client.get(f"/chats/{friends_with_chat[2].pk}/messages/?before=nope").status_code == 400


def test_sending_without_a_socket_stores_the_message_and_returns_to_the_chat(alice_client, friends_with_chat):
    chat = friends_with_chat[2]

    response = alice_client.post(f"/chats/{chat.pk}/send", {"text": "plain form"})

    assert response.status_code == 302
    assert message_store().latest(chat.pk).text == "plain form"


def test_an_htmx_send_answers_with_the_stored_bubble(alice_client, friends_with_chat, settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path
    chat = friends_with_chat[2]
    image = SimpleUploadedFile("pic.png", image_bytes("PNG"), content_type="image/png")

    response = alice_client.post(
        f"/chats/{chat.pk}/send", {"text": "look", "client_id": "abc123", "image": image}, HTTP_HX_REQUEST="true"
    )

    assert response.status_code == 201
    body = response.content.decode()
    stored = message_store().latest(chat.pk)
    assert f'id="msg-{stored.id}"' in body and "bubble mine" in body and "<img" in body


def test_a_refused_htmx_send_answers_with_the_reason(alice_client, friends_with_chat):
    chat = friends_with_chat[2]

    response = alice_client.post(f"/chats/{chat.pk}/send", {"text": "   ", "client_id": "abc"}, HTTP_HX_REQUEST="true")

    assert response.status_code == 400
    assert "Not sent: Some fields are invalid." in response.content.decode()
    assert message_store().latest(chat.pk) is None


def test_an_ex_friends_chat_is_read_only(alice_client, friends_with_chat):
    from friends import services as friends_services

    alice, bob, chat = friends_with_chat
    friends_services.unfriend(user=alice, friend_id=bob.pk)

    page = alice_client.get(f"/chats/{chat.pk}/").content.decode()

    assert 'id="composer"' not in page
    assert "read-only" in page


def test_the_home_page_costs_the_same_queries_with_two_or_twelve_friends(client, user, make_user, befriend):
    def queries_for_home():
        client.force_login(user)
        client.get("/")  # warm the friend cache as a real visitor would find it
        with CaptureQueriesContext(connection) as captured:
            assert client.get("/").status_code == 200
        return len(captured)

    for _ in range(2):
        chat = befriend(user, make_user())
        say(user, chat, "hi")
    with_two = queries_for_home()
    for _ in range(10):
        chat = befriend(user, make_user())
        say(user, chat, "hi")
    with_twelve = queries_for_home()

    assert with_two == with_twelve


def test_the_home_page_costs_the_same_queries_when_the_friend_cache_is_cold(client, user, make_user, befriend):
    from chat_realtime import shared_redis
    from friends.cache import friends_info_key

    for _ in range(3):
        befriend(user, make_user())
    client.force_login(user)

    def cold():
        shared_redis.connection().delete(friends_info_key(user.pk))
        with CaptureQueriesContext(connection) as captured:
            client.get("/")
        return len(captured)

    first = cold()
    for _ in range(5):
        befriend(user, make_user())
    assert cold() == first


def test_an_htmx_request_for_someone_elses_chat_gets_a_pane_saying_so(client, make_user, friends_with_chat):
    client.force_login(make_user())

    response = client.get(f"/chats/{friends_with_chat[2].pk}/", HTTP_HX_REQUEST="true", HTTP_HX_TARGET="chat-pane")

    body = response.content.decode()
    assert response.status_code == 404
    assert body.lstrip().startswith('<section id="chat-pane"') and "not yours" in body


def test_a_bubble_and_its_row_show_the_time_in_the_sites_time_zone_and_give_it_whole_for_the_script(settings):
    from datetime import UTC, datetime

    from django.template import Context, Template

    from messaging.browser import bubble

    settings.TIME_ZONE = "Asia/Kolkata"  # UTC+05:30: the hours and the minutes move
    message = {
        "id": "7",
        "chat_id": 1,
        "sender_id": 2,
        "text": "hi",
        "image_url": None,
        "created_at": "2026-11-30T23:50:00.250000Z",
        "client_id": "c7",
        "deleted": False,
    }

    shown = bubble(message, viewer_id=2)

    assert shown["created_at"] == datetime(2026, 11, 30, 23, 50, 0, 250000, tzinfo=UTC)
    assert (shown["time_iso"], shown["time_shown"]) == ("2026-12-01T05:20:00.250000+05:30", "05:20")
    # As Django's date filters wrote them; a time without a zone as it is, one that is not a time as nothing.
    for at in (shown["created_at"], datetime(2026, 11, 30, 23, 50)):
        filters = Template("{{ at|date:'c' }} {{ at|time:'H:i' }}").render(Context({"at": at}))
        written = bubble({**message, "created_at": at}, viewer_id=2)
        assert filters == f"{written['time_iso']} {written['time_shown']}"
    unreadable = bubble({**message, "created_at": "not a time"}, viewer_id=2)
    assert (unreadable["time_iso"], unreadable["time_shown"]) == ("", "")
