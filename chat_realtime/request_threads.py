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

Around the chain, Django's ASGI handler took three more hops: one to send
`request_started`, one for the request, one to close the response (which sends
`request_finished`). A hop cost 0.23 ms of CPU here (measured,
docs/benchmarks.md); `handle` makes the three one. The price: a response whose
content is in memory is closed, and `request_finished` sent, just before it
goes out rather than just after (a database connection past CONN_MAX_AGE is
then closed on the way, not after).
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

from asgiref.sync import ThreadSensitiveContext, sync_to_async
from django.core import signals
from django.core.exceptions import RequestAborted
from django.core.handlers.asgi import ASGIHandler, get_script_prefix
from django.http import FileResponse, HttpResponseBase
from django.urls import set_script_prefix

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

    async def handle(self, scope, receive, send) -> None:
        """Django's `ASGIHandler.handle`, with one thread hop for the request's sync work instead of three.

        As under Django's handler with sync views, a client that leaves mid-request does not stop the
        view; the server drops its response. A streaming response is closed once its content is sent;
        unlike under Django's handler, a client that leaves does not stop one midway (the app streams
        only files, which end).
        """
        try:
            body_file = await self.read_body(receive)
        except RequestAborted:
            return
        set_script_prefix(get_script_prefix(scope))
        try:
            response = await sync_to_async(self.respond, thread_sensitive=True)(scope, body_file)
            try:
                await self.send_response(response, send)
            finally:
                if response.streaming:
                    await sync_to_async(response.close, thread_sensitive=True)()
        finally:
            body_file.close()

    def respond(self, scope, body_file) -> HttpResponseBase:
        """On the request's thread: `request_started`, the request, and (if its content is in memory)
        the response's close, which sends `request_finished`."""
        signals.request_started.send(sender=self.__class__, scope=scope)
        request, response = self.create_request(scope, body_file)
        if request is not None:
            response = self.get_response(request)
            response._handler_class = self.__class__
            if isinstance(response, FileResponse):
                response.block_size = self.chunk_size  # as Django's handler: the server chunks it
        if not response.streaming:
            response.close()
        return response

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            raise ValueError(f"Django can only handle ASGI/HTTP connections, not {scope['type']}.")
        executor = self.threads.borrow()
        try:
            async with ThreadSensitiveContext(executor=executor):
                await self.handle(scope, receive, send)
        finally:
            self.threads.give_back(executor)
