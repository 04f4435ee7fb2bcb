"""Open websockets do not outlive the credentials they were opened with."""

from datetime import timedelta

import pytest
from asgiref.sync import sync_to_async
from channels.testing import WebsocketCommunicator
from django.test import Client
from rest_framework_simplejwt.tokens import AccessToken

from accounts import services as account_services
from chat_realtime.asgi import application
from chat_realtime.tests.sockets import ask, open_socket
from conftest import PASSWORD

pytestmark = pytest.mark.django_db(transaction=True)


async def closed_with(socket, code):
    while True:
        output = await socket.receive_output(timeout=3)
        if output["type"] == "websocket.close":
            return output["code"] == code


async def test_changing_the_password_closes_every_open_socket(user):
    phone, laptop = await open_socket(user), await open_socket(user)

    await sync_to_async(account_services.change_password)(
        user=user, old_password=PASSWORD, new_password="a-brand-new-secret-9"
    )

    assert await closed_with(phone, 4401)
    assert await closed_with(laptop, 4401)


async def test_a_socket_closes_once_its_token_has_expired(user):
    token = AccessToken.for_user(user)
    token.set_exp(lifetime=timedelta(seconds=1))
    socket = WebsocketCommunicator(application, f"/ws/?token={token}")
    connected, _ = await socket.connect()
    assert connected
    await socket.receive_json_from()  # greeting
    import asyncio

    await asyncio.sleep(1.1)
    await socket.send_json_to({"type": "ping"})

    assert await closed_with(socket, 4401)


async def test_a_deactivated_user_cannot_send_from_a_socket_opened_before(friends_with_chat):
    alice, bob, chat = friends_with_chat
    socket = await open_socket(alice)
    alice.is_active = False
    await alice.asave(update_fields=["is_active"])

    refused = await ask(socket, {"type": "send_message", "chat_id": chat.pk, "text": "still here?", "client_id": "z1"})

    assert (refused["code"], refused["client_id"]) == ("account_inactive", "z1")
    await socket.disconnect()


async def test_an_empty_token_is_a_bad_token_even_with_a_session_cookie(user):
    @sync_to_async
    def cookie():
        client = Client()
        client.force_login(user)
        return f"sessionid={client.cookies['sessionid'].value}".encode()

    socket = WebsocketCommunicator(
        application, "/ws/?token=", headers=[(b"origin", b"http://testserver"), (b"cookie", await cookie())]
    )
    await socket.connect()

    assert await closed_with(socket, 4401)
