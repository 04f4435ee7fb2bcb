"""Chat and message writes. The API, the websocket and the admin call these; each rule lives here once.

Sending a message, in order:
1. check: the sender is in the chat, may still write into it, is not flooding,
   and the message is valid;
2. store it (MongoDB or the SQL store): the message exists before anyone hears of it;
3. record it on the SQL side in one transaction: the chat's activity time and
   the sender's read position;
4. after that commit, publish `new_message` to the chat and `chat_update` to
   each participant.
The store is outside the SQL transaction. If step 3 fails, the message is
stored but nobody was told and the sender gets an error; resending the same
`client_id` finds the stored message, records it and acks it, so a retry
repairs the SQL side. Other participants then see it in history, not live.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from typing import Any

from django.core.cache import cache
from django.db import IntegrityError, transaction

from accounts.models import User
from chat_realtime.errors import ApplicationError, AuthenticationError, NotFoundError, ValidationFailed
from chat_realtime.images import message_image_url
from chat_realtime.rate_limits import check_rate_limit
from chat_realtime.realtime import publish_to_chat, publish_to_user
from messaging import events, selectors
from messaging.models import Chat, ChatParticipant
from messaging.store import MessageStoreUnavailable, StoredMessage, message_store

logger = logging.getLogger(__name__)

MESSAGE_MAX_CHARS = 4000
CLIENT_ID_PATTERN = re.compile(r"[A-Za-z0-9_\-.:]{1,64}")
TYPING_EVERY_SECONDS = 2


def get_or_create_direct_chat(*, user_a: User, user_b: User) -> Chat:
    """The one-to-one chat of two people: created the first time, reused ever after."""
    key = Chat.key_for_pair(user_a.pk, user_b.pk)
    chat = Chat.objects.filter(direct_key=key).first()
    if chat is None:
        try:
            with transaction.atomic():
                chat = Chat.objects.create(direct_key=key)
                ChatParticipant.objects.bulk_create(
                    [ChatParticipant(chat=chat, user=user_a), ChatParticipant(chat=chat, user=user_b)]
                )
        except IntegrityError:
            # Both accepted at once; the other transaction made it.
            chat = Chat.objects.get(direct_key=key)
    return chat


def _ensure_may_write(sender: User, chat: Chat) -> None:
    """Only active people write; one-to-one chats are for friends: after an unfriend the history stays."""
    # Asked of the database: a socket opened before a ban still carries the old user.
    if not User.objects.filter(pk=sender.pk, is_active=True).exists():
        raise AuthenticationError("Your account is deactivated.", code="account_inactive")
    if chat.is_group:
        return
    from friends.selectors import are_friends

    other_ids = ChatParticipant.objects.filter(chat=chat).exclude(user=sender).values_list("user_id", flat=True)
    if not all(are_friends(sender.pk, other_id) for other_id in other_ids):
        raise ApplicationError(
            "You are no longer friends: this chat is read-only.", code="not_friends", status_code=403
        )


def _valid_client_id(client_id: Any) -> str:
    if not isinstance(client_id, str) or not CLIENT_ID_PATTERN.fullmatch(client_id):
        raise ValidationFailed({"client_id": ["Give each message a client_id of 1 to 64 letters, digits, or - _ . :"]})
    return client_id


def _valid_text(text: Any, *, has_image: bool) -> str:
    if text is None:
        text = ""
    if not isinstance(text, str):
        raise ValidationFailed({"text": ["The text must be a string."]})
    text = text.strip()
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        # JSON can carry lone surrogates ("\ud800"); no store can keep them.
        raise ValidationFailed({"text": ["The text is not valid Unicode."]}) from None
    if not text and not has_image:
        raise ValidationFailed({"text": ["Write something, or attach an image."]})
    if len(text) > MESSAGE_MAX_CHARS:
        raise ValidationFailed({"text": [f"A message is at most {MESSAGE_MAX_CHARS} characters."]})
    return text


@dataclass(frozen=True)
class SentMessage:
    message: StoredMessage
    created: bool  # False: this client_id was sent before; `message` is the stored one


def send_message(
    *,
    sender: User,
    chat_id: int,
    text: Any,
    client_id: Any,
    image: Any = None,
    origin_channel: str | None = None,
) -> SentMessage:
    client_id = _valid_client_id(client_id)
    membership = selectors.participant(user_id=sender.pk, chat_id=chat_id)
    chat = membership.chat
    _ensure_may_write(sender, chat)
    store = message_store()

    try:
        earlier = store.get_by_client_id(chat_id=chat.pk, sender_id=sender.pk, client_id=client_id)
    except MessageStoreUnavailable as error:
        raise _store_down(error) from error
    if earlier is not None:
        _record(chat, sender, earlier, announce=False)
        return SentMessage(message=earlier, created=False)

    check_rate_limit("message", key=f"user:{sender.pk}", message="You are sending messages too fast. Wait a moment.")
    text = _valid_text(text, has_image=image is not None)
    image_url = message_image_url(image, chat_id=chat.pk) if image is not None else ""
    try:
        message, created = store.add(
            chat_id=chat.pk, sender_id=sender.pk, text=text, image_url=image_url, client_id=client_id
        )
    except MessageStoreUnavailable as error:
        raise _store_down(error) from error
    _record(chat, sender, message, announce=created, origin_channel=origin_channel)
    return SentMessage(message=message, created=created)


def _store_down(error: Exception) -> ApplicationError:
    logger.error("message store unavailable: %s", error)
    return ApplicationError(
        "Your message could not be saved. Try again in a moment.", code="store_unavailable", status_code=503
    )


def _is_newer(message_id: str, than: str) -> bool:
    if not than:
        return True
    store = message_store()
    return store.order_key(message_id) > store.order_key(than)


@transaction.atomic
def _record(
    chat: Chat, sender: User, message: StoredMessage, *, announce: bool, origin_channel: str | None = None
) -> None:
    """The SQL side of a stored message; announces it if asked, or if an earlier try never got this far."""
    advanced = Chat.objects.filter(pk=chat.pk, last_activity_at__lt=message.created_at).update(
        last_activity_at=message.created_at
    )
    # What you send, you have read.
    mine = ChatParticipant.objects.select_for_update().get(chat=chat, user=sender)
    if _is_newer(message.id, mine.last_read_message_id):
        mine.last_read_message_id = message.id
        mine.save(update_fields=["last_read_message_id"])
    if announce or advanced:
        publish_to_chat(chat.pk, events.new_message_frame(message), exclude_channel=origin_channel)
        # Counted after commit, outside the transaction: a failure here loses a badge update, never the message.
        transaction.on_commit(
            lambda: _publish_chat_updates(chat.pk, sender_id=sender.pk, last_message=message), robust=True
        )


def _publish_chat_updates(chat_id: int, *, sender_id: int | None, last_message: StoredMessage | None) -> None:
    for membership in ChatParticipant.objects.filter(chat_id=chat_id):
        frame = events.chat_update_frame(
            chat_id=chat_id,
            sender_id=sender_id,
            last_message=last_message,
            unread_count=selectors.unread_count(membership),
        )
        publish_to_user(membership.user_id, frame)


@transaction.atomic
def mark_read(*, user: User, chat_id: int, message_id: Any) -> None:
    """Move the user's read position to `message_id` (never backwards) and tell the others."""
    if not isinstance(message_id, str) or not message_id:
        raise ValidationFailed({"message_id": ["message_id must be a message id (a string)."]})
    membership = selectors.participant(user_id=user.pk, chat_id=chat_id)
    message = message_store().get(message_id)
    if message is None or message.chat_id != membership.chat_id:
        raise NotFoundError("No such message in this chat.")
    membership = ChatParticipant.objects.select_for_update().get(pk=membership.pk)
    if not _is_newer(message.id, membership.last_read_message_id):
        return
    membership.last_read_message_id = message.id
    membership.save(update_fields=["last_read_message_id"])
    publish_to_chat(
        chat_id, events.read_frame(chat_id=chat_id, user_id=user.pk, message_id=message.id), exclude_user_id=user.pk
    )
    publish_to_user(
        user.pk,
        events.chat_update_frame(
            chat_id=chat_id,
            sender_id=None,
            last_message=message_store().latest(chat_id),
            unread_count=selectors.unread_count(membership),
        ),
    )


def open_chat(*, user: User, chat_id: int) -> None:
    """The user is looking at the chat: everything in it so far counts as read."""
    selectors.participant(user_id=user.pk, chat_id=chat_id)
    latest = message_store().latest(chat_id)
    if latest is not None:
        mark_read(user=user, chat_id=chat_id, message_id=latest.id)


def announce_typing(*, user: User, chat_id: int) -> None:
    """Tell the others in the chat that the user is typing; at most once per TYPING_EVERY_SECONDS."""
    membership = selectors.participant(user_id=user.pk, chat_id=chat_id)
    _ensure_may_write(user, membership.chat)
    try:
        first_in_a_while = cache.add(f"typing:{int(chat_id)}:{user.pk}", 1, timeout=TYPING_EVERY_SECONDS)
    except Exception:
        return  # Redis away: typing is a nicety, not worth an error
    if not first_in_a_while:
        return
    publish_to_chat(chat_id, events.typing_frame(chat_id=chat_id, user_id=user.pk), exclude_user_id=user.pk)


@transaction.atomic
def remove_message(*, message_id: str, moderator: User) -> StoredMessage:
    """A moderator removes a message: it keeps its place as "message removed", everywhere at once."""
    from accounts.models import Report
    from accounts.services import resolve_reports

    before = message_store().get(message_id)
    if before is None:
        raise NotFoundError("No such message.")
    if before.is_deleted:
        return before  # already removed: nothing new to tell anyone
    message = message_store().soft_delete(message_id, deleted_by=moderator.pk)
    publish_to_chat(message.chat_id, events.message_deleted_frame(message))
    latest = message_store().latest(message.chat_id)
    transaction.on_commit(
        lambda: _publish_chat_updates(message.chat_id, sender_id=None, last_message=latest), robust=True
    )
    resolve_reports(target_key=f"message:{message.id}", action=Report.Action.MESSAGE_REMOVED, moderator=moderator)
    return message
