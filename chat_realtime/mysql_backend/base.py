"""Django's MySQL/MariaDB backend, opening each transaction with START TRANSACTION.

Django's own backend turns the session's autocommit off to begin a transaction
and on again after it: two statements around every transaction besides its
COMMIT, each a round trip to the server. A round trip under load costs far
more than what the server does for it (docs/benchmarks.md, seventh profile),
and a batch of sends made eleven. START TRANSACTION opens a transaction
without touching autocommit, and COMMIT or ROLLBACK ends it, so an atomic
block costs one round trip less. Django already opens transactions this way
on SQLite (`_start_transaction_under_autocommit`); manual transaction
management (`transaction.set_autocommit(False)`) still turns autocommit off.
"""

from __future__ import annotations

from django.db.backends.mysql import base


class DatabaseWrapper(base.DatabaseWrapper):
    def _start_transaction_under_autocommit(self) -> None:
        with self.cursor() as cursor:
            cursor.execute("START TRANSACTION")

    def _set_autocommit(self, autocommit: bool) -> None:
        # After a transaction opened by START TRANSACTION the session's autocommit is still on:
        # the driver knows the session's state without asking the server.
        if self.connection.get_autocommit() != autocommit:
            super()._set_autocommit(autocommit)
