"""Django's ASGI handler, with each request's sync work on a pooled thread rather than a new one.

Django runs a request's middleware and views on a thread of its own, made for
the request (asgiref's ThreadSensitiveContext) and ended with it. Database
connections belong to threads, so every request also opened a connection, and
one kept for CONN_MAX_AGE on a thread about to end was never used again, only
left for the garbage collector to close. Measured (docs/benchmarks.md), the
thread and the connection were most of a small API request's time.

Here a request borrows an idle one-thread executor and gives it back when it
ends: one request at a time on each thread, as Django needs, and the thread's
database connection serves the next request. Django's `close_old_connections`
closes it, when a request starts or ends on that thread, once older than
CONN_MAX_AGE or broken, as under WSGI; so up to IDLE_THREADS_KEPT connections a
worker stay open between requests (count them into the database's connection
limit). Requests that arrive together still run side by side, each on its own
thread.

The middleware chain runs on that thread too, as one synchronous call, as under
WSGI. Built for async, Django's chain hopped between the loop and the thread at
every middleware that is sync-only (WhiteNoise) and around each `process_*`
method of the others: several thread hops a request instead of one.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

from asgiref.sync import ThreadSensitiveContext, sync_to_async
from django.core.handlers.asgi import ASGIHandler
from django.http import HttpRequest, HttpResponseBase

# Threads kept waiting for the next request; more are made while more requests run at once.
IDLE_THREADS_KEPT = 8


class RequestThreads:
    def __init__(self, keep: int = IDLE_THREADS_KEPT) -> None:
        self.keep = keep
        self.idle: list[ThreadPoolExecutor] = []

    def borrow(self) -> ThreadPoolExecutor:
        if self.idle:
            return self.idle.pop()
        return ThreadPoolExecutor(max_workers=1, thread_name_prefix="request")

    def give_back(self, executor: ThreadPoolExecutor) -> None:
        if len(self.idle) < self.keep:
            self.idle.append(executor)
        else:
            # Anything still queued on it (a cancelled request's sync code) finishes first.
            executor.shutdown(wait=False)


class PooledThreadsASGIHandler(ASGIHandler):
    def __init__(self) -> None:
        super().__init__()
        # Only touched from the event loop (borrow before, give back after each request): no lock.
        self.threads = RequestThreads()

    def load_middleware(self, is_async: bool = False) -> None:
        super().load_middleware(is_async=False)

    async def get_response_async(self, request: HttpRequest) -> HttpResponseBase:
        return await sync_to_async(self.get_response, thread_sensitive=True)(request)

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            raise ValueError(f"Django can only handle ASGI/HTTP connections, not {scope['type']}.")
        executor = self.threads.borrow()
        try:
            async with ThreadSensitiveContext(executor=executor):
                await self.handle(scope, receive, send)
        finally:
            self.threads.give_back(executor)
