"""Where messages live: MongoDB when MONGODB_URL is set, the SQL database otherwise.

`message_store()` gives this process's store; both implementations keep the
same contract (messaging/tests/test_message_store_contract.py).
"""

from __future__ import annotations

import threading

from django.conf import settings

from messaging.store.base import MessageStore, MessageStoreUnavailable, StoredMessage

__all__ = ["MessageStore", "MessageStoreUnavailable", "StoredMessage", "message_store", "reset_message_store"]

_lock = threading.Lock()
_store: MessageStore | None = None


def message_store() -> MessageStore:
    global _store
    if _store is None:
        with _lock:
            if _store is None:
                _store = _build()
    return _store


def reset_message_store() -> None:
    """Forget the process's store, so the next call builds one from the settings again."""
    global _store
    with _lock:
        _store = None


def _build() -> MessageStore:
    if settings.MONGODB_URL:
        from messaging.store.mongo import MongoMessageStore

        return MongoMessageStore.connect(settings.MONGODB_URL, settings.MONGODB_DB_NAME)
    from messaging.store.orm import OrmMessageStore

    return OrmMessageStore()
