"""The message store on MongoDB, through pymongo.

Collection `messages`, one document per message:
`{_id: ObjectId, chat_id, sender_id, text, image_url, client_id, created_at, deleted_at?, deleted_by?}`.
Indexes (made when the store is first used by a process):
`(chat_id, _id)` for paging, unique `(chat_id, sender_id, client_id)` so a
resent message is stored once.

Ids are 12-byte ObjectIds (24 hex characters) made here rather than by the
driver: 6 bytes of milliseconds, 3 naming the process, and a 3-byte counter
that keeps one process's ids in order within a millisecond. A driver ObjectId
counts whole seconds, so two workers writing into one chat in the same second
would interleave by chance. The milliseconds are the clock's, moved on where
needed so that each id sorts after this process's previous one (a clock
stepped back) and after the chat's newest message as the writer's lock sees
it (`add_many`'s `after`: written by another worker, whose clock may be ahead,
or in the same millisecond with a larger process number). The order is the
same for every reader and never changes, which is what paging and unread
counts need. What the lock cannot show is a message MongoDB took in a batch
whose SQL transaction then failed (its sender's read position never moved to
it): a worker whose clock is behind may store a later message below that one.
`created_at` keeps the clock's own time.
"""

from __future__ import annotations

import itertools
import os
import re
import threading
from datetime import UTC, datetime
from urllib.parse import parse_qs, urlsplit

import pymongo
from bson import ObjectId
from bson.errors import InvalidId
from pymongo.errors import BulkWriteError, PyMongoError

from messaging.store.base import (
    ClientKey,
    InvalidMessageId,
    MessageStoreUnavailable,
    NewMessage,
    StoredMessage,
    UnreadWindow,
)

COLLECTION = "messages"
DUPLICATE_KEY = 11000


def _stored(doc: dict) -> StoredMessage:
    return StoredMessage(
        id=str(doc["_id"]),
        chat_id=doc["chat_id"],
        sender_id=doc["sender_id"],
        text=doc.get("text", ""),
        image_url=doc.get("image_url", ""),
        client_id=doc["client_id"],
        created_at=_aware(doc["created_at"]),
        deleted_at=_aware(doc["deleted_at"]) if doc.get("deleted_at") else None,
        deleted_by=doc.get("deleted_by"),
    )


_PROCESS = os.urandom(3)
_counter = itertools.count(int.from_bytes(os.urandom(2), "big"))
_counter_lock = threading.Lock()
_last_made = (0, 0)  # (milliseconds, counter) of this process's newest id


def _time_ordered_id(at: datetime, *, after: ObjectId | None = None) -> ObjectId:
    """Milliseconds (6 bytes), this process (3), a counter (3), above this process's previous id and `after`."""
    global _last_made
    millis = int(at.timestamp() * 1000)
    if after is not None:
        millis = max(millis, int.from_bytes(after.binary[:6], "big") + 1)
    with _counter_lock:
        count = next(_counter) % (1 << 24)
        last_millis, last_count = _last_made
        if (millis, count) <= (last_millis, last_count):
            # The clock went back, or the counter wrapped within a millisecond.
            millis = last_millis if count > last_count else last_millis + 1
        _last_made = (millis, count)
    return ObjectId(millis.to_bytes(6, "big") + _PROCESS + count.to_bytes(3, "big"))


def _now_ms() -> datetime:
    # MongoDB keeps milliseconds; truncating here makes what we return equal what we read back.
    now = datetime.now(UTC)
    return now.replace(microsecond=now.microsecond // 1000 * 1000)


def _aware(value: datetime) -> datetime:
    return value if value.tzinfo else value.replace(tzinfo=UTC)


class MongoMessageStore:
    ids_from_clocks = True

    def __init__(self, collection) -> None:
        self.collection = collection
        try:
            self.ensure_indexes()
        except PyMongoError as error:
            raise MessageStoreUnavailable(f"message store: {error}") from error

    @classmethod
    def connect(cls, url: str, database: str) -> MongoMessageStore:
        # Fail fast when MongoDB is away (pymongo waits 30 s), unless the URL says how long to wait: keyword
        # arguments would override its options.
        given = {name.lower() for name in parse_qs(urlsplit(url).query)}
        timeouts = {
            name: 3000 for name in ("serverSelectionTimeoutMS", "connectTimeoutMS") if name.lower() not in given
        }
        client = pymongo.MongoClient(url, tz_aware=True, **timeouts)
        return cls(client[database][COLLECTION])

    def ensure_indexes(self) -> None:
        self.collection.create_index([("chat_id", 1), ("_id", 1)], name="chat_paging")
        self.collection.create_index(
            [("chat_id", 1), ("sender_id", 1), ("client_id", 1)], name="one_message_per_client_id", unique=True
        )

    def order_key(self, message_id: str) -> ObjectId:
        if not isinstance(message_id, str):
            raise InvalidMessageId(message_id)  # ObjectId(None) would be a new id, not a refusal
        try:
            return ObjectId(message_id)
        except (InvalidId, TypeError):
            raise InvalidMessageId(message_id) from None

    def add(self, *, chat_id, sender_id, text, image_url, client_id):
        return self.add_many([NewMessage(chat_id, sender_id, text, image_url, client_id)])[0]

    def add_many(self, messages, *, after=None):
        created_at = _now_ms()
        newest = {chat_id: self.order_key(message_id) for chat_id, message_id in (after or {}).items()}
        docs = [
            {
                "_id": _time_ordered_id(created_at, after=newest.get(m.chat_id)),
                "chat_id": m.chat_id,
                "sender_id": m.sender_id,
                "text": m.text,
                "image_url": m.image_url,
                "client_id": m.client_id,
                "created_at": created_at,
            }
            for m in messages
        ]
        duplicates: set[int] = set()
        try:
            # Unordered: a resent client id fails alone, the others are written.
            self.collection.insert_many(docs, ordered=False)
        except BulkWriteError as error:
            failures = error.details.get("writeErrors", [])
            if any(failure["code"] != DUPLICATE_KEY for failure in failures) or error.details.get("writeConcernErrors"):
                raise MessageStoreUnavailable(f"message store: {error}") from error
            duplicates = {failure["index"] for failure in failures}
        except PyMongoError as error:
            raise MessageStoreUnavailable(f"message store: {error}") from error
        earlier = self.find_by_client_ids([messages[i].client_key for i in duplicates])
        answers = []
        for index, (message, doc) in enumerate(zip(messages, docs, strict=True)):
            if index not in duplicates:
                answers.append((_stored(doc), True))
            elif message.client_key in earlier:
                answers.append((earlier[message.client_key], False))
            else:
                raise MessageStoreUnavailable("message store: duplicate without an original")
        return answers

    def find_by_client_ids(self, keys: list[ClientKey]) -> dict[ClientKey, StoredMessage]:
        if not keys:
            return {}
        match = {"$or": [{"chat_id": c, "sender_id": s, "client_id": k} for c, s, k in keys]}
        docs = self._run(lambda: list(self.collection.find(match)))
        return {(d["chat_id"], d["sender_id"], d["client_id"]): _stored(d) for d in docs}

    def get(self, message_id):
        try:
            key = self.order_key(message_id)
        except InvalidMessageId:
            return None
        doc = self._run(lambda: self.collection.find_one({"_id": key}))
        return _stored(doc) if doc else None

    def get_by_client_id(self, *, chat_id, sender_id, client_id):
        doc = self._run(
            lambda: self.collection.find_one({"chat_id": chat_id, "sender_id": sender_id, "client_id": client_id})
        )
        return _stored(doc) if doc else None

    def page_before(self, chat_id, *, before, limit):
        query: dict = {"chat_id": chat_id}
        if before is not None:
            query["_id"] = {"$lt": self.order_key(before)}
        return self._run(
            lambda: [_stored(d) for d in self.collection.find(query).sort("_id", pymongo.DESCENDING).limit(limit)]
        )

    def page_after(self, chat_id, *, after, limit):
        query = {"chat_id": chat_id, "_id": {"$gt": self.order_key(after)}}
        return self._run(
            lambda: [_stored(d) for d in self.collection.find(query).sort("_id", pymongo.ASCENDING).limit(limit)]
        )

    def count_after(self, chat_id, *, after, exclude_sender_id=None):
        query: dict = {"chat_id": chat_id}
        if after:
            query["_id"] = {"$gt": self.order_key(after)}
        if exclude_sender_id is not None:
            query["sender_id"] = {"$ne": exclude_sender_id}
        return self._run(lambda: self.collection.count_documents(query))

    def latest(self, chat_id):
        page = self.page_before(chat_id, before=None, limit=1)
        return page[0] if page else None

    def latest_of_chats(self, chat_ids):
        if not chat_ids:
            return {}
        pipeline = [
            {"$match": {"chat_id": {"$in": list(chat_ids)}}},
            # The paging index read backwards gives this order, so no chat's messages are sorted in memory
            # (ascending chat ids, descending _ids matched no index); the newest of each is the first the $group meets.
            {"$sort": {"chat_id": -1, "_id": -1}},
            {"$group": {"_id": "$chat_id", "doc": {"$first": "$$ROOT"}}},
        ]
        rows = self._run(lambda: list(self.collection.aggregate(pipeline)))
        return {row["_id"]: _stored(row["doc"]) for row in rows}

    def count_unread(self, windows):
        if not windows:
            return []

        def window(w: UnreadWindow) -> dict:
            return (
                {"chat_id": w.chat_id, "_id": {"$gt": self.order_key(w.after)}} if w.after else {"chat_id": w.chat_id}
            )

        def counted(w: UnreadWindow) -> dict:
            conditions = [{"$eq": ["$chat_id", w.chat_id]}, {"$ne": ["$sender_id", w.reader_id]}]
            if w.after:
                conditions.append({"$gt": ["$_id", self.order_key(w.after)]})
            return {"$sum": {"$cond": [{"$and": conditions}, 1, 0]}}

        pipeline = [
            {"$match": {"$or": [window(w) for w in windows]}},
            {"$group": {"_id": None, **{f"n{i}": counted(w) for i, w in enumerate(windows)}}},
        ]
        rows = self._run(lambda: list(self.collection.aggregate(pipeline)))
        return [rows[0][f"n{i}"] if rows else 0 for i in range(len(windows))]

    def search(self, *, chat_id=None, sender_id=None, text=None, since=None, until=None, limit=50):
        query: dict = {}
        if chat_id is not None:
            query["chat_id"] = chat_id
        if sender_id is not None:
            query["sender_id"] = sender_id
        if text:
            query["text"] = {"$regex": re.escape(text), "$options": "i"}
        if since is not None or until is not None:
            query["created_at"] = {
                **({"$gte": since} if since is not None else {}),
                **({"$lt": until} if until is not None else {}),
            }
        return self._run(
            lambda: [_stored(d) for d in self.collection.find(query).sort("_id", pymongo.DESCENDING).limit(limit)]
        )

    def soft_delete(self, message_id, *, deleted_by):
        try:
            key = self.order_key(message_id)
        except InvalidMessageId:
            return None
        now = datetime.now(UTC)

        def delete():
            self.collection.update_one(
                {"_id": key, "deleted_at": None},
                {
                    "$set": {
                        "deleted_at": now.replace(microsecond=now.microsecond // 1000 * 1000),
                        "deleted_by": deleted_by,
                    }
                },
            )
            return self.collection.find_one({"_id": key})

        doc = self._run(delete)
        return _stored(doc) if doc else None

    @staticmethod
    def _run(operation):
        try:
            return operation()
        except PyMongoError as error:
            raise MessageStoreUnavailable(f"message store: {error}") from error
