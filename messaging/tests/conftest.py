import mongomock
import pytest
from pymongo.errors import AutoReconnect

from messaging import store as store_module
from messaging.store.mongo import MongoMessageStore


@pytest.fixture
def use_store():
    """Swap this process's message store for the test's, and put the real one back after."""

    def install(store):
        store_module._store = store
        return store

    yield install
    store_module.reset_message_store()


@pytest.fixture
def mongo_store(use_store):
    """The pymongo repository on mongomock, as the app's store."""
    return use_store(MongoMessageStore(mongomock.MongoClient(tz_aware=True)["chat"]["messages"]))


@pytest.fixture
def broken_store(mongo_store, monkeypatch):
    """MongoDB goes away: every operation fails as pymongo fails when the server is unreachable."""

    def unreachable(*args, **kwargs):
        raise AutoReconnect("connection refused")

    for operation in ("insert_one", "insert_many", "find_one", "find", "count_documents", "update_one", "aggregate"):
        monkeypatch.setattr(mongo_store.collection, operation, unreachable)
    return mongo_store


@pytest.fixture
def unlimited_messages(settings):
    """For tests that write many messages quickly: no flood limit."""
    settings.RATE_LIMITS = {**settings.RATE_LIMITS, "message": None}
