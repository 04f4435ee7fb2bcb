"""Group commit of websocket sends: the drafts that arrive while one batch is
being written go into the next, as one store write and one SQL transaction.

Nothing waits for a batch to fill: a lone send is written at once, as before.
Under load, each batch takes whatever queued up during the previous one, so
the database thread does one job per batch instead of one per message, and
every message is still acknowledged only after it is stored.

The database thread writes batch after batch while drafts keep coming (for at
most DRAIN_SECONDS, then other database work gets its turn), and answers each
batch's senders as soon as that batch is committed. Going back to the event
loop between batches cost the thread the loop's latency twice per batch:
a quarter to a third of its time under load (docs/benchmarks.md, fourth round).
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time

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

Answer = asyncio.Future[services.SentMessage | ApplicationError]
Outcomes = list[services.SentMessage | ApplicationError]
Batch = list[tuple[services.MessageDraft, Answer]]


class SendQueue:
    def __init__(self) -> None:
        # Filled on the loop, taken by the database thread: the lock keeps each batch whole.
        self.waiting: Batch = []
        self.lock = threading.Lock()
        self.writing = False
        self.writer: asyncio.Task | None = None  # held here: the loop keeps only a weak reference to tasks

    async def send(self, draft: services.MessageDraft) -> services.SentMessage:
        """Send one draft with whatever else is queued; raises the ApplicationError that refused it."""
        loop = asyncio.get_running_loop()
        answer = loop.create_future()
        with self.lock:
            self.waiting.append((draft, answer))
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
                    await database_sync_to_async(self._drain)(loop)
                except Exception as error:
                    # Not a batch failing (the drain answers those) but the thread's own work around it:
                    # every draft still queued hears so rather than wait for an answer that never comes.
                    logger.exception("the send queue's database thread failed")
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
                outcome: Outcomes | BaseException = services.send_messages([draft for draft, _ in batch])
            except Exception as error:
                outcome = error
            except BaseException:
                _post(loop, batch, ConnectionError("the database thread stopped"))
                raise
            if not _post(loop, batch, outcome):
                return  # the loop is gone, and its senders with it
            if isinstance(outcome, DatabaseError):
                return
            # Any other failure was this batch's own (a bug in one draft's path, say): the next may go through.


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


# One queue per event loop: the queue's futures belong to the loop that made them.
send_queue = PerLoop(SendQueue).get
