"""Django's MySQL/MariaDB backend, with fewer round trips around the statements.

A round trip under load costs far more than what the server does for it
(docs/benchmarks.md, seventh profile): of the eleven a batch of sends made,
two only turned autocommit off and on, and the health check added a ping to
most batches. Three changes, each keeping what it replaces means:

- Transactions open with START TRANSACTION. Django's own backend turns the
  session's autocommit off to begin a transaction and on again after it: two
  statements besides the COMMIT. START TRANSACTION opens one without touching
  autocommit, and COMMIT or ROLLBACK ends it. Django already opens
  transactions this way on SQLite (`_start_transaction_under_autocommit`);
  manual transaction management (`transaction.set_autocommit(False)`) still
  turns autocommit off. It goes to the server with the transaction's first
  statement, as one multi-statement text (mysqlclient turns multi-statements
  on): a transaction that runs no statement costs nothing, and one that fails
  before its first statement sends no ROLLBACK. Statements sent on the
  driver's connection itself, past Django's cursors, do not take what waits
  with them. One difference: a statement that commits implicitly (DDL)
  inside an atomic block ends the transaction, and what follows it in the
  block then commits statement by statement, where with autocommit off it
  would have opened a new transaction. The app runs no DDL in atomic blocks
  on MySQL (its migrations are not atomic there). A deadlock, which rolls
  the whole transaction back on the server, marks the atomic block to roll
  back, so that nothing after it runs outside a transaction.
- A write whose outcome nobody reads (`defer_write`: a batch of sends' update
  of its chats' activity and of the read states) waits in an atomic block
  for its next statement or its end and goes with it: a batch of sends takes
  four round trips where it took seven (docs/benchmarks.md). What follows it
  sees it; a rollback, of the block or to a savepoint taken before it, takes
  it back unsent; if it fails, its error reaches the statement it went with
  and the block is marked to roll back, so that nothing after it commits (a
  nested block's write that fails with its RELEASE SAVEPOINT fails that block
  alone, which Django then rolls back to its savepoint, as for any error of
  its own). Outside atomic blocks, and in those of a manual transaction
  (whose end commits nothing), it runs at once.
- The health check (CONN_HEALTH_CHECKS) skips its ping when the connection
  answered within the last RECENTLY_ALIVE_SECONDS, as connection pools such
  as HikariCP do. Django pings before the first query after every
  `close_old_connections`, which Channels runs around each database call: once
  per batch of sends, microseconds after the last one. A connection that died
  in that window fails its next statement with a clear error, and the
  connection is replaced on the next check (after an error, Django pings it
  whatever this says).

And one change that saves CPU rather than round trips: the driver's
connection quotes plain integers itself (`Connection.literal`), where
mysqlclient goes through its general conversion path, about ten times
slower, to the same text; a batch of sends binds some fifteen integers a
message (docs/benchmarks.md). A connection given its own conversion for
integers (`conv` in OPTIONS) keeps it.
"""

from __future__ import annotations

import time

from django.db import IntegrityError
from django.db.backends.mysql import base
from django.db.backends.utils import debug_transaction
from django.utils.asyncio import async_unsafe
from MySQLdb.connections import Connection as MySQLdbConnection
from MySQLdb.converters import Thing2Str

RECENTLY_ALIVE_SECONDS = 0.5

START_TRANSACTION = b"START TRANSACTION"
# Between statements sent as one text. The line break first ends a statement's closing line comment
# (`-- ...` or `# ...`), which would otherwise take the separator and the next statement with it.
SEPARATOR = b"\n;\n"
ER_LOCK_DEADLOCK = 1213


class Connection(MySQLdbConnection):
    """mysqlclient's connection, quoting an integer as the text of its number (what mysqlclient's own
    conversion makes of it too) without that conversion's several calls per value."""

    def literal(self, o):
        # Not bool nor another subclass of int, and not where the connection was given its own conversion
        # for int (`conv` in OPTIONS): those keep the driver's own path.
        if type(o) is int and self.encoders.get(int) is Thing2Str:
            return b"%d" % o
        return super().literal(o)


class CursorWrapper(base.CursorWrapper):
    """Sends the connection's waiting statements (each bound to its own parameters) with the next one."""

    def __init__(self, cursor, db: DatabaseWrapper) -> None:
        super().__init__(cursor)
        self.db = db

    def execute(self, query, args=None):
        # Bound first, by mysqlclient's own binding (what its `execute` uses): a statement that fails to bind
        # fails where it is asked for, and takes nothing that waits with it.
        bound = self.cursor._mogrify(query, args)
        if query is self.db.deferring:
            self.db.deferring = None
            self.cursor._executed = bound.rstrip().rstrip(b";")  # what the query log shows
            self.db.waiting.append(self.cursor._executed)
            return 0
        waiting = self.db.take_waiting()
        if not waiting:
            return self._execute_bound(bound)
        rowcount = self.run_together([*waiting, bound])
        self.cursor._executed = bound  # the query log shows the caller's statement; the others were logged already
        return rowcount

    def executemany(self, query, args):
        self.send_waiting()
        return super().executemany(query, args)

    def callproc(self, procname, args=()):
        self.send_waiting()
        return self.cursor.callproc(procname, args)

    def send_waiting(self) -> None:
        waiting = self.db.take_waiting()
        if waiting:
            self.run_together(waiting, callers=0)

    def run_together(self, statements: list[bytes], *, callers: int = 1, doom: bool = True) -> int:
        """Run bound `statements` in one round trip; the cursor is left on the last one's result.

        The last `callers` statements are the caller's own, the others waited for it. The
        server stops at the first that fails. If that one waited, its error reaches the
        caller of another: with `doom`, the atomic block is marked to roll back, so that
        nothing written after the failed one is committed.
        """
        answered = 0
        try:
            self._execute_bound(SEPARATOR.join(statements))
            answered = 1
            while answered < len(statements):
                self._next_result()
                answered += 1
        except Exception:
            if doom and answered < len(statements) - callers and self.db.in_atomic_block:
                self.db.needs_rollback = True
            raise
        return self.cursor.rowcount

    def _execute_bound(self, bound: bytes) -> int:
        try:
            return super().execute(bound)  # no parameters: bound already
        except base.Database.OperationalError as error:
            self._check_deadlock(error)
            raise

    def _next_result(self) -> None:
        try:
            answered = self.cursor.nextset()
        except base.Database.OperationalError as error:
            self._check_deadlock(error)
            if error.args[0] in self.codes_for_integrityerror:
                raise IntegrityError(*error.args) from error
            raise
        if answered is None:  # a DatabaseError, so that an atomic block rolls back
            raise base.Database.OperationalError("the server answered fewer statements than were sent together")

    def _check_deadlock(self, error: Exception) -> None:
        """A deadlock rolls the whole transaction back on the server, and what follows in the atomic block would
        then commit statement by statement (the session's autocommit is on): the block is marked to roll back."""
        if error.args and error.args[0] == ER_LOCK_DEADLOCK and self.db.in_atomic_block:
            self.db.needs_rollback = True


class DatabaseWrapper(base.DatabaseWrapper):
    # When the server last answered a commit or a ping on this connection (time.monotonic()).
    alive_at: float | None = None

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        # Bound statements that go out with the next one (or the COMMIT): START TRANSACTION, deferred writes.
        self.waiting: list[bytes] = []
        self.deferring: str | None = None  # the text of the write `defer_write` is passing to the cursor

    def connect(self) -> None:
        self.waiting = []
        super().connect()

    @async_unsafe
    def get_new_connection(self, conn_params):
        # Django 5.2's own, but for the connection's class: look again when upgrading Django.
        connection = Connection(**conn_params)
        # As Django's own backend does: mysqlclient's bytes encoder does not work (PyMySQL/mysqlclient#489).
        if connection.encoders.get(bytes) is bytes:
            connection.encoders.pop(bytes)
        return connection

    def create_cursor(self, name=None) -> CursorWrapper:
        return CursorWrapper(self.connection.cursor(), self)

    def take_waiting(self) -> list[bytes]:
        waiting, self.waiting = self.waiting, []
        return waiting

    def defer_write(self, sql: str, params: list | dict) -> None:
        """Run a write whose outcome nobody reads with the atomic block's next statement or its end.

        Through Django's cursor all the same: the query log and execute wrappers see it
        here (a wrapper that rewrites its text makes it run at once). An error it meets
        reaches the statement it goes out with, and the block then rolls back. Outside
        an atomic block, and in one inside a manual transaction, it runs at once.
        """
        # Only where the block's end commits (or rolls back) what it did: in a manual transaction nothing would.
        self.deferring = sql if self.in_atomic_block and self.commit_on_exit else None
        try:
            with self.cursor() as cursor:
                cursor.execute(sql, params)
        finally:
            self.deferring = None

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
        if self.connection is None or waiting == [START_TRANSACTION]:
            return  # nothing of the transaction reached the server: nothing to commit
        if waiting:
            with debug_transaction(self, "COMMIT"), self.wrap_database_errors:
                self._run_alone([*waiting, b"COMMIT"])  # the COMMIT is this call's own
        else:
            super()._commit()
        self.alive_at = time.monotonic()

    def _rollback(self) -> None:
        waiting = self.take_waiting()
        if waiting[:1] != [START_TRANSACTION]:  # else nothing of the transaction reached the server
            super()._rollback()

    def _savepoint_commit(self, sid) -> None:
        waiting = self.take_waiting()
        if not waiting:
            return super()._savepoint_commit(sid)
        release = self.ops.savepoint_commit_sql(sid).encode()
        with self.wrap_database_errors:
            # If an inner block's write fails here, Atomic rolls back to the savepoint: the outer block goes on.
            self._run_alone([*waiting, release], doom=False)

    def _savepoint_rollback(self, sid) -> None:
        # All that waits was asked for after the savepoint (making it sent what waited before): undone unsent.
        self.waiting = []
        super()._savepoint_rollback(sid)

    def _run_alone(self, statements: list[bytes], *, doom: bool = True) -> None:
        cursor = self.create_cursor()
        try:
            cursor.run_together(statements, doom=doom)
        finally:
            cursor.close()

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
