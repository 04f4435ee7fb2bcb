"""The SQLite backend converts each statement's placeholders once and means what Django's does."""

from __future__ import annotations

import pytest
from django.conf import settings
from django.db import connection
from django.db.backends.sqlite3 import base as django_sqlite

from chat_realtime.sqlite_backend.base import qmark_statement

on_sqlite = pytest.mark.skipif(
    settings.DATABASES["default"]["ENGINE"] != "chat_realtime.sqlite_backend",
    reason="the SQLite backend: the embedded run of the suite tests it (this run is on another database)",
)


class CountingPattern:
    def __init__(self, pattern) -> None:
        self.pattern = pattern
        self.calls = 0

    def sub(self, *args):
        self.calls += 1
        return self.pattern.sub(*args)


@pytest.mark.parametrize(
    "query",
    [
        "SELECT %s",
        "SELECT 1 WHERE 'a%%b' LIKE %s AND x IN (%s, %s)",
        "SELECT '%%s' || %s",  # a literal "%s" in the text, then a placeholder
        "SELECT 1",
    ],
)
def test_a_statement_is_converted_as_django_converts_it(query):
    assert qmark_statement(query) == django_sqlite.SQLiteCursorWrapper.convert_query(None, query)


@on_sqlite
@pytest.mark.django_db
def test_a_statement_run_again_is_not_converted_again(monkeypatch):
    counting = CountingPattern(django_sqlite.FORMAT_QMARK_REGEX)
    monkeypatch.setattr(django_sqlite, "FORMAT_QMARK_REGEX", counting)
    qmark_statement.cache_clear()

    with connection.cursor() as cursor:
        for value in (1, 2, 3):
            cursor.execute("SELECT %s + 1", [value])
            assert cursor.fetchone() == (value + 1,)

    assert counting.calls == 1


@on_sqlite
@pytest.mark.django_db
def test_literal_percent_signs_and_named_parameters_still_mean_what_they_say():
    with connection.cursor() as cursor:
        cursor.execute("SELECT 'a%%s' || %s, 'x' LIKE 'x%%'", ["b"])
        assert cursor.fetchone() == ("a%sb", 1)
        cursor.execute("SELECT %(first)s || %(second)s", {"first": "a", "second": "b"})
        assert cursor.fetchone() == ("ab",)


@on_sqlite
@pytest.mark.django_db
def test_a_statement_run_for_many_rows_is_converted_as_well():
    with connection.cursor() as cursor:
        cursor.execute("CREATE TEMP TABLE placeholder_probe (label TEXT, share TEXT)")
        cursor.executemany("INSERT INTO placeholder_probe VALUES (%s, '100%%')", [["a"], ["b"]])
        cursor.executemany(
            "INSERT INTO placeholder_probe VALUES (%(label)s, %(share)s)", [{"label": "c", "share": "1%"}]
        )
        cursor.execute("SELECT label, share FROM placeholder_probe ORDER BY label")
        assert cursor.fetchall() == [("a", "100%"), ("b", "100%"), ("c", "1%")]
