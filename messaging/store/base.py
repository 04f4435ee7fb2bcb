"""The message store's contract.

Message ids are opaque strings to everyone outside the store. Within a chat,
ids sort in creation order; the store pages by them, so paging is stable
while messages keep arriving.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, NamedTuple, Protocol

from chat_realtime.errors import ApplicationError


class MessageStoreUnavailable(ApplicationError):
    """The store could not be reached or refused the operation; nothing was written.

    An ApplicationError, so every entry point answers it the same way: 503
    `store_unavailable` over HTTP, an error frame over the websocket.
    """

    status_code = 503
    code = "store_unavailable"

    def __init__(self, detail: str) -> None:
        super().__init__("Messages are unavailable for a moment. Try again shortly.")
        self.detail = detail

    def __str__(self) -> str:
        return self.detail


class InvalidMessageId(ValueError):
    """A string that cannot be one of this store's message ids."""


@dataclass(frozen=True)
class StoredMessage:
    id: str
    chat_id: int
    sender_id: int
    text: str
    image_url: str
    client_id: str
    created_at: datetime
    deleted_at: datetime | None = None
    deleted_by: int | None = None

    @property
    def is_deleted(self) -> bool:
        return self.deleted_at is not None


@dataclass(frozen=True)
class NewMessage:
    """A message to store, before it has an id."""

    chat_id: int
    sender_id: int
    text: str
    image_url: str
    client_id: str

    @property
    def client_key(self) -> ClientKey:
        return (self.chat_id, self.sender_id, self.client_id)


class UnreadWindow(NamedTuple):
    """One participant's unread messages: in `chat_id`, after `after` (all if None), not their own."""

    chat_id: int
    after: str | None
    reader_id: int


# (chat_id, sender_id, client_id): what makes a send unique, so a resend stores nothing new.
ClientKey = tuple[int, int, str]


class MessageStore(Protocol):
    # Whether ids come from the writers' clocks, so that `add_many` needs each chat's newest (`after`) to
    # store after it; the SQL store's database numbers rows in commit order by itself.
    ids_from_clocks: bool

    def add(
        self, *, chat_id: int, sender_id: int, text: str, image_url: str, client_id: str
    ) -> tuple[StoredMessage, bool]:
        """Store a message; (message, True). If this sender already sent `client_id`
        in this chat, nothing is written: (the earlier message, False)."""

    def add_many(
        self, messages: list[NewMessage], *, after: Mapping[int, str] | None = None
    ) -> list[tuple[StoredMessage, bool]]:
        """`add` for several messages in one write (a group commit), answered in the same order.

        Ids follow the list's order, and sort after `after[chat_id]` (the newest message of that chat
        the caller knows, under the chat's lock), whatever process wrote that one and whatever its
        clock said. MessageStoreUnavailable means the answer is unknown: the SQL store wrote none of
        them, MongoDB may have written some; either way a resend of each finds what was stored."""

    def find_by_client_ids(self, keys: list[ClientKey]) -> dict[ClientKey, StoredMessage]:
        """The messages already sent under these client keys, in one round trip."""

    def get(self, message_id: str) -> StoredMessage | None: ...

    def get_by_client_id(self, *, chat_id: int, sender_id: int, client_id: str) -> StoredMessage | None: ...

    def page_before(self, chat_id: int, *, before: str | None, limit: int) -> list[StoredMessage]:
        """Up to `limit` messages older than `before` (or the newest), newest first."""

    def page_after(self, chat_id: int, *, after: str, limit: int) -> list[StoredMessage]:
        """Up to `limit` messages newer than `after`, oldest first."""

    def count_after(self, chat_id: int, *, after: str | None, exclude_sender_id: int | None = None) -> int:
        """Messages newer than `after` (all when None), leaving out one sender's."""

    def count_unread(self, windows: list[UnreadWindow]) -> list[int]:
        """Each window's count, in one round trip, answered in the same order."""

    def latest(self, chat_id: int) -> StoredMessage | None: ...

    def latest_of_chats(self, chat_ids: list[int]) -> dict[int, StoredMessage]:
        """The newest message of each chat that has one: one round trip for up to a few hundred chats."""

    def search(
        self,
        *,
        chat_id: int | None = None,
        sender_id: int | None = None,
        text: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        limit: int = 50,
    ) -> list[StoredMessage]:
        """For moderators: newest first, every given condition met (`text` is a case-insensitive substring)."""

    def soft_delete(self, message_id: str, *, deleted_by: int) -> StoredMessage | None:
        """Mark a message removed (it keeps its place in history); None if unknown."""

    def order_key(self, message_id: str) -> Any:
        """A value that sorts like the ids do; InvalidMessageId if it is not one."""
