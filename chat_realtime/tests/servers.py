"""Real worker processes (`manage.py serve`, as in production) on the test database, across real sockets."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from django.conf import settings
from django.db import connection
from rest_framework_simplejwt.tokens import AccessToken
from websockets.asyncio.client import connect

from chat_realtime.tests import redis_namespace

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def app_environment(var_dir: Path, **environment: str) -> dict[str, str]:
    """The environment of a process serving the app beside the tests: their database, keys and Redis namespace."""
    env = {
        **os.environ,
        "DEBUG": "true",
        "VAR_DIR": str(var_dir),
        "LOGIN_RATE_LIMIT": "off",
        "REGISTER_RATE_LIMIT": "off",
        "PASSWORD_RESET_RATE_LIMIT": "off",
        "MESSAGE_RATE_LIMIT": "off",
        # This run's namespace (redis_namespace.py), so workers of concurrent runs never cross.
        "REDIS_KEY_PREFIX": redis_namespace.REDIS_KEY_PREFIX,
        "CACHE_KEY_PREFIX": redis_namespace.CACHE_KEY_PREFIX,
        "CHANNEL_LAYER_PREFIX": redis_namespace.CHANNEL_LAYER_PREFIX,
        # The tests' own keys, so tokens they make are the workers' too.
        "SECRET_KEY": settings.SECRET_KEY,
        "ACCESS_TOKEN_SECRET": settings.ACCESS_TOKEN_SECRET,
        **environment,
    }
    database = connection.settings_dict
    if connection.vendor == "sqlite":
        env["SQLITE_PATH"] = str(database["NAME"])
    else:
        env["DB_NAME"] = str(database["NAME"])
    return env


class WorkerProcess:
    """One worker: `start()`, `stop()` (a clean shutdown), `kill()` (no goodbye), `url`."""

    def __init__(self, var_dir: Path, **environment: str) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.ws_url = f"ws://127.0.0.1:{self.port}/ws/"
        self.env = app_environment(var_dir, **environment)
        self.process: subprocess.Popen | None = None
        var_dir.mkdir(parents=True, exist_ok=True)
        # A file, not a pipe: nobody reads the worker's log while it runs, and a full pipe would block it.
        self.log = var_dir / f"worker-{self.port}.log"

    def start(self) -> WorkerProcess:
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "manage.py", "serve", "--host", "127.0.0.1", "--port", str(self.port)],
                cwd=ROOT,
                env=self.env,
                stdout=subprocess.DEVNULL,
                stderr=log,
            )
        for _ in range(150):
            try:
                urllib.request.urlopen(self.url + "/healthz", timeout=1)
                return self
            except OSError:
                if self.process.poll() is not None:
                    raise RuntimeError(self.log.read_text(errors="replace")[-4000:]) from None
                time.sleep(0.1)
        raise RuntimeError("the worker did not start")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                # Still draining sockets a test left open: the test is over, end it.
                self.process.kill()
                self.process.wait(timeout=5)
        self.process = None

    def kill(self) -> None:
        """As a crash: the process is gone at once, closing nothing and telling no one."""
        if self.process is not None:
            self.process.kill()
            self.process.wait(timeout=10)
        self.process = None


class Client:
    """A real websocket to a worker (or to a proxy in front of workers), recording every frame it receives.

    `Client(user, worker)` signs in as `user` with a fresh token; `Client.with_token(ws_url, token)` uses one
    the API gave out. `upstream` names the worker a proxy chose (its X-Upstream header), if any.
    """

    def __init__(self, user, worker: WorkerProcess) -> None:
        self.user = user
        self.name = user.username
        self.url = f"{worker.ws_url}?token={AccessToken.for_user(user)}"
        self.frames: list[dict] = []
        self.acks: dict[str, asyncio.Future] = {}

    @classmethod
    def with_token(cls, ws_url: str, token: str, *, name: str = "client") -> Client:
        client = cls.__new__(cls)
        client.user, client.name, client.url = None, name, f"{ws_url}?token={token}"
        client.frames, client.acks = [], {}
        return client

    async def __aenter__(self) -> Client:
        self.socket = await connect(self.url, max_size=2**20)
        self.upstream = self.socket.response.headers.get("X-Upstream")
        self.reader = asyncio.create_task(self._read())
        await self.wait_for(lambda f: f["type"] == "online_friends")
        return self

    async def __aexit__(self, *exc) -> None:
        self.reader.cancel()
        with contextlib.suppress(Exception):
            await self.socket.close()

    async def _read(self) -> None:
        with contextlib.suppress(Exception):
            async for raw in self.socket:
                frame = json.loads(raw)
                self.frames.append(frame)
                if frame["type"] in ("message_ack", "error") and frame.get("client_id") in self.acks:
                    self.acks.pop(frame["client_id"]).set_result(frame)

    async def send(self, frame: dict) -> None:
        await self.socket.send(json.dumps(frame))

    async def send_message(self, chat_id: int, text: str, client_id: str) -> dict:
        self.acks[client_id] = asyncio.get_running_loop().create_future()
        await self.send({"type": "send_message", "chat_id": chat_id, "text": text, "client_id": client_id})
        return await asyncio.wait_for(self.acks[client_id], timeout=10)

    async def join(self, chat_id: int) -> None:
        await self.send({"type": "join_chat", "chat_id": chat_id})
        await self.wait_for(lambda f: f == {"type": "joined_chat", "chat_id": chat_id})

    async def wait_for(self, predicate, timeout: float = 10) -> dict:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for frame in self.frames:
                if predicate(frame):
                    return frame
            await asyncio.sleep(0.02)
        raise AssertionError(f"{self.name} never got it; frames: {self.frames[-5:]}")

    def new_message_ids(self, chat_id: int) -> list[str]:
        return [
            f["message"]["id"] for f in self.frames if f["type"] == "new_message" and f["message"]["chat_id"] == chat_id
        ]
