"""Group commit of websocket writes: the sends (and the reads) that arrive while one batch is being
written go into the next, as one SQL transaction (and, for sends, one store write).

Nothing waits for a batch to fill: a lone send is written at once, as before.
Under load, each batch takes whatever queued up during the previous one, so
the database thread does one job per batch instead of one per message, and
every message is still acknowledged only after it is stored.

The database thread writes batch after batch while jobs keep coming (for at
most DRAIN_SECONDS, then other database work gets its turn), and answers each
batch's senders as soon as that batch is committed. Going back to the event
loop between batches cost the thread the loop's latency twice per batch:
a quarter to a third of its time under load (docs/benchmarks.md, fourth round).

Reads queue the same way: a browser marks each message read as it arrives, so
there is a read for about every message sent (docs/benchmarks.md, eighth profile).
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable
from typing import Any, Generic, TypeVar

from channels.db import database_sync_to_async
from django.db import DatabaseError

from chat_realtime.errors import ApplicationError
from chat_realtime.per_loop import PerLoop
from messaging import services

logger = logging.getLogger(__name__)

# Enough to amortise a commit; small enough that one batch never holds the database thread for long.
MAX_BATCH = 100
# How long the database thread keeps writing batches before other database work (reads, presence) gets a turn.
DRAIN_SECONDS = 0.02

Job = TypeVar("Job")
Result = TypeVar("Result")
Answer = asyncio.Future[Any]
Outcomes = list[Any]
Batch = list[tuple[Any, Answer]]


class GroupCommitQueue(Generic[Job, Result]):
    """Jobs written in batches by `write_batch`, which answers each job's result or the ApplicationError
    that refused it, in the order of the jobs; `name` names the queue in the log."""

    def __init__(self, name: str, write_batch: Callable[[list[Job]], list[Result | ApplicationError]]) -> None:
        self.name = name
        self.write_batch = write_batch
        # Filled on the loop, taken by the database thread: the lock keeps each batch whole.
        self.waiting: Batch = []
        self.lock = threading.Lock()
        self.writing = False
        self.writer: asyncio.Task | None = None  # held here: the loop keeps only a weak reference to tasks
        # Wrapped once (making a wrapper inspects the function anew, and a drain starts every few batches);
        # `_drain` is still looked up at each drain.
        self.drain_in_database_thread = database_sync_to_async(lambda loop: self._drain(loop))

    async def submit(self, job: Job) -> Result:
        """Write one job with whatever else is queued; raises the ApplicationError that refused it."""
        loop = asyncio.get_running_loop()
        answer = loop.create_future()
        with self.lock:
            self.waiting.append((job, answer))
        if not self.writing:
            self.writing = True
            self.writer = loop.create_task(self._write_all())
        # If this sender goes away meanwhile, the write still happens; only the answer is dropped.
        outcome = await answer
        if isinstance(outcome, ApplicationError):
            raise outcome
        return outcome

    async def _write_all(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            while self.waiting:
                try:
                    await self.drain_in_database_thread(loop)
                except Exception as error:
                    # Not a batch failing (the drain answers those) but the thread's own work around it:
                    # every job still queued hears so rather than wait for an answer that never comes.
                    logger.exception("the database thread of the %s queue failed", self.name)
                    with self.lock:
                        stranded, self.waiting = self.waiting, []
                    _answer(stranded, error)
        finally:
            self.writing = False

    def _next_batch(self) -> Batch:
        with self.lock:
            batch, self.waiting = self.waiting[:MAX_BATCH], self.waiting[MAX_BATCH:]
        return batch

    def _drain(self, loop: asyncio.AbstractEventLoop) -> None:
        """In the database thread: write batches until none is waiting or DRAIN_SECONDS are up, and
        answer each batch's senders on `loop` as soon as it is committed.

        A batch whose transaction failed (the SQL database away, say) ends the drain, so that the
        connection is checked before the next one; every sender of it hears the error, and a resend
        finds whatever was stored.
        """
        until = time.monotonic() + DRAIN_SECONDS
        while time.monotonic() < until:
            batch = self._next_batch()
            if not batch:
                return
            try:
                outcome: Outcomes | BaseException = self.write_batch([job for job, _ in batch])
            except Exception as error:
                outcome = error
            except BaseException:
                _post(loop, batch, ConnectionError("the database thread stopped"))
                raise
            if not _post(loop, batch, outcome):
                return  # the loop is gone, and its senders with it
            if isinstance(outcome, DatabaseError):
                return
            # Any other failure was this batch's own (a bug in one job's path, say): the next may go through.


def _post(loop: asyncio.AbstractEventLoop, batch: Batch, outcome: Outcomes | BaseException) -> bool:
    """Hand a batch's outcome to its senders' loop; False if that loop has closed."""
    try:
        loop.call_soon_threadsafe(_answer, batch, outcome)
    except RuntimeError:
        return False
    return True


def _answer(batch: Batch, outcome: Outcomes | BaseException) -> None:
    """On the loop: each sender of `batch` gets its outcome (or the error that failed the whole batch)."""
    for index, (_, answer) in enumerate(batch):
        if answer.done():
            continue
        if isinstance(outcome, BaseException):
            answer.set_exception(outcome)
        else:
            answer.set_result(outcome[index])


# One queue of each per event loop: the queue's futures belong to the loop that made them.
# The services are looked up at each batch (tests replace them).
send_queue: Callable[[], GroupCommitQueue[services.MessageDraft, services.SentMessage]] = PerLoop(
    lambda: GroupCommitQueue("send", lambda drafts: services.send_messages(drafts))
).get
read_queue: Callable[[], GroupCommitQueue[services.ReadMark, None]] = PerLoop(
    lambda: GroupCommitQueue("read", lambda marks: services.mark_reads(marks))
).get
