"""Open websockets do not outlive the credentials they were opened with."""

import asyncio
import time
from datetime import timedelta
from types import SimpleNamespace

import pytest
from asgiref.sync import sync_to_async
from channels.testing import WebsocketCommunicator
from django.contrib.sessions.models import Session
from django.db import OperationalError
from django.test import Client
from django.utils import timezone
from rest_framework_simplejwt.tokens import AccessToken

from accounts import services as account_services
from chat_realtime import consumers
from chat_realtime.asgi import application
from chat_realtime.tests.sockets import ask, open_socket
from conftest import PASSWORD
from messaging.store import message_store

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


async def test_a_silent_socket_closes_when_its_token_expires(user):
    token = AccessToken.for_user(user)
    token.set_exp(lifetime=timedelta(seconds=1))
    socket = WebsocketCommunicator(application, f"/ws/?token={token}")
    connected, _ = await socket.connect()
    assert connected
    await socket.receive_json_from()  # greeting

    assert await closed_with(socket, 4401)  # without a frame from either side


async def test_a_silent_socket_closes_even_when_its_timer_comes_early_by_the_clock_it_reads(user, monkeypatch):
    token = AccessToken.for_user(user)
    token.set_exp(lifetime=timedelta(seconds=1))
    socket = WebsocketCommunicator(application, f"/ws/?token={token}")
    await socket.connect()
    await socket.receive_json_from()  # greeting
    # Its clock a fifth of a second behind the event loop's (a clock stepped back; uvloop rounds to the ms).
    monkeypatch.setattr(consumers, "time", SimpleNamespace(time=lambda: time.time() - 0.2))

    assert await closed_with(socket, 4401)


def _expire_session_in(client: Client, seconds: float) -> None:
    Session.objects.filter(session_key=client.session.session_key).update(
        expire_date=timezone.now() + timedelta(seconds=seconds)
    )


async def test_a_browser_socket_closes_when_its_session_runs_out(friends_with_chat):
    alice, bob, chat = friends_with_chat
    browser = Client()
    await sync_to_async(browser.force_login)(alice)
    await sync_to_async(_expire_session_in)(browser, 1)
    socket, bobs_socket = await _browser_socket(browser), await open_socket(bob)
    await socket.receive_json_from(timeout=3)  # Bob came online

    assert await closed_with(socket, 4401)  # neither sending nor receiving
    gone = await bobs_socket.receive_json_from(timeout=3)
    assert (gone["type"], gone["user_id"]) == ("user_offline", alice.pk)
    await bobs_socket.disconnect()


async def test_a_session_renewed_before_it_runs_out_keeps_its_socket(user):
    browser = Client()
    await sync_to_async(browser.force_login)(user)
    await sync_to_async(_expire_session_in)(browser, 1)
    socket = await _browser_socket(browser)

    await sync_to_async(_expire_session_in)(browser, 3600)  # saved again, by a later request
    await asyncio.sleep(1.5)

    assert (await ask(socket, {"type": "ping"}))["type"] == "pong"
    await socket.disconnect()


async def test_a_socket_whose_session_cannot_be_read_stays_open_and_asks_again(user, monkeypatch):
    browser = Client()
    await sync_to_async(browser.force_login)(user)
    await sync_to_async(_expire_session_in)(browser, 1)
    socket = await _browser_socket(browser)
    readable = consumers.stored_expiry

    def database_away(session_key):
        raise OperationalError("the database went away")

    monkeypatch.setattr(consumers, "stored_expiry", database_away)
    monkeypatch.setattr(consumers, "SESSION_RECHECK_SECONDS", 1)
    await asyncio.sleep(1.3)  # its expiry came while the database was away

    assert (await ask(socket, {"type": "ping"}))["type"] == "pong"
    monkeypatch.setattr(consumers, "stored_expiry", readable)
    assert await closed_with(socket, 4401)  # asked again: it did run out


async def test_a_frame_sent_once_the_session_has_run_out_is_refused(friends_with_chat, monkeypatch):
    alice, bob, chat = friends_with_chat
    browser = Client()
    await sync_to_async(browser.force_login)(alice)
    await sync_to_async(_expire_session_in)(browser, 3600)
    socket = await _browser_socket(browser)
    # Two hours on, by the clock the socket reads (its timer, on the event loop's clock, has not come yet).
    later = time.time() + 7200
    monkeypatch.setattr(consumers, "time", SimpleNamespace(time=lambda: later))

    await socket.send_json_to({"type": "send_message", "chat_id": chat.pk, "text": "too late", "client_id": "e1"})

    assert await closed_with(socket, 4401)
    history = await sync_to_async(
        lambda: [m.text for m in message_store().page_before(chat.pk, before=None, limit=10)]
    )()
    assert "too late" not in history


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


async def _browser_socket(client: Client) -> WebsocketCommunicator:
    """A socket opened as the browser opens it: with the client's session cookie."""
    cookie = f"sessionid={client.cookies['sessionid'].value}".encode()
    socket = WebsocketCommunicator(
        application, "/ws/", headers=[(b"origin", b"http://testserver"), (b"cookie", cookie)]
    )
    connected, _ = await socket.connect()
    assert connected
    assert (await socket.receive_json_from(timeout=3))["type"] == "online_friends"
    return socket


@pytest.mark.parametrize("logout_url", ["/accounts/logout/", "/admin/logout/"])
async def test_logging_out_closes_the_sockets_of_that_session_and_no_others(user, logout_url):
    user.is_staff = True
    await user.asave(update_fields=["is_staff"])
    browser, other_browser = Client(), Client()
    await sync_to_async(browser.force_login)(user)
    await sync_to_async(other_browser.force_login)(user)
    tab, other_tab = await _browser_socket(browser), await _browser_socket(browser)
    other_device, api_client = await _browser_socket(other_browser), await open_socket(user)

    response = await sync_to_async(browser.post)(logout_url)

    assert response.status_code in (200, 302)
    assert await closed_with(tab, 4401)
    assert await closed_with(other_tab, 4401)
    for still_open in (other_device, api_client):
        assert (await ask(still_open, {"type": "ping"}))["type"] == "pong"
        await still_open.disconnect()


async def test_a_socket_of_a_logged_out_session_sends_nothing_more(friends_with_chat):
    alice, bob, chat = friends_with_chat
    browser = Client()
    await sync_to_async(browser.force_login)(alice)
    socket = await _browser_socket(browser)

    await sync_to_async(browser.post)("/accounts/logout/")
    await socket.send_json_to({"type": "send_message", "chat_id": chat.pk, "text": "after logout", "client_id": "o1"})

    assert await closed_with(socket, 4401)
    history = await sync_to_async(
        lambda: [m.text for m in message_store().page_before(chat.pk, before=None, limit=10)]
    )()
    assert "after logout" not in history


async def test_another_person_logging_in_in_the_same_browser_closes_the_first_ones_sockets(user, make_user):
    other = await sync_to_async(make_user)(username="someone.else")
    browser = Client()
    await sync_to_async(browser.force_login)(user)
    tab = await _browser_socket(browser)

    response = await sync_to_async(browser.post)("/accounts/login/", {"login": other.username, "password": PASSWORD})

    assert response.status_code == 302
    assert await closed_with(tab, 4401)
