"""The message store on the SQL database (SQLite or MySQL): the embedded default."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from datetime import datetime
from typing import Any

from django.db import DEFAULT_DB_ALIAS, DatabaseError, IntegrityError, connection, connections, transaction
from django.db.backends.base.base import BaseDatabaseWrapper
from django.utils import timezone

from messaging.models import Message
from messaging.store.base import (
    ClientKey,
    InvalidMessageId,
    MessageStoreUnavailable,
    NewMessage,
    StoredMessage,
)


def _stored(row: Message) -> StoredMessage:
    return StoredMessage(
        id=str(row.pk),
        chat_id=row.chat_id,
        sender_id=row.sender_id,
        text=row.text,
        image_url=row.image_url,
        client_id=row.client_id,
        created_at=row.created_at,
        deleted_at=row.deleted_at,
        deleted_by=row.deleted_by,
    )


UNREAD_WINDOWS_PER_QUERY = 200
LATEST_CHATS_PER_QUERY = 200
INSERTED_COLUMNS = ("chat_id", "sender_id", "text", "image_url", "client_id", "created_at")
# StoredMessage's fields, in its order: what `_select` reads.
READ_COLUMNS = (
    "id",
    "chat_id",
    "sender_id",
    "text",
    "image_url",
    "client_id",
    "created_at",
    "deleted_at",
    "deleted_by",
)


def _select(where: str, params: list, *, source: str | None = None) -> list[StoredMessage]:
    """The messages of `SELECT READ_COLUMNS FROM source WHERE where`, each row straight to a StoredMessage.

    A RawQuerySet built a model instance per row first, and that took most of
    a history page's time (measured, docs/benchmarks.md). Times go through the
    same converters the ORM applies (SQLite keeps text, MySQL naive times).
    `where` (with any ORDER BY and LIMIT) and `source` (the table, with any index hint) hold only
    placeholders, quoted names and fixed words.
    """
    db = _database()
    source = source or db.ops.quote_name(Message._meta.db_table)
    columns = ", ".join(db.ops.quote_name(name) for name in READ_COLUMNS)
    with db.cursor() as cursor:
        cursor.execute(f"SELECT {columns} FROM {source} WHERE {where}", params)  # noqa: S608
        rows = cursor.fetchall()
    as_time = _time_converter(db)
    return [
        StoredMessage(str(pk), *fields, as_time(created_at), as_time(deleted_at), deleted_by)
        for pk, *fields, created_at, deleted_at, deleted_by in rows
    ]


def _database() -> BaseDatabaseWrapper:
    """This thread's connection to the store's database, looked up once: each attribute of
    `django.db.connection` looks it up again (a few times a statement, and once per converted value)."""
    return connections[DEFAULT_DB_ALIAS]


def _time_converter(db: BaseDatabaseWrapper) -> Callable[[Any], datetime | None]:
    """A database's value of a message time -> an aware datetime (None stays None), as the ORM reads it."""
    column = Message._meta.get_field("created_at").get_col(Message._meta.db_table)
    # The backend's, then the field's, as the ORM's compiler applies them.
    converters = db.ops.get_db_converters(column) + column.get_db_converters(db)

    def convert(value: Any) -> datetime | None:
        for converter in converters:
            value = converter(value, column, db)
        return value

    return convert


def _row(message: NewMessage, created_at) -> Message:
    return Message(**vars(message), created_at=created_at)


def _along_paging_index() -> str:
    """The messages table, read along (chat_id, id): MySQL/MariaDB must be told, SQLite finds it."""
    table = connection.ops.quote_name(Message._meta.db_table)
    return f"{table} FORCE INDEX (message_chat_paging)" if connection.vendor == "mysql" else table


@contextlib.contextmanager
def _statement_on_its_own() -> Iterator[None]:
    """Around a batch's INSERT, so that a duplicate key (a resend racing its original) leaves the caller's
    transaction usable for the one-at-a-time retry.

    SQLite and MySQL/MariaDB undo a statement that breaks a constraint alone and
    go on with the transaction, so there it needs no savepoint, which cost two
    round trips of a batch's eleven on MariaDB (docs/benchmarks.md); elsewhere
    (PostgreSQL aborts the transaction) it takes one. Any other database error
    may have ended the caller's transaction with it (a deadlock rolls it all
    back, and what followed would then commit statement by statement): the
    caller's atomic block is marked to roll back, and nothing more is written in it.
    """
    if connection.vendor not in ("sqlite", "mysql"):
        with transaction.atomic():
            yield
        return
    try:
        yield
    except IntegrityError:
        raise
    except DatabaseError:
        if connection.in_atomic_block:
            transaction.set_rollback(True)
        raise


def _unavailable(error: DatabaseError) -> MessageStoreUnavailable:
    return MessageStoreUnavailable(f"message store: {error}")


class OrmMessageStore:
    ids_from_clocks = False

    def order_key(self, message_id: str) -> int:
        try:
            value = int(message_id)
        except (TypeError, ValueError):
            raise InvalidMessageId(message_id) from None
        if value <= 0 or value >= 2**63 or str(value) != message_id:
            raise InvalidMessageId(message_id)
        return value

    def add(self, *, chat_id, sender_id, text, image_url, client_id):
        return self.add_many([NewMessage(chat_id, sender_id, text, image_url, client_id)])[0]

    def add_many(self, messages, *, after=None):
        # `after` needs nothing here: the database numbers rows in the order their inserts take the chats' lock.
        created_at = _now()
        db = _database()
        if not db.features.can_return_rows_from_bulk_insert:
            return self._add_many_then_find(messages, created_at)  # MySQL: no RETURNING
        # Written out: for one batch of sends, bulk_create's per-field preparation cost more than
        # the insert itself (measured, bench/). Each value is a parameter.
        table = db.ops.quote_name(Message._meta.db_table)
        columns = ", ".join(db.ops.quote_name(name) for name in INSERTED_COLUMNS)
        one_row = f"({', '.join(['%s'] * len(INSERTED_COLUMNS))})"
        sql = (
            f"INSERT INTO {table} ({columns}) VALUES {', '.join([one_row] * len(messages))} "  # noqa: S608
            "RETURNING id, chat_id, sender_id, client_id"
        )
        stamp = db.ops.adapt_datetimefield_value(created_at)
        params = [
            value for m in messages for value in (m.chat_id, m.sender_id, m.text, m.image_url, m.client_id, stamp)
        ]
        try:
            with _statement_on_its_own(), db.cursor() as cursor:
                cursor.execute(sql, params)
                ids = {(chat_id, sender_id, client_id): pk for pk, chat_id, sender_id, client_id in cursor.fetchall()}
        except IntegrityError:
            # One of them was sent before (a resend racing its original): one at a time, each finds its answer.
            return [self._add_one(_row(m, created_at)) for m in messages]
        except DatabaseError as error:
            raise _unavailable(error) from error
        return [(StoredMessage(id=str(ids[m.client_key]), **vars(m), created_at=created_at), True) for m in messages]

    def _add_many_then_find(self, messages, created_at):
        rows = [_row(m, created_at) for m in messages]
        try:
            # bulk_create's own atomic block would mark the caller's transaction for rollback: a savepoint.
            with transaction.atomic():
                Message.objects.bulk_create(rows)
        except IntegrityError:
            return [self._add_one(row) for row in rows]
        except DatabaseError as error:
            raise _unavailable(error) from error
        stored = self.find_by_client_ids([m.client_key for m in messages])
        return [(stored[m.client_key], True) for m in messages]

    def _add_one(self, row: Message) -> tuple[StoredMessage, bool]:
        try:
            with transaction.atomic():
                row.pk = None
                row.save(force_insert=True)
            return _stored(row), True
        except IntegrityError as error:
            existing = self.get_by_client_id(chat_id=row.chat_id, sender_id=row.sender_id, client_id=row.client_id)
            if existing is None:
                raise _unavailable(error) from error
            return existing, False
        except DatabaseError as error:
            raise _unavailable(error) from error

    def find_by_client_ids(self, keys: list[ClientKey]) -> dict[ClientKey, StoredMessage]:
        if not keys:
            return {}
        # Written out as an OR of exact keys: one index lookup per key on SQLite and MySQL alike
        # (SQLite scans the table for a row-value IN; three IN lists probe the product of the lists;
        # Q objects cost more to build than to run; measured, bench/).
        match = " OR ".join("(chat_id = %s AND sender_id = %s AND client_id = %s)" for _ in keys)
        found = self._query(lambda: _select(match, [value for key in keys for value in key]))
        return {(message.chat_id, message.sender_id, message.client_id): message for message in found}

    def get(self, message_id):
        try:
            key = self.order_key(message_id)
        except InvalidMessageId:
            return None
        row = self._query(lambda: Message.objects.filter(pk=key).first())
        return _stored(row) if row else None

    def get_by_client_id(self, *, chat_id, sender_id, client_id):
        row = self._query(
            lambda: Message.objects.filter(chat_id=chat_id, sender_id=sender_id, client_id=client_id).first()
        )
        return _stored(row) if row else None

    def page_before(self, chat_id, *, before, limit):
        if before is None:
            return self._page("chat_id = %s", [chat_id], "DESC", limit)
        return self._page("chat_id = %s AND id < %s", [chat_id, self.order_key(before)], "DESC", limit)

    def page_after(self, chat_id, *, after, limit):
        return self._page("chat_id = %s AND id > %s", [chat_id, self.order_key(after)], "ASC", limit)

    def _page(self, condition: str, params: list, direction: str, limit: int) -> list[StoredMessage]:
        """One page in id order, read along the (chat_id, id) index.

        Written out for MySQL's sake: for a page deep inside a long chat, MariaDB
        picks a `ref` scan on chat_id and walks every newer message of the chat
        before the page (150 ms at 200k messages); naming the index makes it a
        range read of just the page (0.5 ms). Measured, docs/benchmarks.md.
        """
        in_order = f"{condition} ORDER BY id {direction} LIMIT %s"
        return self._query(lambda: _select(in_order, [*params, limit], source=_along_paging_index()))

    def count_after(self, chat_id, *, after, exclude_sender_id=None):
        rows = Message.objects.filter(chat_id=chat_id)
        if after:
            rows = rows.filter(pk__gt=self.order_key(after))
        if exclude_sender_id is not None:
            rows = rows.exclude(sender_id=exclude_sender_id)
        return self._query(rows.count)

    def count_unread(self, windows):
        if len(windows) > UNREAD_WINDOWS_PER_QUERY:
            # SQLite refuses an expression tree of ~1,000 terms: a few hundred windows per query.
            return [
                n
                for start in range(0, len(windows), UNREAD_WINDOWS_PER_QUERY)
                for n in self.count_unread(windows[start : start + UNREAD_WINDOWS_PER_QUERY])
            ]
        if not windows:
            return []
        # Written out rather than built with the ORM: with one conditional count per
        # window, building the query cost more than running it (measured, bench/).
        counts, ranges, count_params, range_params = [], [], [], []
        for w in windows:
            after = self.order_key(w.after) if w.after else 0
            counts.append("SUM(CASE WHEN chat_id = %s AND id > %s AND sender_id <> %s THEN 1 ELSE 0 END)")
            count_params += [w.chat_id, after, w.reader_id]
            ranges.append("(chat_id = %s AND id > %s)")
            range_params += [w.chat_id, after]
        # Only placeholders and the quoted table name go into the text; every value is a parameter.
        # Along the paging index, each window reads its unread messages only (MariaDB otherwise
        # took the client-id index and read every message of each chat).
        sql = f"SELECT {', '.join(counts)} FROM {_along_paging_index()} WHERE {' OR '.join(ranges)}"  # noqa: S608

        def run() -> tuple:
            with connection.cursor() as cursor:
                cursor.execute(sql, count_params + range_params)
                return cursor.fetchone()

        return [int(n or 0) for n in self._query(run)]

    def latest(self, chat_id):
        page = self.page_before(chat_id, before=None, limit=1)
        return page[0] if page else None

    def latest_of_chats(self, chat_ids):
        chat_ids = list(dict.fromkeys(chat_ids))  # any iterable; each chat sought once
        if len(chat_ids) > LATEST_CHATS_PER_QUERY:
            # SQLite takes at most 500 SELECTs in a UNION.
            return {
                chat_id: message
                for start in range(0, len(chat_ids), LATEST_CHATS_PER_QUERY)
                for chat_id, message in self.latest_of_chats(chat_ids[start : start + LATEST_CHATS_PER_QUERY]).items()
            }
        if not chat_ids:
            return {}
        # Each chat's newest id is one seek along the (chat_id, id) index. SQLite answers a
        # MAX(id) ... GROUP BY chat_id by reading every message of the chats (50 ms for one of
        # 500,000, and a browser asked it with every read; measured, docs/benchmarks.md). The
        # derived table is for MariaDB, which runs `id IN (a UNION)` once per message of the table.
        table = connection.ops.quote_name(Message._meta.db_table)
        each = " UNION ALL ".join([f"SELECT MAX(id) AS id FROM {table} WHERE chat_id = %s"] * len(chat_ids))  # noqa: S608
        where = f"id IN (SELECT newest.id FROM ({each}) newest)"  # noqa: S608
        return {message.chat_id: message for message in self._query(lambda: _select(where, chat_ids))}

    def search(self, *, chat_id=None, sender_id=None, text=None, since=None, until=None, limit=50):
        rows = Message.objects.all()
        if chat_id is not None:
            rows = rows.filter(chat_id=chat_id)
        if sender_id is not None:
            rows = rows.filter(sender_id=sender_id)
        if text:
            rows = rows.filter(text__icontains=text)
        if since is not None:
            rows = rows.filter(created_at__gte=since)
        if until is not None:
            rows = rows.filter(created_at__lt=until)
        return self._query(lambda: [_stored(r) for r in rows.order_by("-pk")[:limit]])

    def soft_delete(self, message_id, *, deleted_by):
        try:
            key = self.order_key(message_id)
        except InvalidMessageId:
            return None

        def delete():
            Message.objects.filter(pk=key, deleted_at__isnull=True).update(deleted_at=_now(), deleted_by=deleted_by)
            row = Message.objects.filter(pk=key).first()
            return _stored(row) if row else None

        return self._query(delete)

    @staticmethod
    def _query(run):
        try:
            return run()
        except DatabaseError as error:
            raise _unavailable(error) from error


def _now():
    # Milliseconds, as MongoDB keeps them: both stores answer with the same times.
    now = timezone.now()
    return now.replace(microsecond=now.microsecond // 1000 * 1000)
