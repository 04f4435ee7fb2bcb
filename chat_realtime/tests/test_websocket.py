import json
import time
from datetime import timedelta
from types import SimpleNamespace
from unittest.mock import ANY

import jwt
import pytest
from channels.layers import get_channel_layer
from channels.testing import WebsocketCommunicator
from django.test import Client
from rest_framework_simplejwt.tokens import AccessToken

from accounts.events import user_group
from chat_realtime.asgi import application
from chat_realtime.consumers import encode_frame

pytestmark = pytest.mark.django_db(transaction=True)


def access_token(user) -> str:
    return str(AccessToken.for_user(user))


@pytest.fixture
def cookie(user) -> bytes:
    """The session cookie of alice, logged in through the browser."""
    client = Client()
    client.force_login(user)
    return f"sessionid={client.cookies['sessionid'].value}".encode()


@pytest.fixture
def stranger(make_user):
    return make_user()


async def connect(path: str = "/ws/", headers=None):
    """Open a socket; an accepted one's first frame is its greeting, consumed here."""
    communicator = WebsocketCommunicator(application, path, headers=headers or [])
    connected, code = await communicator.connect()
    if connected:
        first = await communicator.receive_output(timeout=2)
        if first["type"] == "websocket.send":
            assert json.loads(first["text"])["type"] == "online_friends"
        else:  # closed right away: put it back for the test to see
            communicator.output_queue.put_nowait(first)
    return communicator, connected, code


async def assert_closed_with(communicator, code: int) -> None:
    output = await communicator.receive_output(timeout=2)
    assert output == {"type": "websocket.close", "code": code}


async def test_an_api_client_connects_with_its_access_token_and_gets_pong(user):
    ws, connected, _ = await connect(f"/ws/?token={access_token(user)}")
    assert connected

    await ws.send_json_to({"type": "ping"})

    assert await ws.receive_json_from() == {"type": "pong"}
    await ws.disconnect()


async def test_a_browser_connects_with_its_session_cookie_from_an_allowed_origin(user, cookie):
    ws, connected, _ = await connect(headers=[(b"origin", b"http://testserver"), (b"cookie", cookie)])
    assert connected

    await ws.send_json_to({"type": "ping"})

    assert await ws.receive_json_from() == {"type": "pong"}
    await ws.disconnect()


async def test_a_session_cookie_from_before_a_password_change_is_closed_with_4401(user, cookie):
    user.set_password("a new and different passphrase")
    await user.asave()

    ws, connected, _ = await connect(headers=[(b"origin", b"http://testserver"), (b"cookie", cookie)])

    assert connected
    await assert_closed_with(ws, 4401)


async def test_an_unknown_session_cookie_is_closed_with_4401(db):
    ws, connected, _ = await connect(headers=[(b"origin", b"http://testserver"), (b"cookie", b"sessionid=forged")])

    assert connected
    await assert_closed_with(ws, 4401)


async def test_a_connection_without_credentials_is_closed_with_4401(db):
    ws, connected, _ = await connect()

    assert connected
    await assert_closed_with(ws, 4401)


@pytest.mark.parametrize("token", ["garbage", "a.b.c", "", "%00"])
async def test_a_malformed_token_is_closed_with_4401(db, token):
    ws, _, _ = await connect(f"/ws/?token={token}")

    await assert_closed_with(ws, 4401)


async def test_a_forged_token_is_closed_with_4401(user):
    genuine = AccessToken.for_user(user)
    forged = jwt.encode(dict(genuine.payload), "someone-elses-signing-key-0123456789", algorithm="HS256")

    ws, _, _ = await connect(f"/ws/?token={forged}")

    await assert_closed_with(ws, 4401)


async def test_an_expired_token_is_closed_with_4401(user):
    token = AccessToken.for_user(user)
    token.set_exp(lifetime=-timedelta(seconds=1))

    ws, _, _ = await connect(f"/ws/?token={token}")

    await assert_closed_with(ws, 4401)


async def test_a_deactivated_users_token_is_closed_with_4401(user):
    token = access_token(user)
    user.is_active = False
    await user.asave()

    ws, _, _ = await connect(f"/ws/?token={token}")

    await assert_closed_with(ws, 4401)


async def test_a_bad_token_does_not_fall_back_to_the_session_cookie(user, cookie):

    ws, _, _ = await connect("/ws/?token=forged", headers=[(b"origin", b"http://testserver"), (b"cookie", cookie)])

    await assert_closed_with(ws, 4401)


@pytest.mark.parametrize("origin", [b"http://evil.example", b"https://testserver.evil.example", b"null"])
async def test_a_browser_on_another_site_is_refused_even_with_a_valid_cookie(user, cookie, origin):

    _ws, connected, _ = await connect(headers=[(b"origin", origin), (b"cookie", cookie)])

    assert not connected


async def test_a_foreign_origin_is_refused_even_with_a_valid_token(user):
    _ws, connected, _ = await connect(f"/ws/?token={access_token(user)}", headers=[(b"origin", b"http://evil.example")])

    assert not connected


@pytest.mark.parametrize(
    ("frame", "code"),
    [
        ("not json", "bad_request"),
        ("[1, 2, 3]", "bad_request"),
        ('"just a string"', "bad_request"),
        ('{"no": "type"}', "bad_request"),
        ('{"type": 42}', "bad_request"),
        ("[" * 5000 + "]" * 5000, "bad_request"),
        ('{"type": "launch.missiles"}', "unknown_type"),
    ],
)
async def test_malformed_frames_get_an_error_and_the_connection_survives(user, frame, code):
    ws, _, _ = await connect(f"/ws/?token={access_token(user)}")

    await ws.send_to(text_data=frame)
    error = await ws.receive_json_from()
    await ws.send_json_to({"type": "ping"})

    assert error["type"] == "error"
    assert error["code"] == code
    assert error["message"]
    assert await ws.receive_json_from() == {"type": "pong"}
    await ws.disconnect()


@pytest.mark.parametrize(
    ("frame", "code"),
    [
        ({"type": "send_mesage", "client_id": "c1"}, "unknown_type"),
        ({"type": None, "client_id": "c1"}, "bad_request"),
        ({"client_id": "c1"}, "bad_request"),
    ],
)
async def test_an_error_about_a_frame_without_a_known_type_echoes_its_client_id(user, frame, code):
    ws, _, _ = await connect(f"/ws/?token={access_token(user)}")

    await ws.send_json_to(frame)

    assert await ws.receive_json_from() == {"type": "error", "code": code, "message": ANY, "client_id": "c1"}
    await ws.disconnect()


async def outputs_until_quiet(ws, quiet: float = 0.3) -> list[dict]:
    outputs = []
    while not await ws.receive_nothing(timeout=quiet):
        outputs.append(await ws.receive_output())
    return outputs


def typing_of(user) -> dict:
    """As a typing event goes out: to everyone in the chat but the typist."""
    return {
        "type": "deliver",
        "frame": {"type": "typing", "chat_id": 1, "user_id": user.pk},
        "exclude_user_id": user.pk,
    }


async def test_a_socket_ended_twice_closes_once(user):
    ws, _, _ = await connect(f"/ws/?token={access_token(user)}")
    layer = get_channel_layer()
    for _ in range(2):
        layer.group_send_nowait(user_group(user.pk), {"type": "session_ended", "frame": {"type": "session_ended"}})

    assert [output["type"] for output in await outputs_until_quiet(ws)] == ["websocket.close"]


@pytest.mark.parametrize("ending", ["session ended", "token expired"])
async def test_nothing_queued_behind_the_end_of_a_socket_is_sent_after_its_close(user, stranger, ending, monkeypatch):
    from chat_realtime import consumers

    ws, _, _ = await connect(f"/ws/?token={access_token(user)}")
    layer = get_channel_layer()
    if ending == "session ended":
        layer.group_send_nowait(user_group(user.pk), {"type": "session_ended", "frame": {"type": "session_ended"}})
    else:
        later = time.time() + 3600  # past the token's expiry by the clock the socket reads
        monkeypatch.setattr(consumers, "time", SimpleNamespace(time=lambda: later))
        layer.group_send_nowait(user_group(user.pk), typing_of(stranger))
    layer.group_send_nowait(user_group(user.pk), typing_of(stranger))

    outputs = await outputs_until_quiet(ws)

    assert [output["type"] for output in outputs] == ["websocket.close"]
    assert outputs[0]["code"] == 4401


async def test_binary_frames_get_an_error_and_the_connection_survives(user):
    ws, _, _ = await connect(f"/ws/?token={access_token(user)}")

    await ws.send_to(bytes_data=b"\x00\x01\x02")

    assert (await ws.receive_json_from())["code"] == "bad_request"
    await ws.send_json_to({"type": "ping"})
    assert await ws.receive_json_from() == {"type": "pong"}
    await ws.disconnect()


async def test_an_oversized_frame_closes_the_connection_with_1009(user, settings):
    settings.WEBSOCKET_MAX_FRAME_CHARS = 1024
    ws, _, _ = await connect(f"/ws/?token={access_token(user)}")

    await ws.send_json_to({"type": "ping", "padding": "x" * 2000})

    await assert_closed_with(ws, 1009)


async def test_events_published_to_a_users_group_reach_each_of_their_connections(user, stranger):
    tab_one, _, _ = await connect(f"/ws/?token={access_token(user)}")
    tab_two, _, _ = await connect(f"/ws/?token={access_token(user)}")
    other, _, _ = await connect(f"/ws/?token={access_token(stranger)}")

    await get_channel_layer().group_send(user_group(user.pk), {"type": "deliver", "frame": {"type": "hello"}})

    assert await tab_one.receive_json_from() == {"type": "hello"}
    assert await tab_two.receive_json_from() == {"type": "hello"}
    assert await other.receive_nothing(timeout=0.3)
    for ws in (tab_one, tab_two, other):
        await ws.disconnect()


async def test_a_closed_connection_leaves_no_mailbox_and_no_group_behind(user):
    layer = get_channel_layer()
    before = set(layer.mailboxes)
    ws, _, _ = await connect(f"/ws/?token={access_token(user)}")
    (channel,) = set(layer.mailboxes) - before

    await ws.disconnect()

    assert channel not in layer.mailboxes
    assert not any(channel in members for members in layer.groups.values())


def test_a_frame_with_text_the_fast_encoder_refuses_still_goes_out_escaped():
    assert json.loads(encode_frame({"type": "x", "text": "a\ud800"})) == {"type": "x", "text": "a\ud800"}
    assert encode_frame({"type": "x", "n": 1}) == '{"type":"x","n":1}'


async def test_a_socket_too_far_behind_is_closed_with_1013_to_start_over(user, monkeypatch):
    from chat_realtime import channel_layer

    monkeypatch.setattr(channel_layer, "MAILBOX_CAPACITY", 3)
    ws, _, _ = await connect(f"/ws/?token={access_token(user)}")
    layer = get_channel_layer()

    for n in range(5):  # all handed over before the consumer runs again
        layer.group_send_nowait(user_group(user.pk), {"type": "deliver", "frame": {"type": "hello", "n": n}})

    assert [(await ws.receive_json_from())["n"] for _ in range(3)] == [0, 1, 2]
    await assert_closed_with(ws, 1013)
