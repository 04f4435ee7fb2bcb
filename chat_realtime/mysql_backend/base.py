"""Django's MySQL/MariaDB backend, with fewer round trips around the statements.

A round trip under load costs far more than what the server does for it
(docs/benchmarks.md, seventh profile): of the eleven a batch of sends made,
two only turned autocommit off and on, and the health check added a ping to
most batches. Three changes, each keeping what it replaces means:

- Transactions open with START TRANSACTION. Django's own backend turns the
  session's autocommit off to begin a transaction and on again after it: two
  statements besides the COMMIT. START TRANSACTION opens one without touching
  autocommit, and COMMIT or ROLLBACK ends it. It goes to the server with the
  transaction's first statement, as one multi-statement text (mysqlclient
  turns multi-statements on): a transaction that runs no statement costs
  nothing, and a ROLLBACK before its first statement is not sent either. Django already opens transactions
  this way on SQLite (`_start_transaction_under_autocommit`); manual
  transaction management (`transaction.set_autocommit(False)`) still turns
  autocommit off. One difference: a statement that commits implicitly (DDL)
  inside an atomic block ends the transaction, and what follows it in the
  block then commits statement by statement, where with autocommit off it
  would have opened a new transaction. The app runs no DDL in atomic blocks
  on MySQL (its migrations are not atomic there).
- A write whose outcome nobody reads (`defer_write`: a batch of sends' update
  of its chats' activity and of the read states) waits in a transaction for
  its next statement or its COMMIT and goes with it: a batch of sends takes
  four round trips where it took seven (docs/benchmarks.md). What follows it
  in the transaction sees it, a rollback takes it back with the rest, and if
  it fails the error reaches the statement it went with and the transaction
  is marked to roll back: nothing after it commits.
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
from typing import Any

from django.db import IntegrityError
from django.db.backends.mysql import base

RECENTLY_ALIVE_SECONDS = 0.5

Statement = tuple[str, Any]  # SQL and its parameters (None: the text is not %-formatted)
START_TRANSACTION: Statement = ("START TRANSACTION", None)


def _together(statements: list[Statement]) -> Statement:
    """Several statements as one text (the connection runs it as a multi-statement) and their parameters."""
    texts, values = [], []
    for sql, params in statements:
        sql = sql.rstrip().rstrip(";")
        if params is None:
            texts.append(sql.replace("%", "%%"))
        else:
            texts.append(sql)
            values.extend(params)
    return "; ".join(texts), values


class CursorWrapper(base.CursorWrapper):
    """Sends the connection's waiting statements with the next one, in one round trip."""

    def __init__(self, cursor, db: DatabaseWrapper) -> None:
        super().__init__(cursor)
        self.db = db

    def execute(self, query, args=None):
        if self.db.deferring:
            self.db.waiting.append((query, args))
            return 0
        if not self.db.waiting:
            return super().execute(query, args)
        if isinstance(args, dict):  # named parameters do not combine with the others' positional ones
            self.run_together(self.db.take_waiting())
            return super().execute(query, args)
        return self.run_together([*self.db.take_waiting(), (query, args)])

    def executemany(self, query, args):
        if self.db.waiting:
            self.run_together(self.db.take_waiting())
        return super().executemany(query, args)

    def run_together(self, statements: list[Statement]) -> int:
        """Run `statements` in one round trip; the cursor is left on the last one's result.

        The server stops at the first that fails. If that was not the last, the error
        reaches the caller of a later statement: the transaction is marked to roll
        back, so that nothing written after the failed one is committed.
        """
        answered = 0
        try:
            super().execute(*_together(statements))
            answered = 1
            while answered < len(statements):
                self._next_result()
                answered += 1
        except Exception:
            if answered < len(statements) - 1 and self.db.in_atomic_block:
                self.db.needs_rollback = True
            raise
        return self.cursor.rowcount

    def _next_result(self) -> None:
        try:
            self.cursor.nextset()
        except base.Database.OperationalError as error:
            if error.args[0] in self.codes_for_integrityerror:
                raise IntegrityError(*error.args) from error
            raise


class DatabaseWrapper(base.DatabaseWrapper):
    # When the server last answered a commit or a ping on this connection (time.monotonic()).
    alive_at: float | None = None

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        # Statements that go out with the next one (or the COMMIT): START TRANSACTION, writes nobody reads.
        self.waiting: list[Statement] = []
        self.deferring = False

    def connect(self) -> None:
        self.waiting = []
        super().connect()

    def create_cursor(self, name=None) -> CursorWrapper:
        return CursorWrapper(self.connection.cursor(), self)

    def take_waiting(self) -> list[Statement]:
        waiting, self.waiting = self.waiting, []
        return waiting

    def defer_write(self, sql: str, params: list) -> None:
        """Run a write whose outcome nobody reads with the transaction's next statement or its COMMIT.

        Through Django's cursor all the same (the query log and execute wrappers see it
        here). An error it meets reaches the statement it goes out with. Outside a
        transaction it runs at once.
        """
        self.deferring = self.in_atomic_block or not self.get_autocommit()
        try:
            with self.cursor() as cursor:
                cursor.execute(sql, params)
        finally:
            self.deferring = False

    def _start_transaction_under_autocommit(self) -> None:
        # Sent with the transaction's first statement: a transaction that runs none costs no round trip.
        self.waiting.append(START_TRANSACTION)

    def _set_autocommit(self, autocommit: bool) -> None:
        # After a transaction opened by START TRANSACTION the session's autocommit is still on:
        # the driver knows the session's state without asking the server.
        if self.connection.get_autocommit() != autocommit:
            super()._set_autocommit(autocommit)

    def _commit(self) -> None:
        waiting = self.take_waiting()
        if waiting == [START_TRANSACTION]:
            return  # the transaction ran no statement: nothing to commit
        if waiting:
            cursor = self.create_cursor()
            try:
                with self.wrap_database_errors:
                    cursor.run_together([*waiting, ("COMMIT", None)])
            finally:
                cursor.close()
        else:
            super()._commit()
        self.alive_at = time.monotonic()

    def _rollback(self) -> None:
        waiting = self.take_waiting()
        if waiting[:1] != [START_TRANSACTION]:
            super()._rollback()  # else nothing of the transaction reached the server

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
