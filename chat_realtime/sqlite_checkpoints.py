"""SQLite's checkpoints in a thread of their own, so that commits seldom wait for one.

In WAL mode a commit appends the pages it changed to the log, and a checkpoint
copies the log back into the database file and syncs the file. SQLite runs one
itself after each commit that finds the log at or past `wal_autocheckpoint`
pages, in that commit's thread. Under the chat load that was one of the send
queue's commits every tenth of a second, and it held up every message in
flight for 10-15 ms: most of the slowest messages (docs/benchmarks.md).
SQLite's documentation suggests the way out: turn the automatic checkpoints
down and run them in a separate thread. `manage.py serve` starts this one; a
PASSIVE checkpoint waits for no reader or writer and none waits for it, and
Python's sqlite3 module lets go of the interpreter lock while SQLite copies.

The connections keep a threshold of their own, ten times SQLite's default
(chat_realtime.settings, SQLITE_FALLBACK_CHECKPOINT_PAGES): processes without
this thread (manage.py commands, the tests) still checkpoint. So does the
server, now and then: under a load that seldom pauses, a PASSIVE checkpoint
seldom catches up with the newest commit, and SQLite starts the log over only
once one has; the commits past the threshold do that, each copying back what
came since the last pass. Several workers on one database file (`make
run-cluster` on SQLite) each run a thread; passes that meet skip each other.
"""

from __future__ import annotations

import logging
import threading

from django.db import DEFAULT_DB_ALIAS, connections
from django.db.backends.base.base import BaseDatabaseWrapper

logger = logging.getLogger(__name__)

# Often enough that a commit past the threshold finds little left to copy (a tenth of a second's pages).
CHECKPOINT_EVERY_SECONDS = 0.1
# After a failed checkpoint (a disk error, say): the commits' own checkpoints go on meanwhile.
RETRY_AFTER_SECONDS = 5.0


class WalCheckpoints:
    """A daemon thread checkpointing the SQLite database `alias` every `every` seconds until stopped, on a
    connection of its own.

    `last` is SQLite's answer to the latest pass that went through: (busy, pages
    in the log, pages copied back), (1, -1, -1) when another checkpoint held the log.
    """

    def __init__(self, alias: str = DEFAULT_DB_ALIAS, *, every: float = CHECKPOINT_EVERY_SECONDS) -> None:
        self.alias = alias
        self.every = every
        self.last: tuple[int, int, int] | None = None
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"sqlite-checkpoints-{alias}", daemon=True)

    def start(self) -> WalCheckpoints:
        self._thread.start()
        return self

    def stop(self, timeout: float = 5.0) -> None:
        self._stopping.set()
        self._thread.join(timeout)

    def is_alive(self) -> bool:
        return self._thread.is_alive()

    def _run(self) -> None:
        connection = connections[self.alias]  # this thread's own
        wait = self.every
        try:
            while not self._stopping.wait(wait):
                try:
                    self.last = self._checkpoint(connection)
                    wait = self.every
                except Exception:
                    # Whatever it was, the thread goes on: without it every commit past the threshold would
                    # copy 10,000 pages (tens of milliseconds with every message waiting).
                    logger.exception("SQLite checkpoint of %r failed; next try in %ss", self.alias, RETRY_AFTER_SECONDS)
                    wait = RETRY_AFTER_SECONDS
                    try:
                        connection.close()
                    except Exception:
                        logger.exception("closing the checkpoint connection of %r failed", self.alias)
        finally:
            connection.close()

    def _checkpoint(self, connection: BaseDatabaseWrapper) -> tuple[int, int, int]:
        connection.ensure_connection()
        # On the driver's connection, not a Django cursor: ten a second would fill the query log under DEBUG.
        with connection.wrap_database_errors:
            return connection.connection.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()


def start_wal_checkpoints(alias: str = DEFAULT_DB_ALIAS) -> WalCheckpoints | None:
    """Checkpoint `alias` in a thread of its own if it is SQLite; None (nothing started) on any other database."""
    if connections[alias].vendor != "sqlite":
        return None
    return WalCheckpoints(alias).start()
