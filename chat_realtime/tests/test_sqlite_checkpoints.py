"""SQLite's log is checkpointed by a thread of the server's, not by the commits of the send queue."""

from __future__ import annotations

import logging
import sqlite3
import time
from collections.abc import Callable

import pytest
from django.conf import settings
from django.db import connection

from chat_realtime import sqlite_checkpoints
from chat_realtime.sqlite_checkpoints import WalCheckpoints, start_wal_checkpoints
from messaging.models import Chat

on_sqlite = pytest.mark.skipif(
    settings.DATABASES["default"]["ENGINE"] != "chat_realtime.sqlite_backend",
    reason="SQLite's checkpoints: the embedded run of the suite tests them (this run is on another database)",
)
pytestmark = pytest.mark.django_db(transaction=True)


def wait_for(condition: Callable[[], bool], seconds: float = 10.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


def write_some_pages() -> None:
    Chat.objects.bulk_create([Chat() for _ in range(500)])


@on_sqlite
def test_the_connections_checkpoint_for_themselves_only_past_a_threshold_above_sqlites_default():
    with connection.cursor() as cursor:
        cursor.execute("PRAGMA wal_autocheckpoint")
        threshold = cursor.fetchone()[0]

    assert threshold == settings.SQLITE_FALLBACK_CHECKPOINT_PAGES > 1000  # SQLite's default


@on_sqlite
def test_the_thread_copies_what_was_committed_back_into_the_database_file():
    write_some_pages()

    checkpoints = WalCheckpoints(every=0.01).start()
    try:
        wait_for(lambda: checkpoints.last is not None)
        busy, in_log, copied = checkpoints.last
    finally:
        checkpoints.stop()

    assert busy == 0
    assert in_log > 0  # what this test wrote at least
    assert copied == in_log
    assert not checkpoints.is_alive()


@on_sqlite
def test_a_failed_checkpoint_is_logged_and_tried_again(monkeypatch, caplog):
    monkeypatch.setattr(sqlite_checkpoints, "RETRY_AFTER_SECONDS", 0.01)
    checkpoint = WalCheckpoints._checkpoint
    failures = []

    def fail_once(self, connection):
        if not failures:
            failures.append(True)
            raise sqlite3.OperationalError("disk I/O error")
        return checkpoint(self, connection)

    monkeypatch.setattr(WalCheckpoints, "_checkpoint", fail_once)
    write_some_pages()

    with caplog.at_level(logging.ERROR, logger="chat_realtime.sqlite_checkpoints"):
        checkpoints = WalCheckpoints(every=0.01).start()
        try:
            wait_for(lambda: checkpoints.last is not None)
        finally:
            checkpoints.stop()

    assert failures
    assert "SQLite checkpoint of 'default' failed" in caplog.text
    assert "disk I/O error" in caplog.text
    assert checkpoints.last[1] > 0 and checkpoints.last[2] == checkpoints.last[1]


@on_sqlite
def test_on_sqlite_a_checkpoint_thread_starts():
    checkpoints = start_wal_checkpoints()

    assert checkpoints is not None
    try:
        assert checkpoints.is_alive()
    finally:
        checkpoints.stop()


def test_no_thread_starts_for_any_other_database(monkeypatch):
    monkeypatch.setattr(connection, "vendor", "mysql")

    assert start_wal_checkpoints() is None
