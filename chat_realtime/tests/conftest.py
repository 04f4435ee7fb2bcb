"""Fixtures of chat_realtime's tests."""

from __future__ import annotations

import pytest

from chat_realtime.tests import redis_namespace
from chat_realtime.tests.browser import CHROMIUM, sync_playwright
from chat_realtime.tests.servers import WorkerProcess


@pytest.fixture
def app_server(db, tmp_path):
    if sync_playwright is None or not CHROMIUM.exists():
        pytest.skip(f"browser tests did not run: Playwright or {CHROMIUM} is missing (.ci/run installs both)")
    server = WorkerProcess(tmp_path, CACHE_KEY_PREFIX=f"{redis_namespace.REDIS_KEY_PREFIX}browser")
    server.start()
    yield server
    server.stop()


@pytest.fixture
def live_server_url(app_server):
    return app_server.url
