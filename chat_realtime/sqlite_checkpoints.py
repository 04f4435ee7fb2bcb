"""SQLite's checkpoints in a thread of their own, so that no commit waits for one.

In WAL mode a commit appends the pages it changed to the log, and a checkpoint
copies the log back into the database file and syncs the file. SQLite runs one
itself right after whichever commit takes the log past `wal_autocheckpoint`
pages, in that commit's thread. Under the chat load that was one of the send
queue's commits every tenth of a second, and it held up every message in
flight for 10-15 ms: most of the slowest messages (docs/benchmarks.md).
SQLite's documentation suggests the way out: turn the automatic checkpoints
down and run them in a separate thread. `manage.py serve` starts this one; a
PASSIVE checkpoint waits for no reader or writer and none waits for it, and
SQLite lets go of the interpreter lock while it copies and syncs.

The connections keep a threshold of their own, ten times SQLite's default
(chat_realtime.settings, SQLITE_FALLBACK_CHECKPOINT_PAGES): processes without
this thread (manage.py commands, the tests, `serve --reload`) still checkpoint.
So does the server, now and then: under a load that never pauses, a PASSIVE
checkpoint never catches up with the newest commit, and SQLite starts the log
over only once one has; the commit that takes the log past the threshold does
that, copying back only what came since this thread's last pass.
"""

from __future__ import annotations

import logging
import threading

from django.db import DEFAULT_DB_ALIAS, DatabaseError, connections

logger = logging.getLogger(__name__)

# Often enough that a commit's fallback checkpoint finds little left to copy (a tenth of a second's pages);
# idle, the thread costs a quarter of a percent of a core.
CHECKPOINT_EVERY_SECONDS = 0.1
# After a failed checkpoint (the file gone, the disk full): the commits' own checkpoints go on meanwhile.
RETRY_AFTER_SECONDS = 5.0


class WalCheckpoints:
    """A daemon thread checkpointing the SQLite database `alias` every `every` seconds until stopped, on a
    connection of its own. `last` is SQLite's latest answer: (busy, pages in the log, pages copied back)."""

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
        try:
            while not self._stopping.wait(self.every):
                try:
                    with connection.cursor() as cursor:
                        cursor.execute("PRAGMA wal_checkpoint(PASSIVE)")
                        self.last = cursor.fetchone()
                except DatabaseError:
                    logger.exception("SQLite checkpoint of %r failed; next try in %ss", self.alias, RETRY_AFTER_SECONDS)
                    connection.close()
                    self._stopping.wait(RETRY_AFTER_SECONDS)
        finally:
            connection.close()


def start_wal_checkpoints(alias: str = DEFAULT_DB_ALIAS) -> WalCheckpoints | None:
    """Checkpoint `alias` in a thread of its own if it is SQLite; None (nothing started) on any other database."""
    if connections[alias].vendor != "sqlite":
        return None
    return WalCheckpoints(alias).start()
