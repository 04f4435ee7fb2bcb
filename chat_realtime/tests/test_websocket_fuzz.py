"""Hostile and random frames on /ws/: always a clear error, never a crash, and the socket stays usable."""

import json

import pytest
from asgiref.sync import async_to_sync
from channels.testing import WebsocketCommunicator
from hypothesis import HealthCheck, given
from hypothesis import settings as fuzzing
from hypothesis import strategies as st
from rest_framework_simplejwt.tokens import AccessToken

from chat_realtime.asgi import application

pytestmark = pytest.mark.django_db(transaction=True)

CLIENT_ERRORS = {"bad_request", "unknown_type", "validation_error", "not_found", "not_friends"}
# What a frame may bring back besides an error: its own answer, or the events it caused.
ANSWERS = {"pong", "joined_chat", "left_chat", "message_ack", "chat_update", "new_message", "read"}
FRAME_TYPES = ["ping", "join_chat", "leave_chat", "send_message", "typing", "mark_read", "JOIN_CHAT", "", "__init__"]

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(10**40), max_value=10**40)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=50),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=12,
)
frames = st.fixed_dictionaries(
    {"type": st.sampled_from(FRAME_TYPES) | st.text(max_size=20)},
    optional={"chat_id": json_values, "text": json_values, "client_id": json_values, "message_id": json_values},
)


async def exchange_in_chat(user, raw: str) -> list[dict]:
    """Send one raw frame and a ping; return everything that came back before the pong."""
    socket = WebsocketCommunicator(application, f"/ws/?token={AccessToken.for_user(user)}")
    connected, _ = await socket.connect()
    assert connected
    await socket.receive_json_from()  # greeting
    await socket.send_to(text_data=raw)
    await socket.send_json_to({"type": "ping"})
    answers = []
    while (frame := await socket.receive_json_from(timeout=3)) != {"type": "pong"}:
        answers.append(frame)
    await socket.disconnect()
    return answers


async def exchange(user, raw: str) -> tuple[dict, dict]:
    """Send one raw frame, then a ping; return (the answer to the frame, the answer to the ping)."""
    socket = WebsocketCommunicator(application, f"/ws/?token={AccessToken.for_user(user)}")
    connected, _ = await socket.connect()
    assert connected
    await socket.receive_json_from()  # greeting
    await socket.send_to(text_data=raw)
    answer = await socket.receive_json_from(timeout=3)
    await socket.send_json_to({"type": "ping"})
    pong = await socket.receive_json_from(timeout=3)
    await socket.disconnect()
    return answer, pong


@fuzzing(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(frame=frames)
def test_any_frame_gets_one_clear_answer_and_the_socket_lives_on(user, frame):
    answer, pong = async_to_sync(exchange)(user, json.dumps(frame))

    assert pong == {"type": "pong"}
    if answer["type"] == "error":
        assert answer["code"] in CLIENT_ERRORS, answer
        assert answer["message"]
    else:
        assert answer["type"] in {"pong", "left_chat"}, answer


@pytest.fixture
def member(friends_with_chat):
    """alice, in a chat with a friend: frames about her chat get past the membership check."""
    return friends_with_chat[0], friends_with_chat[2].pk


@fuzzing(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(frame=frames, use_her_chat=st.booleans(), data=st.data())
def test_frames_about_a_chat_she_is_in_get_a_clear_answer_too(member, frame, use_her_chat, data, settings):
    settings.RATE_LIMITS = {**settings.RATE_LIMITS, "message": None}
    user, chat_id = member
    if use_her_chat:
        frame = {**frame, "chat_id": chat_id}
        if data.draw(st.booleans()):
            frame["client_id"] = data.draw(st.from_regex(r"[A-Za-z0-9_.:-]{1,64}", fullmatch=True))

    answers = async_to_sync(exchange_in_chat)(user, json.dumps(frame))

    for answer in answers:
        if answer["type"] == "error":
            assert answer["code"] in CLIENT_ERRORS, answer
        else:
            assert answer["type"] in ANSWERS, answer


@pytest.mark.parametrize(
    "raw",
    [
        " ",
        "null",
        "nul",
        "{",
        '{"type": "ping"',
        "[" * 50_000,
        '{"type": "send_message", "text": "' + "\\ud800" + '", "client_id": "x", "chat_id": 1}',
        '{"type": "send_message", "chat_id": 1e999, "client_id": "x", "text": "hi"}',
        '{"type": "\\u0000"}',
        "\ufeff{}",
    ],
)
def test_broken_json_and_edge_cases_get_a_clear_answer(user, raw):
    answer, pong = async_to_sync(exchange)(user, raw)

    assert answer["type"] == "error" and answer["code"] in CLIENT_ERRORS
    assert pong == {"type": "pong"}


@pytest.mark.parametrize("chat_id", ["18446744073709551617", "9223372036854775808", "NaN", "-0", "1.0"])
def test_a_chat_id_that_is_no_id_gets_a_field_error_however_json_reads_it(user, chat_id):
    raw = '{"type": "send_message", "chat_id": ' + chat_id + ', "client_id": "x", "text": "hi"}'

    answer, pong = async_to_sync(exchange)(user, raw)

    assert (answer["code"], list(answer["fields"]), answer["client_id"]) == ("validation_error", ["chat_id"], "x")
    assert pong == {"type": "pong"}


def test_a_lone_surrogate_in_a_message_is_refused_not_stored(friends_with_chat):
    alice, _, chat = friends_with_chat
    raw = json.dumps({"type": "send_message", "chat_id": chat.pk, "text": "hi \ud800", "client_id": "s1"})

    answer, pong = async_to_sync(exchange)(alice, raw)

    assert (answer["code"], answer["client_id"]) == ("validation_error", "s1")
    assert pong == {"type": "pong"}


@fuzzing(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.binary(min_size=1, max_size=2048))
def test_binary_frames_are_refused_and_the_socket_lives_on(user, data):
    async def run():
        socket = WebsocketCommunicator(application, f"/ws/?token={AccessToken.for_user(user)}")
        await socket.connect()
        await socket.receive_json_from()
        await socket.send_to(bytes_data=data)
        answer = await socket.receive_json_from(timeout=3)
        await socket.send_json_to({"type": "ping"})
        pong = await socket.receive_json_from(timeout=3)
        await socket.disconnect()
        return answer, pong

    answer, pong = async_to_sync(run)()

    assert answer["code"] == "bad_request"
    assert pong == {"type": "pong"}


def test_a_one_megabyte_frame_closes_the_socket_with_1009(user):
    async def run():
        socket = WebsocketCommunicator(application, f"/ws/?token={AccessToken.for_user(user)}")
        await socket.connect()
        await socket.receive_json_from()
        await socket.send_to(text_data=json.dumps({"type": "send_message", "text": "x" * (1024 * 1024)}))
        return await socket.receive_output(timeout=3)

    assert async_to_sync(run)() == {"type": "websocket.close", "code": 1009}
