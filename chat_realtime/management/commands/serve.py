"""`manage.py serve`: the ASGI server the app runs on, configured in this one place.

uvicorn with uvloop and httptools, permessage-deflate off; on SQLite, a thread
that checkpoints its log (chat_realtime.sqlite_checkpoints). The Dockerfile,
`make run` (with --reload), `make run-cluster`, the benchmarks and the tests
that start real worker processes all start the app through this command, so
what runs anywhere is what was measured (docs/benchmarks.md: on the same
machine and load, daphne served the chat scenario about a fifth slower).
`manage.py runserver` (daphne) still works for those who prefer it.
"""

from __future__ import annotations

import gc
from importlib import import_module
from typing import Any

import uvicorn
from django.conf import settings
from django.core.management.base import BaseCommand

from chat_realtime.sqlite_checkpoints import start_wal_checkpoints

APPLICATION = "chat_realtime.asgi:application"


def server_options(*, host: str, port: int, reload: bool = False) -> dict[str, Any]:
    return {
        "host": host,
        "port": port,
        "reload": reload,
        "loop": "uvloop",
        "http": "httptools",
        "ws": "websockets-sansio",
        # Chat frames are small: compressing them costs more CPU than it saves bytes (measured: half the rate).
        "ws_per_message_deflate": False,
        # The consumer closes with 1009 past WEBSOCKET_MAX_FRAME_CHARS characters; the server refuses
        # anything that could not be that many (UTF-8 takes up to 4 bytes a character) before buffering it.
        "ws_max_size": 4 * settings.WEBSOCKET_MAX_FRAME_CHARS,
        # Client addresses come from the proxy's X-Forwarded-For where the app reads it (NUM_PROXIES), as before.
        "proxy_headers": False,
        # Django's ASGI handler does not speak the lifespan protocol.
        "lifespan": "off",
        "server_header": False,
        "log_level": settings.LOG_LEVEL.lower(),
        "timeout_graceful_shutdown": 10,
    }


def load_application() -> None:
    """Import the application before serving, then keep what the import made out of the collector's way.

    A full collection walks every object of the process: under the chat load it
    stopped the worker, every socket with it, for 78-146 ms; with the start-up's
    objects frozen (`gc.freeze`: never looked at again, so its garbage is
    collected first) it takes 4-8 ms (docs/benchmarks.md).
    """
    import_module(APPLICATION.partition(":")[0])
    gc.collect()
    gc.freeze()


class Command(BaseCommand):
    help = "Serve the app (HTTP and websockets) with uvicorn, configured as in production."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
        parser.add_argument("--port", type=int, default=settings.PORT, help="port to listen on (default PORT, 8000)")
        parser.add_argument("--reload", action="store_true", help="restart when the code changes (development)")

    def handle(self, *args: Any, host: str, port: int, reload: bool, **options: Any) -> None:
        if not reload:  # with --reload, a child process imports the application, afresh at every change
            load_application()
        # Here either way: with --reload this process outlives the children that serve.
        start_wal_checkpoints()
        uvicorn.run(APPLICATION, **server_options(host=host, port=port, reload=reload))
