"""The MySQL/MariaDB backend saves round trips and keeps what they meant: transactions open with
START TRANSACTION, sent with their first statement (what an atomic block does is seen by others at
its end or never; outside one every statement commits on its own); a write nobody reads the outcome
of goes out with the transaction's next statement or its COMMIT (seen by what follows it, committed
or rolled back with the rest, and failing the transaction if it fails); and a connection that
answered moments ago is used without a health-check ping (one idle for longer is still checked, and
replaced if it died); integers are quoted as mysqlclient itself quotes them. Needs MySQL/MariaDB
(DB_HOST)."""

from __future__ import annotations

import enum
import time

import pytest
from django.db import (
    DatabaseError,
    IntegrityError,
    OperationalError,
    ProgrammingError,
    close_old_connections,
    connection,
    connections,
    transaction,
)
from django.db.transaction import TransactionManagementError
from django.test.utils import CaptureQueriesContext
from MySQLdb.connections import Connection as MySQLdbConnection

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


def each_ones_statements(round_trips: list[str]) -> list[list[str]]:
    return [sent.split(mysql_backend.SEPARATOR.decode()) for sent in round_trips]


def test_an_atomic_block_costs_a_round_trip_for_its_statement_and_one_for_its_commit(probe_table, round_trips):
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(f"INSERT INTO {TABLE} VALUES (1)")

    # START TRANSACTION goes with the INSERT; no autocommit off and on again.
    assert each_ones_statements(round_trips) == [["START TRANSACTION", f"INSERT INTO {TABLE} VALUES (1)"], ["COMMIT"]]


def test_an_atomic_block_that_runs_no_statement_costs_no_round_trip(probe_table, round_trips):
    with transaction.atomic():
        pass
    with pytest.raises(RuntimeError), transaction.atomic():
        raise RuntimeError("the block fails")

    assert round_trips == []


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


def defer_insert(row_id: int) -> None:
    connection.defer_write(f"INSERT INTO {TABLE} VALUES (%s)", [row_id])


def test_a_deferred_write_goes_out_with_the_commit_and_is_committed(probe_table, round_trips, other_mysql_session):
    with transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute(f"INSERT INTO {TABLE} VALUES (1)")
        defer_insert(2)
        assert not seen_by(other_mysql_session, 2)

    assert seen_by(other_mysql_session, 1) and seen_by(other_mysql_session, 2)
    assert each_ones_statements(round_trips) == [
        ["START TRANSACTION", f"INSERT INTO {TABLE} VALUES (1)"],
        [f"INSERT INTO {TABLE} VALUES (2)", "COMMIT"],
    ]


def test_a_deferred_write_is_seen_by_the_transactions_next_statement(probe_table, round_trips):
    with transaction.atomic():
        defer_insert(1)
        defer_insert(2)
        with connection.cursor() as cursor:
            cursor.execute(f"SELECT COUNT(*) FROM {TABLE}")
            count = cursor.fetchone()[0]

    assert count == 2
    assert len(round_trips) == 2  # the two writes went with the count (and START TRANSACTION); then COMMIT


def test_a_deferred_write_of_a_block_that_fails_never_reaches_the_server(probe_table, round_trips, other_mysql_session):
    with pytest.raises(RuntimeError), transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute(f"INSERT INTO {TABLE} VALUES (1)")
        defer_insert(2)
        raise RuntimeError("the block fails")

    assert not seen_by(other_mysql_session, 1) and not seen_by(other_mysql_session, 2)
    assert not [sql for sql in round_trips if "VALUES (2)" in sql]


def test_a_deferred_write_that_fails_fails_its_transaction(probe_table, other_mysql_session):
    with connection.cursor() as cursor:
        cursor.execute(f"INSERT INTO {TABLE} VALUES (1)")

    with transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute(f"INSERT INTO {TABLE} VALUES (2)")
        defer_insert(1)  # a duplicate key: its error reaches the next statement
        with pytest.raises(IntegrityError), connection.cursor() as cursor:
            cursor.execute(f"INSERT INTO {TABLE} VALUES (3)")
        # Caught, but the transaction cannot go on as if the write had happened: it rolls back.
        assert transaction.get_rollback()

    assert not seen_by(other_mysql_session, 2) and not seen_by(other_mysql_session, 3)


def test_a_deferred_write_that_fails_at_the_commit_fails_the_block(probe_table, other_mysql_session):
    with connection.cursor() as cursor:
        cursor.execute(f"INSERT INTO {TABLE} VALUES (1)")

    with pytest.raises(IntegrityError), transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute(f"INSERT INTO {TABLE} VALUES (2)")
        defer_insert(1)

    assert not seen_by(other_mysql_session, 2)
    with connection.cursor() as cursor:  # and the connection goes on
        cursor.execute(f"SELECT COUNT(*) FROM {TABLE}")
        assert cursor.fetchone()[0] == 1


def test_outside_a_transaction_a_deferred_write_runs_at_once(probe_table, other_mysql_session):
    defer_insert(1)

    assert seen_by(other_mysql_session, 1)


def insert(row_id: int) -> None:
    with connection.cursor() as cursor:
        cursor.execute(f"INSERT INTO {TABLE} VALUES (%s)", [row_id])


@pytest.mark.parametrize("failure", [IntegrityError, RuntimeError])
def test_an_inner_block_that_fails_takes_its_deferred_write_with_it_and_the_outer_block_goes_on(
    probe_table, other_mysql_session, failure
):
    insert(1)
    with transaction.atomic():
        insert(2)
        with pytest.raises(failure), transaction.atomic():
            defer_insert(1)  # a duplicate key: it fails with the inner block's RELEASE SAVEPOINT...
            if failure is RuntimeError:
                raise RuntimeError("...unless the block fails first: its rollback drops the write unsent")
        insert(3)  # Django's way to recover: the inner block was rolled back to its savepoint

    assert seen_by(other_mysql_session, 2) and seen_by(other_mysql_session, 3)


@pytest.mark.parametrize("comment", ["-- the activity", "# the activity"])
def test_a_deferred_write_ending_in_a_line_comment_keeps_what_goes_with_it(probe_table, other_mysql_session, comment):
    with transaction.atomic():
        connection.defer_write(f"INSERT INTO {TABLE} VALUES (%s) {comment}", [1])
        with connection.cursor() as cursor:
            cursor.execute(f"SELECT COUNT(*) FROM {TABLE}")  # goes with the write
            count = cursor.fetchone()
        connection.defer_write(f"INSERT INTO {TABLE} VALUES (%s) {comment}", [2])  # goes with the COMMIT

    assert count == (1,)
    assert seen_by(other_mysql_session, 1) and seen_by(other_mysql_session, 2)
    with connection.cursor() as cursor:
        cursor.execute("SELECT @@in_transaction")
        assert cursor.fetchone() == (0,)  # the COMMIT ran


def test_statements_the_server_answers_fewer_of_than_were_sent_are_an_error_not_a_silent_skip(probe_table, monkeypatch):
    from MySQLdb.cursors import BaseCursor

    monkeypatch.setattr(BaseCursor, "nextset", lambda cursor: None)  # as if the COMMIT had not been read as one
    try:
        with pytest.raises(DatabaseError, match="fewer statements"), transaction.atomic():
            defer_insert(1)
    finally:
        connection.close()  # its answers unread


def test_a_procedure_called_first_in_an_atomic_block_is_part_of_it(probe_table, other_mysql_session):
    with connection.cursor() as cursor:
        cursor.execute(f"CREATE PROCEDURE {TABLE}_insert() INSERT INTO {TABLE} VALUES (7)")
    try:
        with pytest.raises(RuntimeError), transaction.atomic():
            with connection.cursor() as cursor:
                cursor.callproc(f"{TABLE}_insert")
            raise RuntimeError("the block fails")
    finally:
        with connection.cursor() as cursor:
            cursor.execute(f"DROP PROCEDURE {TABLE}_insert")

    assert not seen_by(other_mysql_session, 7)


def test_the_query_log_shows_each_deferred_write(probe_table):
    with CaptureQueriesContext(connection) as captured, transaction.atomic():
        defer_insert(1)
        with connection.cursor() as cursor:
            cursor.execute("SELECT %s", [2])  # carries START TRANSACTION and the write: logged as itself
        defer_insert(3)

    logged = [query["sql"] for query in captured]
    assert logged == [f"INSERT INTO {TABLE} VALUES (1)", "SELECT 2", f"INSERT INTO {TABLE} VALUES (3)", "COMMIT"]


def test_a_deferred_write_takes_named_parameters(probe_table, other_mysql_session):
    with transaction.atomic():
        connection.defer_write(f"INSERT INTO {TABLE} VALUES (%(id)s)", {"id": 1})

    assert seen_by(other_mysql_session, 1)


def test_in_a_manual_transaction_a_deferred_write_runs_at_once(probe_table, round_trips):
    insert(1)
    transaction.set_autocommit(False)
    try:
        with pytest.raises(IntegrityError):
            defer_insert(1)  # its error reaches its own caller: nothing waits for the commit
        insert(2)
        transaction.commit()
    finally:
        transaction.set_autocommit(True)

    assert connection.waiting == []


def test_a_statement_that_fails_to_bind_takes_nothing_that_waits_with_it(probe_table, other_mysql_session):
    with pytest.raises(RuntimeError), transaction.atomic():
        with pytest.raises(ProgrammingError), connection.cursor() as cursor:
            cursor.execute("SELECT %s, %s", [1])  # fails before anything is sent: START TRANSACTION still waits
        insert(1)
        seen_in_the_block = seen_by(other_mysql_session, 1)
        raise RuntimeError("the block fails")

    with transaction.atomic():
        defer_insert(2)
        with pytest.raises(ProgrammingError), connection.cursor() as cursor:
            cursor.execute("SELECT %s, %s", [1])

    assert not seen_in_the_block and not seen_by(other_mysql_session, 1)  # the block stayed one transaction
    assert seen_by(other_mysql_session, 2)  # and the write asked for before the error went with the COMMIT


@pytest.mark.parametrize("call", ["executemany", "callproc"])
def test_a_deferred_write_that_fails_before_a_batch_or_a_procedure_rolls_the_block_back(
    probe_table, other_mysql_session, call
):
    insert(1)
    with connection.cursor() as cursor:
        cursor.execute(f"CREATE PROCEDURE {TABLE}_noop() SELECT 1")
    try:
        with transaction.atomic():
            insert(2)
            defer_insert(1)  # a duplicate key: its error reaches the next call
            with pytest.raises(IntegrityError), connection.cursor() as cursor:
                if call == "executemany":
                    cursor.executemany(f"INSERT INTO {TABLE} VALUES (%s)", [[5], [6]])
                else:
                    cursor.callproc(f"{TABLE}_noop")
    finally:
        with connection.cursor() as cursor:
            cursor.execute(f"DROP PROCEDURE {TABLE}_noop")

    assert not seen_by(other_mysql_session, 2)


def test_in_an_atomic_block_of_a_manual_transaction_a_deferred_write_runs_at_once(probe_table, other_mysql_session):
    insert(1)
    transaction.set_autocommit(False)
    try:
        with transaction.atomic(savepoint=False):
            with pytest.raises(IntegrityError):
                defer_insert(1)  # nothing at the block's end would send it: it runs, and fails, here
            defer_insert(2)
        assert connection.waiting == []
        transaction.commit()
    finally:
        transaction.set_autocommit(True)

    assert seen_by(other_mysql_session, 2)


def test_a_deferred_write_may_end_in_a_semicolon(probe_table, other_mysql_session):
    with transaction.atomic():
        connection.defer_write(f"INSERT INTO {TABLE} VALUES (%s); ", [1])
        with connection.cursor() as cursor:
            cursor.execute(f"SELECT COUNT(*) FROM {TABLE};")
            count = cursor.fetchone()

    assert count == (1,)
    assert seen_by(other_mysql_session, 1)


def test_after_a_deadlock_nothing_more_of_the_block_is_committed(probe_table, other_mysql_session):
    import threading

    insert(1)
    insert(2)
    other_mysql_session.autocommit(False)
    other = other_mysql_session.cursor()
    other.executemany(f"INSERT INTO {TABLE} VALUES (%s)", [[i] for i in range(10, 30)])  # the heavier: not the victim
    other.execute(f"SELECT id FROM {TABLE} WHERE id = 2 FOR UPDATE")
    with transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute(f"SELECT id FROM {TABLE} WHERE id = 1 FOR UPDATE")
        waiter = threading.Thread(target=other.execute, args=(f"SELECT id FROM {TABLE} WHERE id = 1 FOR UPDATE",))
        waiter.start()
        time.sleep(0.5)
        try:
            with pytest.raises(OperationalError) as deadlock, connection.cursor() as cursor:
                cursor.execute(f"SELECT id FROM {TABLE} WHERE id = 2 FOR UPDATE")
        finally:
            waiter.join()
            other_mysql_session.rollback()
        # The server rolled the whole transaction back: what follows would commit statement by statement.
        with pytest.raises(TransactionManagementError):
            insert(3)

    assert deadlock.value.args[0] == mysql_backend.ER_LOCK_DEADLOCK
    assert not seen_by(other_mysql_session, 3)


def test_statements_sent_together_keep_their_parameters_and_percent_signs(probe_table):
    with transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute("SELECT '100%'")  # no parameters: the text is not %-formatted
            alone = cursor.fetchone()
        defer_insert(1)
        with connection.cursor() as cursor:
            cursor.execute("SELECT %s, '50%%'", ["x%s"])
            positional = cursor.fetchone()
        defer_insert(2)
        with connection.cursor() as cursor:
            cursor.execute(f"SELECT COUNT(*), %(word)s FROM {TABLE}", {"word": "named"})
            named = cursor.fetchone()
        defer_insert(3)
        with connection.cursor() as cursor:
            cursor.executemany(f"INSERT INTO {TABLE} VALUES (%s)", [[4], [5]])
        with connection.cursor() as cursor:
            cursor.execute(f"SELECT COUNT(*) FROM {TABLE}")
            count = cursor.fetchone()[0]

    assert alone == ("100%",)
    assert positional == ("x%s", "50%")
    assert named == (2, "named")
    assert count == 5


class Level(enum.IntEnum):
    HIGH = 3


@pytest.mark.parametrize("value", [0, 7, -1, 2**31, 2**63 - 1, -(2**63), 10**30, True, False, Level.HIGH])
def test_integers_are_quoted_as_mysqlclient_itself_quotes_them(probe_table, value):
    connection.ensure_connection()
    driver = connection.connection
    assert isinstance(driver, mysql_backend.Connection)
    assert driver.literal(value) == MySQLdbConnection.literal(driver, value)


def test_a_connection_given_its_own_conversion_for_integers_keeps_it(probe_table, monkeypatch):
    connection.ensure_connection()
    driver = connection.connection
    monkeypatch.setitem(driver.encoders, int, lambda value, encoders: f"CAST({value} AS SIGNED)")

    assert driver.literal(5) == b"CAST(5 AS SIGNED)"


def test_integer_parameters_reach_the_server_as_the_numbers_they_are(probe_table):
    with connection.cursor() as cursor:
        cursor.executemany(f"INSERT INTO {TABLE} VALUES (%s)", [[-2], [0], [2**31 - 1]])
        cursor.execute(f"SELECT id FROM {TABLE} WHERE id IN (%s, %s, %s) ORDER BY id", [2**31 - 1, -2, 5])
        found = [row[0] for row in cursor.fetchall()]
        cursor.execute("SELECT %s + 1, %s", [2**62, True])
        arithmetic = cursor.fetchone()

    assert found == [-2, 2**31 - 1]
    assert arithmetic == (2**62 + 1, 1)


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
