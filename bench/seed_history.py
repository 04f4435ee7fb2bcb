"""Bench-only seeding: grow one chat's history straight in the message store, as sending would take hours.

    python -m bench.seed_history --chat-id 3 --senders 7,8 --total 1000000
    python -m bench.seed_history --chat-id 3 --delete

Run with the app's environment, so it writes where the app reads: the SQL
table `messaging_message` (bulk inserts in batches), or MongoDB's `messages`
collection when MONGODB_URL is set. Seeded messages alternate between the two
senders, carry client ids `seed-<n>` and are stored in id order, like sent
ones. Prints one JSON line: how many the chat holds, how long seeding took,
and the id of the message halfway through the history (a `before=` cursor
deep in it). `--delete` removes what seeding added, so a shared database does
not keep growing from run to run.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import django

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "chat_realtime.settings")
django.setup()

from django.conf import settings  # noqa: E402  (needs django.setup() first)
from django.db import transaction  # noqa: E402

from messaging.models import Message  # noqa: E402
from messaging.services import recount_unread  # noqa: E402
from messaging.store import message_store  # noqa: E402

BATCH = 10_000
SEED_PREFIX = "seed-"


def seeded_rows(start: int, count: int, senders: list[int]) -> Iterator[tuple[int, int, str, datetime]]:
    """(n, sender, text, created_at) for messages start .. start+count-1, a millisecond apart, ending now."""
    now = datetime.now(UTC)
    for n in range(start, start + count):
        yield n, senders[n % len(senders)], f"seeded message {n}", now - timedelta(milliseconds=start + count - n)


def batches(rows: Iterator, size: int) -> Iterator[list]:
    batch = []
    for row in rows:
        batch.append(row)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


class SqlHistory:
    def __init__(self, chat_id: int) -> None:
        self.chat_id = chat_id
        self.messages = Message.objects.filter(chat_id=chat_id)

    def count(self) -> int:
        return self.messages.count()

    def insert(self, rows: list[tuple[int, int, str, datetime]]) -> None:
        with transaction.atomic():
            Message.objects.bulk_create(
                [
                    Message(
                        chat_id=self.chat_id, sender_id=sender, text=text, client_id=f"{SEED_PREFIX}{n}", created_at=at
                    )
                    for n, sender, text, at in rows
                ],
                batch_size=BATCH,
            )

    def id_at(self, position: int) -> str:
        return str(self.messages.order_by("pk").values_list("pk", flat=True)[position])

    def delete(self) -> int:
        deleted = 0
        # In slices: one statement over a million rows holds locks (and MariaDB's undo log) for long.
        while ids := list(self.messages.filter(client_id__startswith=SEED_PREFIX).values_list("pk", flat=True)[:BATCH]):
            deleted += Message.objects.filter(pk__in=ids).delete()[0]
        return deleted


class MongoHistory:
    def __init__(self, chat_id: int) -> None:
        from bson import ObjectId

        self.object_id = ObjectId
        self.chat_id = chat_id
        self.collection = message_store().collection
        self.process = os.urandom(3)
        self.counter = 0

    def new_id(self, at: datetime):
        """The store's id layout: milliseconds (6 bytes), a process (3), a counter (3), so ids sort by time."""
        self.counter = (self.counter + 1) % (1 << 24)
        millis = int(at.timestamp() * 1000)
        return self.object_id(millis.to_bytes(6, "big") + self.process + self.counter.to_bytes(3, "big"))

    def count(self) -> int:
        return self.collection.count_documents({"chat_id": self.chat_id})

    def insert(self, rows: list[tuple[int, int, str, datetime]]) -> None:
        self.collection.insert_many(
            [
                {
                    "_id": self.new_id(at),
                    "chat_id": self.chat_id,
                    "sender_id": sender,
                    "text": text,
                    "image_url": "",
                    "client_id": f"{SEED_PREFIX}{n}",
                    "created_at": at.replace(microsecond=at.microsecond // 1000 * 1000),
                }
                for n, sender, text, at in rows
            ],
            ordered=False,
        )

    def id_at(self, position: int) -> str:
        doc = self.collection.find({"chat_id": self.chat_id}, {"_id": 1}).sort("_id", 1).skip(position).limit(1)
        return str(next(iter(doc))["_id"])

    def delete(self) -> int:
        query = {"chat_id": self.chat_id, "client_id": {"$regex": f"^{SEED_PREFIX}"}}
        return self.collection.delete_many(query).deleted_count


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--chat-id", type=int, required=True)
    parser.add_argument("--senders", help="comma-separated user ids of the chat's participants")
    parser.add_argument("--total", type=int, help="how many messages the chat should hold afterwards")
    parser.add_argument("--delete", action="store_true", help="remove the seeded messages instead")
    args = parser.parse_args()
    chat = MongoHistory(args.chat_id) if settings.MONGODB_URL else SqlHistory(args.chat_id)
    store = "mongodb" if settings.MONGODB_URL else "sql"
    started = time.perf_counter()
    if args.delete:
        deleted = chat.delete()
        recount_unread([args.chat_id])  # the services keep unread counts; written past them, they are recounted
        print(json.dumps({"store": store, "deleted": deleted, "seconds": round(time.perf_counter() - started, 1)}))
        return
    held = chat.count()
    senders = [int(s) for s in args.senders.split(",")]
    for batch in batches(seeded_rows(held, max(0, args.total - held), senders), BATCH):
        chat.insert(batch)
    recount_unread([args.chat_id])
    total = chat.count()
    result = {
        "store": store,
        "messages": total,
        "inserted": total - held,
        "seconds": round(time.perf_counter() - started, 1),
        "deep_before": chat.id_at(total // 2),
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
