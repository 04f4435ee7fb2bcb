from collections.abc import Iterable
from datetime import datetime
from typing import NamedTuple

from django.conf import settings
from django.db import connections, models

# The queries of the send path and of history pages below are written out: for a batch of sends,
# building them with the ORM cost more than running them, and a batch of one paid most of its CPU
# for that; the ORM's membership query took a quarter of a history page's time (measured, bench/).
# Only placeholders and quoted names go into their text; every value is a parameter.


class ReadState(NamedTuple):
    """A membership's place in its chat, as a batch of sends reads it under lock."""

    membership_id: int
    chat_id: int
    user_id: int
    last_read_message_id: str
    unread_count: int


def _placeholders(values: list) -> str:
    return ", ".join("%s" for _ in values)


def _write(connection, sql: str, params: list) -> None:
    """A write whose outcome nobody reads. In an atomic block that commits at its end, the MySQL/MariaDB backend
    sends it with the block's next statement or its COMMIT (chat_realtime.mysql_backend); else it runs now."""
    defer = getattr(connection, "defer_write", None)
    if defer is not None:
        defer(sql, params)
        return
    with connection.cursor() as cursor:
        cursor.execute(sql, params)


class ChatQuerySet(models.QuerySet):
    def lock(self, chat_ids: Iterable[int]) -> set[int]:
        """Lock these chats in id order, as every writer of messages does; answers the ids that exist.

        FOR UPDATE where the database has it; SQLite's write transaction holds the whole database.
        """
        ids = sorted(set(chat_ids))
        if not ids:
            return set()
        connection = connections[self.db]
        table = connection.ops.quote_name(self.model._meta.db_table)
        lock = " FOR UPDATE" if connection.features.has_select_for_update else ""
        if connection.vendor == "mysql":
            table += " FORCE INDEX (PRIMARY)"  # along the key, as every writer takes them (lock_with_read_states)
        sql = f"SELECT id FROM {table} WHERE id IN ({_placeholders(ids)}) ORDER BY id{lock}"  # noqa: S608
        with connection.cursor() as cursor:
            cursor.execute(sql, ids)
            return {row[0] for row in cursor.fetchall()}

    def lock_with_read_states(self, chat_ids: Iterable[int]) -> tuple[set[int], list[ReadState]]:
        """Lock these chats in id order, each with its memberships, in one statement (one round trip for
        what took two); answers the ids that exist and the memberships' read states.

        The order every writer keeps: a chat, then its memberships (`lock` takes only the chats).
        For SQLite and MySQL/MariaDB: PostgreSQL refuses FOR UPDATE on an outer join's nullable side.
        """
        ids = sorted(set(chat_ids))
        if not ids:
            return set(), []
        connection = connections[self.db]
        chats = connection.ops.quote_name(self.model._meta.db_table)
        memberships = connection.ops.quote_name(ChatParticipant._meta.db_table)
        lock = " FOR UPDATE" if connection.features.has_select_for_update else ""
        if connection.vendor == "mysql":
            # InnoDB locks every row it reads. On a small chats table MariaDB read them along their activity
            # time's index (it holds the ids too) and two workers' batches deadlocked (the two-worker test).
            # Named, the chats are read along their key in id order, as every writer takes them (on a small
            # table perhaps all of them: that serializes, it cannot deadlock), the memberships along theirs.
            chats += " c FORCE INDEX (PRIMARY)"
            memberships += " m FORCE INDEX (one_membership_per_chat)"
        else:
            chats, memberships = f"{chats} c", f"{memberships} m"
        sql = (
            "SELECT c.id, m.id, m.user_id, m.last_read_message_id, m.unread_count "  # noqa: S608
            f"FROM {chats} LEFT JOIN {memberships} ON m.chat_id = c.id "
            f"WHERE c.id IN ({_placeholders(ids)}) ORDER BY c.id, m.id{lock}"
        )
        with connection.cursor() as cursor:
            cursor.execute(sql, ids)
            rows = cursor.fetchall()
        existing = {row[0] for row in rows}
        states = [
            ReadState(membership_id, chat_id, user_id, last_read, unread)
            for chat_id, membership_id, user_id, last_read, unread in rows
            if membership_id is not None
        ]
        return existing, states

    def advance_activity(self, chat_ids: list[int], to: datetime) -> None:
        """Move these chats' activity time forward to `to`, never back."""
        connection = connections[self.db]
        table = connection.ops.quote_name(self.model._meta.db_table)
        stamp = connection.ops.adapt_datetimefield_value(to)
        sql = (
            f"UPDATE {table} SET last_activity_at = %s "  # noqa: S608
            f"WHERE id IN ({_placeholders(chat_ids)}) AND last_activity_at < %s"
        )
        _write(connection, sql, [stamp, *chat_ids, stamp])


class Chat(models.Model):
    """A conversation. One-to-one now; `is_group` and `name` are there for groups."""

    is_group = models.BooleanField(default=False)
    name = models.CharField(max_length=100, blank=True)
    # "low:high" user ids of a one-to-one chat: one chat per pair, reused when
    # two people become friends again. Null for groups.
    direct_key = models.CharField(max_length=41, unique=True, null=True, blank=True, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)
    last_activity_at = models.DateTimeField(auto_now_add=True, db_index=True)

    objects = ChatQuerySet.as_manager()

    class Meta:
        ordering = ["-last_activity_at"]
        permissions = [("moderate_messages", "Can find, read and remove messages")]

    def __str__(self) -> str:
        return self.name or f"chat {self.pk}"

    @staticmethod
    def key_for_pair(user_a_id: int, user_b_id: int) -> str:
        low, high = sorted((int(user_a_id), int(user_b_id)))
        return f"{low}:{high}"


class ChatParticipantQuerySet(models.QuerySet):
    def is_member(self, *, chat_id: int, user_id: int) -> bool:
        """Whether this user is in this chat (one lookup in the membership's unique index)."""
        connection = connections[self.db]
        table = connection.ops.quote_name(self.model._meta.db_table)
        with connection.cursor() as cursor:
            cursor.execute(f"SELECT 1 FROM {table} WHERE chat_id = %s AND user_id = %s", [chat_id, user_id])  # noqa: S608
            return cursor.fetchone() is not None

    def members_among(self, pairs: list[tuple[int, int]]) -> set[tuple[int, int]]:
        """Those of these (chat id, user id) pairs that are memberships, in one query."""
        if not pairs:
            return set()
        connection = connections[self.db]
        table = connection.ops.quote_name(self.model._meta.db_table)
        match = " OR ".join("(chat_id = %s AND user_id = %s)" for _ in pairs)
        with connection.cursor() as cursor:
            cursor.execute(f"SELECT chat_id, user_id FROM {table} WHERE {match}", [v for pair in pairs for v in pair])  # noqa: S608
            return {(chat_id, user_id) for chat_id, user_id in cursor.fetchall()}

    def set_read_state(self, states: dict[int, tuple[str, int]]) -> None:
        """Set each membership's (by id) last read message and unread count in one UPDATE."""
        if not states:
            return
        connection = connections[self.db]
        table = connection.ops.quote_name(self.model._meta.db_table)
        cases = " ".join("WHEN %s THEN %s" for _ in states)
        ids = _placeholders(list(states))
        positions = [value for pk, (position, _) in states.items() for value in (pk, position)]
        counts = [value for pk, (_, unread) in states.items() for value in (pk, unread)]
        sql = (
            f"UPDATE {table} SET last_read_message_id = CASE id {cases} END, "  # noqa: S608
            f"unread_count = CASE id {cases} END WHERE id IN ({ids})"
        )
        _write(connection, sql, [*positions, *counts, *states])


class ChatParticipant(models.Model):
    chat = models.ForeignKey(Chat, on_delete=models.CASCADE, related_name="participants")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="chat_memberships")
    joined_at = models.DateTimeField(auto_now_add=True)
    # Id of the newest message this participant has read (opaque store id).
    last_read_message_id = models.CharField(max_length=64, blank=True, default="")
    # Messages of the others after last_read_message_id, kept with it (messaging.services) so that
    # badges cost no count however much is unread; `manage.py recount_unread` recounts them.
    unread_count = models.PositiveIntegerField(default=0)

    objects = ChatParticipantQuerySet.as_manager()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["chat", "user"], name="one_membership_per_chat")]

    def __str__(self) -> str:
        return f"{self.user_id} in {self.chat_id}"


class Message(models.Model):
    """A message, when the SQL database is the message store (no MONGODB_URL).

    The twin of the MongoDB document: plain ids rather than foreign keys, as the
    store stands apart from the rest of the schema. Only messaging.store.orm
    reads or writes it.
    """

    chat_id = models.BigIntegerField()
    sender_id = models.BigIntegerField()
    text = models.TextField(blank=True)
    image_url = models.CharField(max_length=500, blank=True)
    client_id = models.CharField(max_length=64)
    created_at = models.DateTimeField()
    deleted_at = models.DateTimeField(null=True, blank=True)
    deleted_by = models.BigIntegerField(null=True, blank=True)

    class Meta:
        indexes = [models.Index(fields=["chat_id", "id"], name="message_chat_paging")]
        constraints = [
            models.UniqueConstraint(fields=["chat_id", "sender_id", "client_id"], name="one_message_per_client_id")
        ]

    def __str__(self) -> str:
        return f"message {self.pk} in chat {self.chat_id}"
