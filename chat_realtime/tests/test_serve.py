"""`manage.py serve`: the one way the app is started, configured as it was measured."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest
from django.core.management import call_command
from rest_framework_simplejwt.tokens import AccessToken
from websockets.asyncio.client import connect

from chat_realtime.management.commands import serve
from chat_realtime.management.commands.serve import server_options
from chat_realtime.tests.servers import WorkerProcess

pytestmark = pytest.mark.django_db(transaction=True)

ROOT = Path(__file__).resolve().parents[2]


def test_the_server_runs_on_uvloop_and_httptools_without_compressing_websocket_frames(settings):
    settings.WEBSOCKET_MAX_FRAME_CHARS = 1000

    options = server_options(host="0.0.0.0", port=9000)

    assert (options["loop"], options["http"], options["ws"]) == ("uvloop", "httptools", "websockets-sansio")
    assert options["ws_per_message_deflate"] is False
    assert options["ws_max_size"] == 4000  # room for 1000 characters of UTF-8, no more
    assert (options["host"], options["port"], options["reload"]) == ("0.0.0.0", 9000, False)


# In a process of its own: pytest has long imported the application, and freezing would outlive the test.
LOAD_AND_FREEZE = """
import gc, sys, django
django.setup()
from chat_realtime.management.commands import serve
assert "chat_realtime.asgi" not in sys.modules
serve.load_application()
application = sys.modules["chat_realtime.asgi"].application
assert gc.get_freeze_count() > 0
assert not any(o is application for generation in range(3) for o in gc.get_objects(generation)), "not frozen"
"""


def test_serving_loads_the_application_first_and_keeps_its_start_up_out_of_the_collectors_way(tmp_path):
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "chat_realtime.settings", "DEBUG": "true", "VAR_DIR": str(tmp_path)}

    result = subprocess.run(
        [sys.executable, "-c", LOAD_AND_FREEZE], cwd=ROOT, env=env, capture_output=True, text=True, check=False
    )

    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize("reload", [False, True])
def test_serving_starts_the_sqlite_checkpoint_thread_reloading_or_not(monkeypatch, reload):
    """With --reload the children serve, and this process, which outlives them, checkpoints."""
    calls = []
    monkeypatch.setattr(serve, "load_application", lambda: None)
    monkeypatch.setattr(serve, "start_wal_checkpoints", lambda alias="default": calls.append(alias))
    monkeypatch.setattr(serve.uvicorn, "run", lambda *args, **kwargs: None)

    serve.Command().handle(host="127.0.0.1", port=9000, reload=reload)

    assert calls == ["default"]


def test_a_served_worker_answers_http_and_an_authenticated_websocket_without_deflate(user, tmp_path):
    worker = WorkerProcess(tmp_path).start()
    try:
        with urllib.request.urlopen(f"{worker.url}/healthz", timeout=10) as response:
            health = json.loads(response.read())

        async def talk() -> tuple[dict, str | None]:
            # The client offers permessage-deflate; the server must not take it.
            async with connect(f"{worker.ws_url}?token={AccessToken.for_user(user)}") as socket:
                first = json.loads(await asyncio.wait_for(socket.recv(), timeout=10))
                return first, socket.response.headers.get("Sec-WebSocket-Extensions")

        first, extensions = asyncio.run(talk())
    finally:
        worker.stop()

    assert health == {"status": "ok"}
    assert first["type"] == "online_friends"
    assert extensions is None


def test_without_a_port_it_listens_on_the_configured_one(monkeypatch, settings):
    settings.PORT = 8123  # PORT, from the environment or .env
    served = {}
    monkeypatch.setattr(serve, "load_application", lambda: None)
    monkeypatch.setattr(serve, "start_wal_checkpoints", lambda alias="default": None)
    monkeypatch.setattr(serve.uvicorn, "run", lambda application, **options: served.update(options))

    call_command("serve")

    assert served["port"] == 8123
