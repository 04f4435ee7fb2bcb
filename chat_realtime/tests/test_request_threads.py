"""HTTP through the ASGI application: each request's sync work runs on a pooled thread, whole."""

from __future__ import annotations

import asyncio
import json
import threading

import pytest
from channels.testing import HttpCommunicator
from django.core.signals import request_finished, request_started
from django.db import connection
from django.http import JsonResponse, StreamingHttpResponse
from django.urls import path

from chat_realtime.asgi import application, django_asgi_app

pytestmark = pytest.mark.django_db(transaction=True)

both_here = threading.Barrier(2, timeout=5)


def where_am_i(request):
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
    open_connection = connection.connection
    return JsonResponse(
        {"thread": threading.get_ident(), "connection": id(open_connection) if open_connection is not None else None}
    )


def wait_for_the_other(request):
    both_here.wait()  # only returns once a second request is in a view at the same time
    return JsonResponse({"thread": threading.get_ident()})


def streamed(request):
    def parts():
        yield b"one,"
        yield b"two"
        seen.append(("content read", threading.get_ident()))

    return StreamingHttpResponse(parts())


def recorded(request):
    seen.append(("view", threading.get_ident()))
    return JsonResponse({})


seen: list[tuple[str, int]] = []

urlpatterns = [
    path("where/", where_am_i),
    path("together/", wait_for_the_other),
    path("streamed/", streamed),
    path("recorded/", recorded),
]


HOST = [(b"host", b"testserver")]


async def request(method: str, path: str, body: bytes = b"") -> dict:
    return await HttpCommunicator(application, method, path, body=body, headers=HOST).get_response(timeout=10)


async def get(path: str) -> dict:
    response = await request("GET", path)
    assert response["status"] == 200, response
    return response


@pytest.fixture
def test_views(settings):
    settings.ROOT_URLCONF = __name__


async def test_requests_one_after_another_share_a_thread_and_its_database_connection(test_views):
    first, second = [json.loads((await get("/where/"))["body"]) for _ in range(2)]

    assert first == second
    assert first["connection"] is not None


async def test_requests_at_the_same_time_run_side_by_side_on_threads_of_their_own(test_views):
    both_here.reset()

    one, other = await asyncio.gather(get("/together/"), get("/together/"))

    assert json.loads(one["body"])["thread"] != json.loads(other["body"])["thread"]


async def test_the_middleware_still_guards_every_request(db):
    page = await get("/accounts/login/")
    refused = await request("POST", "/accounts/login/", body=b"username=x&password=y")

    assert b"Content-Security-Policy" in dict(page["headers"])  # security headers
    assert b"csrftoken" in b"".join(value for name, value in page["headers"] if name == b"Set-Cookie")
    assert refused["status"] == 403  # no CSRF token


@pytest.fixture
def signals_seen():
    """Which request signals ran, on which thread, in `seen` with what the views record."""
    seen.clear()

    def started(**kwargs):
        seen.append(("request_started", threading.get_ident()))

    def finished(**kwargs):
        seen.append(("request_finished", threading.get_ident()))

    request_started.connect(started)
    request_finished.connect(finished)
    yield seen
    request_started.disconnect(started)
    request_finished.disconnect(finished)


@pytest.fixture
def trips_to_threads(monkeypatch):
    """How many calls each request's thread was handed."""
    handed = []
    borrow = django_asgi_app.threads.borrow

    def counting_borrow():
        executor = borrow()
        submit = executor.submit

        def counted(*args, **kwargs):
            handed.append(1)
            return submit(*args, **kwargs)

        monkeypatch.setattr(executor, "submit", counted)
        return executor

    monkeypatch.setattr(django_asgi_app.threads, "borrow", counting_borrow)
    return handed


async def test_a_request_goes_to_its_thread_once_for_its_signals_and_its_view(
    test_views, signals_seen, trips_to_threads
):
    await get("/recorded/")

    assert [event for event, _ in signals_seen] == ["request_started", "view", "request_finished"]
    assert len({thread for _, thread in signals_seen}) == 1
    assert len(trips_to_threads) == 1


async def served(path: str, query_string: bytes = b"") -> list[dict]:
    """What the application sends for one GET, each message also noted in `seen` as it is sent."""
    scope = {
        "type": "http",
        "http_version": "1.1",
        "method": "GET",
        "path": path,
        "query_string": query_string,
        "headers": HOST,
    }
    request_body = [{"type": "http.request", "body": b""}]
    sent = []

    async def receive() -> dict:
        if request_body:
            return request_body.pop()
        await asyncio.Event().wait()  # the client stays connected
        raise AssertionError("unreachable")

    async def send(message: dict) -> None:
        sent.append(message)
        seen.append(("sent", threading.get_ident()))

    await asyncio.wait_for(application(scope, receive, send), timeout=10)
    return sent


@pytest.mark.filterwarnings("ignore:StreamingHttpResponse must consume synchronous iterators")
async def test_a_streaming_response_is_closed_on_its_thread_after_its_content_is_sent(test_views, signals_seen):
    sent = await served("/streamed/")

    assert b"".join(message.get("body", b"") for message in sent) == b"one,two"
    events = [event for event, _ in signals_seen]
    assert events[0] == "request_started"
    assert events[-2:] == ["sent", "request_finished"]  # closed after the last message went out
    threads = dict(signals_seen)
    assert threads["request_started"] == threads["request_finished"]


async def test_a_request_django_cannot_read_gets_400_and_both_signals_once(test_views, signals_seen):
    sent = await served("/recorded/", query_string=b"\xff")

    assert sent[0]["status"] == 400
    assert [event for event, _ in signals_seen if event.startswith("request")] == [
        "request_started",
        "request_finished",
    ]
