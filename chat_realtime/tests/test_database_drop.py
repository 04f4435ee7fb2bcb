"""The SQL database drops a worker's connections: requests fail cleanly or succeed, and the
worker recovers without a restart. Only meaningful on MySQL/MariaDB (KILL of server threads)."""

from __future__ import annotations

import asyncio
import json
import urllib.error
import urllib.request

import pytest
from django.db import connection, connections

from chat_realtime.tests.servers import DaphneWorker
from chat_realtime.tests.test_two_workers import FAST_PRESENCE, Client, connect, http

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def worker(tmp_path):
    if connection.vendor != "mysql":
        pytest.skip("DB_HOST is not set: dropping server connections is a MySQL/MariaDB test")
    if connect is None:
        pytest.skip("the websockets client is not installed (requirements-dev.txt has it)")
    started = DaphneWorker(tmp_path, **FAST_PRESENCE).start()
    yield started
    started.stop()


@pytest.fixture
def reconnect_afterwards():
    """The kills hit this test's own connections too; drop them so the clean-up opens fresh ones."""
    yield
    connections.close_all()


def kill_other_connections() -> int:
    """Kill every server thread on the test database but this one: what a MySQL restart or failover does."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT id FROM information_schema.processlist WHERE db = %s AND id <> CONNECTION_ID()",
            [connection.settings_dict["NAME"]],
        )
        ids = [row[0] for row in cursor.fetchall()]
        for thread_id in ids:
            cursor.execute(f"KILL {int(thread_id)}")
    return len(ids)


async def test_a_worker_recovers_from_dropped_database_connections(worker, friends_with_chat, reconnect_afterwards):
    alice, bob, chat = friends_with_chat

    async with Client(alice, worker) as alice_socket:
        await alice_socket.join(chat.pk)
        assert (await alice_socket.send_message(chat.pk, "one", "d1"))["type"] == "message_ack"

        await asyncio.to_thread(kill_other_connections)
        answers = [await alice_socket.send_message(chat.pk, f"after {n}", f"d{n + 2}") for n in range(3)]

        # At worst a clear error; then it works again, over the socket and over HTTP.
        assert all(a["type"] in ("message_ack", "error") for a in answers)
        assert answers[-1]["type"] == "message_ack"
        page = await asyncio.to_thread(http, worker, alice, "GET", f"/api/chats/{chat.pk}/messages")
        assert page["results"][0]["text"] == "after 2"

    await asyncio.to_thread(kill_other_connections)
    try:
        status = urllib.request.urlopen(worker.url + "/healthz", timeout=5).status
    except urllib.error.HTTPError as error:
        status = error.code
    assert status in (200, 503)
    assert urllib.request.urlopen(worker.url + "/healthz", timeout=5).status == 200
    assert json.loads(urllib.request.urlopen(worker.url + "/healthz", timeout=5).read()) == {"status": "ok"}
