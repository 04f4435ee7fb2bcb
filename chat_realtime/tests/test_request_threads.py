"""HTTP through the ASGI application: each request's sync work runs on a pooled thread, whole."""

from __future__ import annotations

import asyncio
import json
import threading

import pytest
from channels.testing import HttpCommunicator
from django.db import connection
from django.http import JsonResponse
from django.urls import path

from chat_realtime.asgi import application

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


urlpatterns = [path("where/", where_am_i), path("together/", wait_for_the_other)]


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
