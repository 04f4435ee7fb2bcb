"""Django's MySQL/MariaDB backend, with fewer round trips around the statements.

A round trip under load costs far more than what the server does for it
(docs/benchmarks.md, seventh profile): of the eleven a batch of sends made,
two only turned autocommit off and on, and the health check added a ping to
most batches. Two changes, each keeping what it replaces means:

- Transactions open with START TRANSACTION. Django's own backend turns the
  session's autocommit off to begin a transaction and on again after it: two
  statements besides the COMMIT. START TRANSACTION opens one without touching
  autocommit, and COMMIT or ROLLBACK ends it. Django already opens transactions
  this way on SQLite (`_start_transaction_under_autocommit`); manual
  transaction management (`transaction.set_autocommit(False)`) still turns
  autocommit off. One difference: a statement that commits implicitly (DDL)
  inside an atomic block ends the transaction, and what follows it in the
  block then commits statement by statement, where with autocommit off it
  would have opened a new transaction. The app runs no DDL in atomic blocks
  on MySQL (its migrations are not atomic there).
- The health check (CONN_HEALTH_CHECKS) skips its ping when the connection
  answered within the last RECENTLY_ALIVE_SECONDS, as connection pools such
  as HikariCP do. Django pings before the first query after every
  `close_old_connections`, which Channels runs around each database call: once
  per batch of sends, microseconds after the last one. A connection that died
  in that window fails its next statement with a clear error, and the
  connection is replaced on the next check (after an error, Django pings it
  whatever this says).
"""

from __future__ import annotations

import time

from django.db.backends.mysql import base

RECENTLY_ALIVE_SECONDS = 0.5


class DatabaseWrapper(base.DatabaseWrapper):
    # When the server last answered a commit or a ping on this connection (time.monotonic()).
    alive_at: float | None = None

    def _start_transaction_under_autocommit(self) -> None:
        with self.cursor() as cursor:
            cursor.execute("START TRANSACTION")

    def _set_autocommit(self, autocommit: bool) -> None:
        # After a transaction opened by START TRANSACTION the session's autocommit is still on:
        # the driver knows the session's state without asking the server.
        if self.connection.get_autocommit() != autocommit:
            super()._set_autocommit(autocommit)

    def _commit(self) -> None:
        super()._commit()
        self.alive_at = time.monotonic()

    def is_usable(self) -> bool:
        usable = super().is_usable()
        if usable:
            self.alive_at = time.monotonic()
        return usable

    def close_if_health_check_failed(self) -> None:
        recently_alive = self.alive_at is not None and time.monotonic() - self.alive_at < RECENTLY_ALIVE_SECONDS
        if self.connection is not None and recently_alive:
            self.health_check_done = True
            return
        super().close_if_health_check_failed()
