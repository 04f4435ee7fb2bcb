"""Django's SQLite backend, with each statement's placeholders converted once.

Django writes SQL with `%s` placeholders, and its SQLite backend turns them
into SQLite's `?` with a regular expression on every execute. The send path's
statements are long (a batch of twenty sends inserts 120 values, then updates
40 memberships by CASE) and the same texts come back batch after batch: the
conversion took 8 % of a batch's time in the database thread
(docs/benchmarks.md). Here each text is converted once and remembered. The
texts hold placeholders, names and fixed words (and the numbers of LIMIT and
OFFSET, which Django writes in), so they repeat; lists of other lengths make
other texts, and the least recently used are forgotten past
CONVERTED_STATEMENTS.
"""

from __future__ import annotations

import functools

from django.db.backends.sqlite3 import base

CONVERTED_STATEMENTS = 1024


@functools.lru_cache(maxsize=CONVERTED_STATEMENTS)
def qmark_statement(query: str) -> str:
    """A statement with Django's `%s` placeholders in SQLite's `?` style (`%%` is a literal `%`)."""
    return base.FORMAT_QMARK_REGEX.sub("?", query).replace("%%", "%")


class SQLiteCursorWrapper(base.SQLiteCursorWrapper):
    def convert_query(self, query: str, *, param_names: list[str] | None = None) -> str:
        if param_names is None:
            return qmark_statement(query)
        return super().convert_query(query, param_names=param_names)


class DatabaseWrapper(base.DatabaseWrapper):
    def create_cursor(self, name=None):
        return self.connection.cursor(factory=SQLiteCursorWrapper)
