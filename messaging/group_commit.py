"""Group commit of websocket sends: the drafts that arrive while one batch is
being written go into the next, as one store write and one SQL transaction.

Nothing waits for a batch to fill: a lone send is written at once, as before.
Under load, each batch takes whatever queued up during the previous one, so
the database thread does one job per batch instead of one per message, and
every message is still acknowledged only after it is stored.
"""

from __future__ import annotations

import asyncio

from channels.db import database_sync_to_async

from chat_realtime.errors import ApplicationError
from chat_realtime.per_loop import PerLoop
from messaging import services

# Enough to amortise a commit; small enough that one batch never holds the database thread for long.
MAX_BATCH = 100


class SendQueue:
    def __init__(self) -> None:
        self.waiting: list[tuple[services.MessageDraft, asyncio.Future[services.SentMessage | ApplicationError]]] = []
        self.writing = False
        self.writer: asyncio.Task | None = None  # held here: the loop keeps only a weak reference to tasks

    async def send(self, draft: services.MessageDraft) -> services.SentMessage:
        """Send one draft with whatever else is queued; raises the ApplicationError that refused it."""
        answer = asyncio.get_running_loop().create_future()
        self.waiting.append((draft, answer))
        if not self.writing:
            self.writing = True
            self.writer = asyncio.get_running_loop().create_task(self._write_all())
        # If this sender goes away meanwhile, the write still happens; only the answer is dropped.
        outcome = await answer
        if isinstance(outcome, ApplicationError):
            raise outcome
        return outcome

    async def _write_all(self) -> None:
        try:
            while self.waiting:
                batch, self.waiting = self.waiting[:MAX_BATCH], self.waiting[MAX_BATCH:]
                try:
                    outcomes = await database_sync_to_async(services.send_messages)([draft for draft, _ in batch])
                except BaseException as error:
                    # Refusals are outcomes; this is the batch's transaction failing (the SQL database
                    # away, say): every sender of it hears so, and a resend finds whatever was stored.
                    for _, answer in batch:
                        if not answer.done():
                            answer.set_exception(error if isinstance(error, Exception) else ConnectionError())
                    if not isinstance(error, Exception):
                        raise
                    continue
                for (_, answer), outcome in zip(batch, outcomes, strict=True):
                    if not answer.done():
                        answer.set_result(outcome)
        finally:
            self.writing = False


# One queue per event loop: the queue's futures belong to the loop that made them.
send_queue = PerLoop(SendQueue).get
