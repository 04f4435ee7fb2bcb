"""A worker renews all its open connections together, once a period, and never a closed one."""

import asyncio
import logging

import pytest
from asgiref.sync import sync_to_async

from chat_realtime import shared_redis
from chat_realtime.tests.sockets import close, open_socket
from presence import services
from presence.services import connections_key

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def renewals(monkeypatch, settings):
    """What each call of `services.renew` was given, with a heartbeat every 0.1 s."""
    settings.PRESENCE_HEARTBEAT_SECONDS = 0.1
    calls: list[list[tuple[str, int]]] = []
    renew = services.renew

    def recorded(connections):
        calls.append(connections)
        renew(connections)

    monkeypatch.setattr(services, "renew", recorded)
    return calls


@pytest.fixture
def two_people(make_user):
    return make_user(), make_user()


def connection_ids(user) -> set[str]:
    return {member.decode() for member in shared_redis.connection().zrange(connections_key(user.pk), 0, -1)}


async def test_every_open_connection_of_the_worker_is_renewed_in_one_call_per_period(two_people, renewals):
    alice, bob = two_people
    sockets = [await open_socket(alice), await open_socket(alice), await open_socket(bob)]
    renewals.clear()  # a period may have passed while they opened, renewing those open by then

    await asyncio.sleep(0.45)

    assert 2 <= len(renewals) <= 5
    assert all(sorted(user for _, user in call) == sorted([alice.pk, alice.pk, bob.pk]) for call in renewals)
    await close(*sockets)


async def test_a_closed_connection_is_not_renewed_and_stays_gone(two_people, renewals):
    alice, _ = two_people
    staying, leaving = await open_socket(alice), await open_socket(alice)
    await asyncio.sleep(0.15)
    assert len(await sync_to_async(connection_ids)(alice)) == 2

    await leaving.disconnect()
    renewals.clear()
    await asyncio.sleep(0.35)

    assert renewals and all(len(call) == 1 for call in renewals)
    assert len(await sync_to_async(connection_ids)(alice)) == 1
    await close(staying)


def test_renewing_with_redis_down_is_logged_and_raises_nothing(make_user, redis_down, caplog):
    alice = make_user()

    with caplog.at_level(logging.WARNING, logger="presence.services"):
        services.renew([("conn-1", alice.pk)])

    assert "presence heartbeats of 1 connections failed" in caplog.text
