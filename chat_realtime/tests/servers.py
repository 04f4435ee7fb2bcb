"""Real worker processes (`manage.py serve`, as in production) on the test database, across real sockets."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from django.conf import settings
from django.db import connection

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
