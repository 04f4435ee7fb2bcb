"""The MySQL/MariaDB backend saves round trips and keeps what they meant: transactions open with
START TRANSACTION (what an atomic block does is seen by others at its end or never; outside one
every statement commits on its own), and a connection that answered moments ago is used without
a health-check ping (one idle for longer is still checked, and replaced if it died).
Needs MySQL/MariaDB (DB_HOST)."""

from __future__ import annotations

import time

import pytest
from django.db import close_old_connections, connection, connections, transaction

from chat_realtime.mysql_backend import base as mysql_backend

pytestmark = pytest.mark.django_db(transaction=True)

TABLE = "backend_probe"


@pytest.fixture
def probe_table():
    if connection.vendor != "mysql":
        pytest.skip("DB_HOST is not set: this is the MySQL/MariaDB backend's test")
    with connection.cursor() as cursor:
        cursor.execute(f"CREATE TABLE {TABLE} (id INT PRIMARY KEY) ENGINE=InnoDB")
    yield
    with connection.cursor() as cursor:
        cursor.execute(f"DROP TABLE {TABLE}")


def seen_by(session, row_id: int) -> bool:
    with session.cursor() as cursor:
        cursor.execute(f"SELECT COUNT(*) FROM {TABLE} WHERE id = %s", [row_id])
        return cursor.fetchone()[0] == 1


def statements_sent() -> int:
    with connection.cursor() as cursor:
        cursor.execute("SHOW SESSION STATUS LIKE 'Questions'")
        return int(cursor.fetchone()[1])


def test_an_atomic_block_costs_one_statement_besides_its_own_and_its_commit(probe_table):
    before = statements_sent()
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(f"INSERT INTO {TABLE} VALUES (1)")

    # START TRANSACTION, the INSERT, COMMIT, and the count's own SHOW: no autocommit off and on again.
    assert statements_sent() - before == 4


def test_an_atomic_block_is_seen_by_others_at_its_end_or_never(probe_table, other_mysql_session):
    with transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute(f"INSERT INTO {TABLE} VALUES (1)")
        assert not seen_by(other_mysql_session, 1)
    assert seen_by(other_mysql_session, 1)

    with pytest.raises(RuntimeError), transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute(f"INSERT INTO {TABLE} VALUES (2)")
        raise RuntimeError("the block fails")
    assert not seen_by(other_mysql_session, 2)


def test_outside_atomic_blocks_each_statement_commits_on_its_own(probe_table, other_mysql_session):
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(f"INSERT INTO {TABLE} VALUES (1)")

    with connection.cursor() as cursor:
        cursor.execute(f"INSERT INTO {TABLE} VALUES (2)")

    assert seen_by(other_mysql_session, 2)


def test_manual_transactions_still_commit_only_when_told(probe_table, other_mysql_session):
    transaction.set_autocommit(False)
    try:
        with connection.cursor() as cursor:
            cursor.execute(f"INSERT INTO {TABLE} VALUES (1)")
        assert not seen_by(other_mysql_session, 1)
        transaction.commit()
        assert seen_by(other_mysql_session, 1)
        with connection.cursor() as cursor:
            cursor.execute(f"INSERT INTO {TABLE} VALUES (2)")
        transaction.rollback()
    finally:
        transaction.set_autocommit(True)

    assert not seen_by(other_mysql_session, 2)
    with connection.cursor() as cursor:
        cursor.execute(f"INSERT INTO {TABLE} VALUES (3)")
    assert seen_by(other_mysql_session, 3)


def session_id() -> int:
    with connection.cursor() as cursor:
        cursor.execute("SELECT CONNECTION_ID()")
        return cursor.fetchone()[0]


@pytest.fixture
def pings(monkeypatch):
    """How many health-check pings the default connection made."""
    made = []
    backend = type(connections["default"])
    usable = backend.is_usable
    monkeypatch.setattr(backend, "is_usable", lambda wrapper: made.append(1) or usable(wrapper))
    return made


def test_a_connection_that_answered_moments_ago_is_used_without_a_ping(probe_table, pings, monkeypatch):
    monkeypatch.setattr(mysql_backend, "RECENTLY_ALIVE_SECONDS", 60)  # "moments" even on a stalled machine
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(f"INSERT INTO {TABLE} VALUES (1)")
    close_old_connections()  # what Channels does around each database call, Django around each request

    with connection.cursor() as cursor:
        cursor.execute(f"SELECT COUNT(*) FROM {TABLE}")

    assert pings == []


def test_a_connection_idle_for_longer_is_pinged_and_replaced_if_it_died(probe_table, pings, other_mysql_session):
    before = session_id()
    connections["default"].alive_at = time.monotonic() - mysql_backend.RECENTLY_ALIVE_SECONDS - 1
    with other_mysql_session.cursor() as cursor:
        cursor.execute(f"KILL {int(before)}")  # what a restart or failover does to a kept connection
    close_old_connections()

    after = session_id()

    assert pings == [1]
    assert after != before


def test_a_connection_dropped_moments_after_it_answered_fails_once_then_is_replaced(
    probe_table, other_mysql_session, monkeypatch
):
    """The price of skipping the ping: one clear error, then the check after the error replaces it."""
    from django.db import OperationalError

    monkeypatch.setattr(mysql_backend, "RECENTLY_ALIVE_SECONDS", 60)
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(f"INSERT INTO {TABLE} VALUES (1)")
    before = session_id()
    with other_mysql_session.cursor() as cursor:
        cursor.execute(f"KILL {int(before)}")
    close_old_connections()

    with pytest.raises(OperationalError):
        session_id()
    close_old_connections()  # the next request's or database call's start

    assert session_id() != before
