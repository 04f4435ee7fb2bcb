"""Reads about chats and messages. Visibility lives here: what you may not see does not exist (404)."""

from __future__ import annotations

from dataclasses import dataclass

from accounts.models import User
from chat_realtime.errors import NotFoundError, ValidationFailed
from messaging.models import Chat, ChatParticipant
from messaging.store import StoredMessage, message_store
from messaging.store.base import InvalidMessageId

HISTORY_LIMIT_DEFAULT = 30
HISTORY_LIMIT_MAX = 100


def participant(*, user_id: int, chat_id: int) -> ChatParticipant:
    """The user's membership of the chat, or 404 whether the chat exists or not."""
    membership = ChatParticipant.objects.select_related("chat").filter(chat_id=chat_id, user_id=user_id).first()
    if membership is None:
        raise no_such_chat()
    return membership


def ensure_participant(*, user_id: int, chat_id: int) -> None:
    """404 unless the user is in the chat, as `participant`, for those that need nothing of the membership."""
    if not ChatParticipant.objects.is_member(chat_id=chat_id, user_id=user_id):
        raise no_such_chat()


def no_such_chat() -> NotFoundError:
    """The one answer for a chat that does not exist and for one that is not yours."""
    return NotFoundError("No such chat.")


@dataclass(frozen=True)
class ChatSummary:
    chat: Chat
    participants: list[User]
    last_message: StoredMessage | None
    unread_count: int


def chat_summaries(user: User, chat_ids: list[int] | None = None) -> list[ChatSummary]:
    """The user's chats (or those of `chat_ids` they belong to), most recent activity first."""
    memberships = ChatParticipant.objects.filter(user=user).select_related("chat").order_by("-chat__last_activity_at")
    if chat_ids is not None:
        memberships = memberships.filter(chat_id__in=chat_ids)
    memberships = list(memberships)
    ids = [m.chat_id for m in memberships]
    people: dict[int, list[User]] = {chat_id: [] for chat_id in ids}
    for row in ChatParticipant.objects.filter(chat_id__in=ids).select_related("user").order_by("user__username"):
        people[row.chat_id].append(row.user)
    latest = message_store().latest_of_chats(ids)
    return [
        ChatSummary(
            chat=m.chat,
            participants=people[m.chat_id],
            last_message=latest.get(m.chat_id),
            unread_count=m.unread_count,
        )
        for m in memberships
    ]


@dataclass(frozen=True)
class HistoryPage:
    messages: list[StoredMessage]
    next_before: str | None
    next_after: str | None


def history(*, user: User, chat_id: int, before: str | None, after: str | None, limit: int) -> HistoryPage:
    """A page of a chat's messages. Newest first, or with `after`, oldest first from that id. A cursor is
    a message id or None: an empty one is refused rather than read as none (newest first, where a client
    paging forward expects oldest first)."""
    ensure_participant(user_id=user.pk, chat_id=chat_id)
    for field, cursor in (("before", before), ("after", after)):
        if cursor == "":
            raise ValidationFailed({field: ["This is not a message id."]})
    if before and after:
        raise ValidationFailed({"after": ["Use either before or after, not both."]})
    limit = max(1, min(limit, HISTORY_LIMIT_MAX))
    store = message_store()
    try:
        if after:
            page = store.page_after(chat_id, after=after, limit=limit + 1)
            more = len(page) > limit
            page = page[:limit]
            return HistoryPage(messages=page, next_before=None, next_after=page[-1].id if more else None)
        page = store.page_before(chat_id, before=before, limit=limit + 1)
    except InvalidMessageId:
        field = "after" if after else "before"
        raise ValidationFailed({field: ["This is not a message id."]}) from None
    more = len(page) > limit
    page = page[:limit]
    return HistoryPage(messages=page, next_before=page[-1].id if more else None, next_after=None)


def visible_message(*, user_id: int, message_id: str) -> StoredMessage:
    """A message in one of the user's chats; 404 otherwise, whether it exists or not."""
    message = message_store().get(message_id) if isinstance(message_id, str) else None
    if message is None or not ChatParticipant.objects.filter(chat_id=message.chat_id, user_id=user_id).exists():
        raise NotFoundError("No such message.")
    return message
