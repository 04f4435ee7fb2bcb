"""Who may touch what: for every endpoint and frame that takes an id, an outsider gets the same
answer whether the thing exists or not, and nothing changes."""

import uuid

import pytest
from asgiref.sync import sync_to_async
from rest_framework.test import APIClient

from chat_realtime.tests.sockets import ask, open_socket
from friends.models import Notification
from messaging import services
from messaging.store import message_store

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def setting(friends_with_chat, make_user):
    """alice and bob's chat with a message, bob's notification, and mallory who is in none of it."""
    alice, bob, chat = friends_with_chat
    message = services.send_message(sender=alice, chat_id=chat.pk, text="private", client_id="p1").message
    notification = Notification.objects.filter(receiver=alice).first() or Notification.objects.create(
        receiver=alice, sender=bob, type="friend_request_accepted", content="x"
    )
    mallory = make_user(username="mallory")
    api = APIClient()
    api.force_authenticate(mallory)
    return {"chat": chat, "message": message, "notification": notification, "mallory": mallory, "api": api}


HTTP_CASES = [
    ("get", "/api/chats/{chat}/messages", None),
    ("post", "/api/chats/{chat}/messages", {"text": "hi", "client_id": "m1"}),
    ("post", "/api/chats/{chat}/read", {"message_id": "{message}"}),
    ("post", "/api/notifications/{notification}/read", None),
    ("delete", "/api/notifications/{notification}", None),
    ("get", "/chats/{chat}/", None),
    ("get", "/chats/{chat}/messages/", None),
    ("post", "/chats/{chat}/send", {"text": "hi"}),
    ("post", "/notifications/{notification}/read", None),
    ("post", "/notifications/{notification}/delete", None),
]


def _fill(template, ids):
    return template.format(**ids) if isinstance(template, str) else template


@pytest.mark.parametrize(("method", "path", "body"), HTTP_CASES)
def test_an_outsider_gets_the_same_404_for_someone_elses_thing_as_for_nothing(setting, client, method, path, body):
    real = {"chat": setting["chat"].pk, "message": setting["message"].id, "notification": setting["notification"].pk}
    missing = {"chat": 987654, "message": "987654", "notification": 987654}
    client.force_login(setting["mallory"])

    def call(ids):
        data = {k: _fill(v, ids) for k, v in body.items()} if body else None
        if path.startswith("/api/"):
            response = getattr(setting["api"], method)(_fill(path, ids), data, format="json")
        else:
            response = getattr(client, method)(_fill(path, ids), data or {})
        return response.status_code, response.content if path.startswith("/api/") else b""

    assert call(real) == call(missing)
    assert call(real)[0] == 404
    assert message_store().count_after(setting["chat"].pk, after=None) == 1
    setting["notification"].refresh_from_db()
    assert not setting["notification"].is_read


@pytest.mark.parametrize(
    "frame",
    [
        {"type": "join_chat", "chat_id": "{chat}"},
        {"type": "send_message", "chat_id": "{chat}", "text": "hi", "client_id": "w1"},
        {"type": "typing", "chat_id": "{chat}"},
        {"type": "mark_read", "chat_id": "{chat}", "message_id": "{message}"},
    ],
)
async def test_an_outsiders_frames_about_someone_elses_chat_look_like_frames_about_nothing(setting, frame):
    socket = await open_socket(setting["mallory"])

    async def send(chat_id, message_id):
        filled = {k: (chat_id if v == "{chat}" else message_id if v == "{message}" else v) for k, v in frame.items()}
        return await ask(socket, filled)

    real = await send(setting["chat"].pk, setting["message"].id)
    missing = await send(987654, "987654")

    assert real == missing
    assert real["code"] == "not_found"
    assert await sync_to_async(message_store().count_after)(setting["chat"].pk, after=None) == 1
    await socket.disconnect()


def test_a_deactivated_users_unexpired_access_token_is_refused(user):
    from rest_framework_simplejwt.tokens import AccessToken

    token = str(AccessToken.for_user(user))
    user.is_active = False
    user.save()
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")

    assert api.get("/api/me").status_code == 401


def test_the_unexpired_access_token_of_a_deleted_account_is_refused(user):
    from rest_framework_simplejwt.tokens import AccessToken

    token = str(AccessToken.for_user(user))
    user.delete()
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")

    response = api.get("/api/me")

    assert response.status_code == 401
    assert response.json()["error"]["code"] == "token_not_valid"


def test_a_validly_signed_token_naming_no_user_id_is_refused(user):
    from rest_framework_simplejwt.tokens import AccessToken

    token = AccessToken.for_user(user)
    token["user_id"] = f"{user.pk}abc"  # signed by us, but names nobody by id
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")

    response = api.get("/api/me")

    assert response.status_code == 401
    assert response.json()["error"]["code"] == "token_not_valid"


def test_a_validly_signed_token_naming_an_infinite_user_id_is_refused(user):
    from rest_framework_simplejwt.tokens import AccessToken

    token = AccessToken.for_user(user)
    token["user_id"] = float("inf")  # JSON's 1e400 reads as infinity
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")

    response = api.get("/api/me")

    assert response.status_code == 401
    assert response.json()["error"]["code"] == "token_not_valid"


@pytest.mark.parametrize("user_id", [2**64, 0, -5])
def test_a_validly_signed_token_naming_an_id_no_account_can_have_is_refused(user, user_id):
    from rest_framework_simplejwt.tokens import AccessToken

    token = AccessToken.for_user(user)
    token["user_id"] = user_id
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")

    response = api.get("/api/me")

    assert response.status_code == 401
    assert response.json()["error"]["code"] == "token_not_valid"


def test_tokens_naming_people_by_another_field_still_authenticate(user, monkeypatch):
    from rest_framework_simplejwt.settings import api_settings
    from rest_framework_simplejwt.tokens import AccessToken

    # simplejwt reads its settings once; every module shares this one object.
    monkeypatch.setattr(api_settings, "USER_ID_FIELD", "username")
    token = AccessToken.for_user(user)
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")

    assert token["user_id"] == user.username
    assert api.get("/api/me").json()["username"] == user.username


def test_a_token_signed_with_another_algorithm_is_refused(user):
    import jwt
    from rest_framework_simplejwt.tokens import AccessToken

    payload = dict(AccessToken.for_user(user).payload)
    forged = jwt.encode(payload, "x" * 64, algorithm="HS512")
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {forged}")

    assert api.get("/api/me").status_code == 401


def test_hostile_names_and_messages_are_inert_on_every_page_and_fragment(client, make_user, befriend):
    evil = "<img src=x onerror=alert(1)>"
    alice = make_user(username="alice.x")
    bob = make_user(username="bob_x")
    chat = befriend(alice, bob)
    services.send_message(
        sender=bob, chat_id=chat.pk, text=evil + "<script>alert(2)</script>", client_id=uuid.uuid4().hex
    )
    from friends import services as friends_services

    carol = make_user(username="carol_x")
    friends_services.send_friend_request(sender=carol, receiver_id=alice.pk)
    client.force_login(alice)

    pages = [
        client.get("/").content.decode(),
        client.get(f"/chats/{chat.pk}/").content.decode(),
        client.get(f"/chats/{chat.pk}/messages/?after=1").content.decode(),
        client.get("/notifications/").content.decode(),
        client.get("/friends/?q=" + evil).content.decode(),
    ]
    from asgiref.sync import async_to_sync

    from chat_realtime.browser_frames import render_for_browser
    from chat_realtime.browser_view import BrowserView
    from messaging.events import new_message_frame

    latest = message_store().latest(chat.pk)
    pages.append(async_to_sync(render_for_browser)(new_message_frame(latest), BrowserView(alice)))

    for html in pages:
        assert "<img src=x" not in html
        assert "<script>alert" not in html
