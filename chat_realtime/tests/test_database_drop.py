"""The SQL database drops a worker's connections: requests fail cleanly or succeed, and the
worker recovers without a restart. Only meaningful on MySQL/MariaDB (KILL of server threads)."""

from __future__ import annotations

import asyncio
import json
import urllib.error
import urllib.request

import pytest
from django.db import connection

from chat_realtime.tests.servers import Client, WorkerProcess
from chat_realtime.tests.test_two_workers import FAST_PRESENCE, http

pytestmark = pytest.mark.django_db(transaction=True)


WORKER_USER = "chat_drop_test"


@pytest.fixture
def worker(tmp_path):
    """A worker that keeps its connections (CONN_MAX_AGE) and logs in as its own database user,
    so the test can kill exactly its server threads and nobody else's."""
    if connection.vendor != "mysql":
        pytest.skip("DB_HOST is not set: dropping server connections is a MySQL/MariaDB test")
    database = connection.settings_dict["NAME"]
    with connection.cursor() as cursor:
        cursor.execute(f"CREATE USER IF NOT EXISTS '{WORKER_USER}'@'%' IDENTIFIED BY 'drop-test-pw'")
        cursor.execute(f"GRANT ALL PRIVILEGES ON `{database}`.* TO '{WORKER_USER}'@'%'")
    started = WorkerProcess(
        tmp_path, DB_USER=WORKER_USER, DB_PASSWORD="drop-test-pw", DB_CONN_MAX_AGE="600", **FAST_PRESENCE
    ).start()
    yield started
    started.stop()
    with connection.cursor() as cursor:
        cursor.execute(f"DROP USER IF EXISTS '{WORKER_USER}'@'%'")


def kill_worker_connections() -> int:
    """Kill the worker's server threads: what a MySQL restart or failover does to its kept connections."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT id FROM information_schema.processlist WHERE user = %s", [WORKER_USER])
        ids = [row[0] for row in cursor.fetchall()]
        for thread_id in ids:
            cursor.execute(f"KILL {int(thread_id)}")
    return len(ids)


async def test_a_worker_recovers_from_dropped_database_connections(worker, friends_with_chat):
    alice, bob, chat = friends_with_chat

    async with Client(alice, worker) as alice_socket:
        await alice_socket.join(chat.pk)
        assert (await alice_socket.send_message(chat.pk, "one", "d1"))["type"] == "message_ack"

        assert await asyncio.to_thread(kill_worker_connections) > 0  # it did keep connections to lose
        answers = [await alice_socket.send_message(chat.pk, f"after {n}", f"d{n + 2}") for n in range(3)]

        # At worst a clear error; then it works again, over the socket and over HTTP.
        assert all(a["type"] in ("message_ack", "error") for a in answers)
        assert answers[-1]["type"] == "message_ack"
        page = await asyncio.to_thread(http, worker, alice, "GET", f"/api/chats/{chat.pk}/messages")
        assert page["results"][0]["text"] == "after 2"

    await asyncio.to_thread(kill_worker_connections)
    try:
        status = urllib.request.urlopen(worker.url + "/healthz", timeout=5).status
    except urllib.error.HTTPError as error:
        status = error.code
    assert status in (200, 503)
    assert urllib.request.urlopen(worker.url + "/healthz", timeout=5).status == 200
    assert json.loads(urllib.request.urlopen(worker.url + "/healthz", timeout=5).read()) == {"status": "ok"}
