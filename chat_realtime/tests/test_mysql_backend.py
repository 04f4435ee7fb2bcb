"""The MySQL/MariaDB backend opens transactions with START TRANSACTION and keeps their meaning:
what an atomic block does is seen by others at its end or never, and outside one every statement
commits on its own. Needs MySQL/MariaDB (DB_HOST)."""

from __future__ import annotations

import MySQLdb
import pytest
from django.db import connection, transaction

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


@pytest.fixture
def other_session():
    """A second session on the same database: it sees only what is committed."""
    settings = connection.settings_dict
    session = MySQLdb.connect(
        host=settings["HOST"],
        port=int(settings["PORT"]),
        user=settings["USER"],
        password=settings["PASSWORD"],
        database=settings["NAME"],
        autocommit=True,
    )
    yield session
    session.close()


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


def test_an_atomic_block_is_seen_by_others_at_its_end_or_never(probe_table, other_session):
    with transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute(f"INSERT INTO {TABLE} VALUES (1)")
        assert not seen_by(other_session, 1)
    assert seen_by(other_session, 1)

    with pytest.raises(RuntimeError), transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute(f"INSERT INTO {TABLE} VALUES (2)")
        raise RuntimeError("the block fails")
    assert not seen_by(other_session, 2)


def test_outside_atomic_blocks_each_statement_commits_on_its_own(probe_table, other_session):
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(f"INSERT INTO {TABLE} VALUES (1)")

    with connection.cursor() as cursor:
        cursor.execute(f"INSERT INTO {TABLE} VALUES (2)")

    assert seen_by(other_session, 2)


def test_manual_transactions_still_commit_only_when_told(probe_table, other_session):
    transaction.set_autocommit(False)
    try:
        with connection.cursor() as cursor:
            cursor.execute(f"INSERT INTO {TABLE} VALUES (1)")
        assert not seen_by(other_session, 1)
        transaction.commit()
        assert seen_by(other_session, 1)
        with connection.cursor() as cursor:
            cursor.execute(f"INSERT INTO {TABLE} VALUES (2)")
        transaction.rollback()
    finally:
        transaction.set_autocommit(True)

    assert not seen_by(other_session, 2)
    with connection.cursor() as cursor:
        cursor.execute(f"INSERT INTO {TABLE} VALUES (3)")
    assert seen_by(other_session, 3)
