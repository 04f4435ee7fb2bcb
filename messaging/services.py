"""Chat and message writes. The API, the websocket and the admin call these; each rule lives here once.

Sending a message, in order:
1. check: the sender is in the chat, may still write into it, is not flooding,
   and the message is valid (a websocket shows the WriteGrant of its last send
   instead of asking the database again);
2. store it (MongoDB or the SQL store): the message exists before anyone hears of it;
3. record it on the SQL side in one transaction: the chat's activity time,
   the sender's read position, and every participant's unread count (kept
   here and in `mark_read`, so that no badge needs a count);
4. after that commit, tell each participant, once per connection: `new_message`
   with their unread count where the chat is on screen, `chat_update` (the
   sidebar's news) elsewhere; the connection it was sent from gets its ack
   instead (chat_realtime.realtime.to_participant).
Websocket sends that arrive together go through these steps as one batch
(messaging.group_commit, `send_messages`): one store write and one SQL
transaction for the batch, each draft still checked and answered on its own.
With the SQL store, steps 2 and 3 are one transaction. MongoDB is outside it:
if step 3 fails, the message is stored but nobody was told and the sender
gets an error; resending the same `client_id` finds the stored message,
records it and acks it, so a retry repairs the SQL side. Other participants
then see it in history, not live.
"""

from __future__ import annotations

import logging
import re
import time
import unicodedata
from dataclasses import dataclass, replace
from typing import Any

from django.core.cache import cache
from django.db import IntegrityError, transaction

from accounts.models import User
from chat_realtime.errors import ApplicationError, AuthenticationError, NotFoundError, ValidationFailed
from chat_realtime.images import delete_message_image, message_image_url
from chat_realtime.rate_limits import count_attempts
from chat_realtime.realtime import publish, publish_to_chat, to_chat, to_participant, to_user
from messaging import events, selectors
from messaging.models import Chat, ChatParticipant, ReadState
from messaging.store import MessageStoreUnavailable, StoredMessage, message_store
from messaging.store.base import ClientKey, InvalidMessageId, NewMessage, UnreadWindow

logger = logging.getLogger(__name__)

MESSAGE_MAX_CHARS = 4000
CLIENT_ID_PATTERN = re.compile(r"[A-Za-z0-9_\-.:]{1,64}")
# What shows nothing on screen, though str.strip() keeps it: format characters (zero-width spaces, direction
# marks, the soft hyphen, the byte order mark), other controls, and the letters and symbols drawn blank.
INVISIBLE_CATEGORIES = {"Cc", "Cf", "Zs", "Zl", "Zp"}
BLANK_CHARACTERS = {
    "\u034f",  # the combining grapheme joiner
    "\u115f",
    "\u1160",
    "\u2800",
    "\u3164",
    "\uffa0",
    *map(chr, range(0x180B, 0x1810)),  # Mongolian variation selectors
    *map(chr, range(0xFE00, 0xFE10)),  # variation selectors
    *map(chr, range(0xE0100, 0xE01F0)),  # their supplement
}
TYPING_EVERY_SECONDS = 2
WRITE_GRANT_SECONDS = 30
TOO_FAST = "You are sending messages too fast. Wait a moment."


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


@dataclass(frozen=True)
class WriteGrant:
    """What a full check found: `sender_id` may write into `chat_id`, as of `checked_at` (monotonic seconds).

    A websocket keeps the grant it got with its last send and shows it with the
    next one, which then skips the membership, account and friendship queries.
    The connection drops its grants when a friendship of its user changes (and
    closes when the account is deactivated); WRITE_GRANT_SECONDS bounds how
    long a grant outlives a change whose event was lost.
    """

    sender_id: int
    chat_id: int
    checked_at: float

    def covers(self, *, sender_id: int, chat_id: int) -> bool:
        fresh = time.monotonic() - self.checked_at < WRITE_GRANT_SECONDS
        return fresh and self.sender_id == sender_id and self.chat_id == chat_id


def check_may_write(*, sender: User, chat_id: int) -> WriteGrant:
    """The sender is in the chat and may write into it (404, 401 account_inactive, 403 not_friends otherwise)."""
    membership = selectors.participant(user_id=sender.pk, chat_id=chat_id)
    _ensure_may_write(sender, membership.chat)
    return WriteGrant(sender_id=sender.pk, chat_id=chat_id, checked_at=time.monotonic())


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
    if "\x00" in text:
        raise ValidationFailed({"text": ["Null characters are not allowed."]})
    if not has_image and not _shows_something(text):
        raise ValidationFailed({"text": ["Write something, or attach an image."]})
    if len(text) > MESSAGE_MAX_CHARS:
        raise ValidationFailed({"text": [f"A message is at most {MESSAGE_MAX_CHARS} characters."]})
    return text


def _shows_something(text: str) -> bool:
    for character in text:  # the first character, nearly always
        if unicodedata.category(character) not in INVISIBLE_CATEGORIES and character not in BLANK_CHARACTERS:
            return True
    return False


@dataclass(frozen=True)
class MessageDraft:
    """One send, as an entry point received it: nothing checked yet."""

    sender: User
    chat_id: int
    text: Any
    client_id: Any
    image: Any = None
    origin_channel: str | None = None  # the connection it came from gets an ack instead of new_message
    grant: WriteGrant | None = None


@dataclass(frozen=True)
class SentMessage:
    message: StoredMessage
    created: bool  # False: this client_id was sent before; `message` is the stored one
    grant: WriteGrant | None  # None: the sender may no longer write here (a resend answered after an unfriend)
    # Announced with this send's batch (new, or an earlier try's message repaired): the chat's sidebar
    # moves to it, and `unread_count` is the sender's count in the chat right after it.
    announced: bool = False
    unread_count: int = 0


def send_message(
    *,
    sender: User,
    chat_id: int,
    text: Any,
    client_id: Any,
    image: Any = None,
    origin_channel: str | None = None,
) -> SentMessage:
    draft = MessageDraft(
        sender=sender, chat_id=chat_id, text=text, client_id=client_id, image=image, origin_channel=origin_channel
    )
    outcome = send_messages([draft])[0]
    if isinstance(outcome, ApplicationError):
        raise outcome
    return outcome


def send_messages(drafts: list[MessageDraft]) -> list[SentMessage | ApplicationError]:
    """Several sends at once, each checked on its own: one store write and one SQL transaction for them all.

    Answers in the order of `drafts`: the sent message, or the ApplicationError
    that refused that one draft. If the store is down, every draft not yet
    answered is refused with `store_unavailable`. The same client id twice in
    one batch is one message: the later draft is answered as a resend of the
    first, or, if the first was refused, checked as a send of its own.
    """
    outcomes: list[SentMessage | ApplicationError | None] = [None] * len(drafts)
    grants: dict[int, WriteGrant] = {}
    keys: dict[int, ClientKey] = {}
    repeats: dict[int, int] = {}  # index of a draft -> index of the first draft with its client key
    first_with_key: dict[ClientKey, int] = {}
    no_longer_friends: dict[int, ClientKey] = {}
    for index, draft in enumerate(drafts):
        try:
            grants[index] = _granted(draft)
            key = (draft.chat_id, draft.sender.pk, _valid_client_id(draft.client_id))
        except ApplicationError as error:
            outcomes[index] = error
            if (
                error.code == "not_friends"
                and isinstance(draft.client_id, str)
                and CLIENT_ID_PATTERN.fullmatch(draft.client_id)
            ):
                no_longer_friends[index] = (draft.chat_id, draft.sender.pk, draft.client_id)
            continue
        if key in first_with_key:
            repeats[index] = first_with_key[key]
        else:
            first_with_key[key] = index
            keys[index] = key
    if keys:
        with transaction.atomic():
            _store_and_record(drafts, keys, grants, outcomes)
    if no_longer_friends:
        _answer_resends_of_the_refused(no_longer_friends, outcomes)
    # A repeat of a stored draft is its resend (announced with the first, so its ack carries no count); a
    # repeat of a refused one is a send of its own, as if it came next: its own text, its own turn at the limit.
    on_their_own: list[int] = []
    for index, first in repeats.items():
        answer = outcomes[first]
        if isinstance(answer, SentMessage):
            outcomes[index] = replace(answer, created=False, grant=grants[index], announced=False, unread_count=0)
        elif isinstance(answer, ApplicationError) and answer.code == "store_unavailable":
            outcomes[index] = _store_down()  # the store is no nearer for a second try in this batch
        else:
            on_their_own.append(index)
    if on_their_own:
        for index, outcome in zip(on_their_own, send_messages([drafts[i] for i in on_their_own]), strict=True):
            outcomes[index] = outcome
    return outcomes  # type: ignore[return-value]  # every slot is filled by now


def _store_and_record(
    drafts: list[MessageDraft],
    keys: dict[int, ClientKey],
    grants: dict[int, WriteGrant],
    outcomes: list[SentMessage | ApplicationError | None],
) -> None:
    """Steps 2 and 3 for the drafts of `keys`, in the caller's transaction.

    The chats are locked first, in id order, by every writer: messages of one
    chat are then stored and committed in the same order on every worker (an
    id is never committed after a higher one that a reader may already have
    paged past), and a chat deleted meanwhile takes no message.
    """
    store = message_store()
    existing, read_states = Chat.objects.lock_with_read_states(key[0] for key in keys.values())
    for index, key in list(keys.items()):
        if key[0] not in existing:
            outcomes[index] = NotFoundError("No such chat.")
            del keys[index]
    try:
        earlier = store.find_by_client_ids(list(keys.values()))
    except MessageStoreUnavailable as error:
        _refused(outcomes, error)
        return

    recorded: list[tuple[MessageDraft, StoredMessage, bool]] = []
    fresh: list[int] = []
    for index, key in keys.items():
        if key in earlier:
            # A resend: answer with what was stored (and repair the SQL side if an earlier try stopped short).
            outcomes[index] = SentMessage(message=earlier[key], created=False, grant=grants[index])
            recorded.append((drafts[index], earlier[key], False))
        else:
            fresh.append(index)
    # Only new messages count against the limit: a resend is answered even while its sender is rate-limited.
    refusals = count_attempts("message", [f"user:{drafts[index].sender.pk}" for index in fresh], message=TOO_FAST)
    to_store: dict[int, NewMessage] = {}
    for index, refused in zip(fresh, refusals, strict=True):
        try:
            if refused is not None:
                raise refused
            to_store[index] = _new_message(drafts[index], client_id=keys[index][2])
        except ApplicationError as error:
            outcomes[index] = error
    if to_store:
        try:
            after = _newest_known(read_states) if store.ids_from_clocks else None
            stored = store.add_many(list(to_store.values()), after=after)
        except MessageStoreUnavailable as error:
            _refused(outcomes, error)
            if transaction.get_rollback():
                return  # the SQL store's failed write took this transaction with it: nothing more is recorded
        else:
            for index, (message, created) in zip(to_store, stored, strict=True):
                outcomes[index] = SentMessage(message=message, created=created, grant=grants[index])
                recorded.append((drafts[index], message, created))
    if recorded:
        # Only a resend needs its chat's activity time from before this batch (see _record): one found by the
        # lookup, or one whose original was committed after the lookup (the insert met it).
        resent_in = {message.chat_id for _, message, created in recorded if not created}
        active_until = (
            dict(Chat.objects.filter(pk__in=resent_in).values_list("pk", "last_activity_at")) if resent_in else {}
        )
        unread_after = _record(recorded, active_until, read_states)
        for index, outcome in enumerate(outcomes):
            if isinstance(outcome, SentMessage) and outcome.message.id in unread_after:
                outcomes[index] = replace(
                    outcome,
                    announced=True,
                    # No membership left (removed after its grant was checked): nothing there is unread for it.
                    unread_count=unread_after[outcome.message.id].get(outcome.grant.sender_id, 0),
                )


def _newest_known(read_states: list[ReadState]) -> dict[int, str]:
    """Each chat's newest message as its locked memberships show it: what you send, you have read, so the
    newest is some member's read position. New messages are stored after it (MessageStore.add_many)."""
    newest: dict[int, tuple[Any, str]] = {}
    for _, chat_id, _, last_read, _ in read_states:
        key = _position_key(last_read)
        if key is not None and (chat_id not in newest or key > newest[chat_id][0]):
            newest[chat_id] = (key, last_read)
    return {chat_id: message_id for chat_id, (_, message_id) in newest.items()}


def _answer_resends_of_the_refused(
    refused: dict[int, ClientKey], outcomes: list[SentMessage | ApplicationError | None]
) -> None:
    """A resend is answered with the stored message, even once its sender may no longer write there: it
    was sent while they could (its answer was lost), and refusing it would say "not sent" of a message in
    everyone's history. A new message stays refused."""
    try:
        stored = message_store().find_by_client_ids(list(refused.values()))
    except MessageStoreUnavailable:
        return  # the refusal stands: a retry once the store is back finds the message
    for index, key in refused.items():
        if key in stored:
            outcomes[index] = SentMessage(message=stored[key], created=False, grant=None)


def _granted(draft: MessageDraft) -> WriteGrant:
    if draft.grant is not None and draft.grant.covers(sender_id=draft.sender.pk, chat_id=draft.chat_id):
        return draft.grant
    return check_may_write(sender=draft.sender, chat_id=draft.chat_id)


def _new_message(draft: MessageDraft, *, client_id: str) -> NewMessage:
    """The checks that apply to new messages only (a resend was valid when it was first stored)."""
    text = _valid_text(draft.text, has_image=draft.image is not None)
    image_url = message_image_url(draft.image, chat_id=draft.chat_id) if draft.image is not None else ""
    return NewMessage(
        chat_id=draft.chat_id, sender_id=draft.sender.pk, text=text, image_url=image_url, client_id=client_id
    )


def _refused(outcomes: list[SentMessage | ApplicationError | None], error: MessageStoreUnavailable) -> None:
    """Every draft still unanswered gets `store_unavailable` (each its own error, for clean logs)."""
    logger.error("message store unavailable: %s", error)
    for index, outcome in enumerate(outcomes):
        if outcome is None:
            outcomes[index] = _store_down()


def _store_down() -> ApplicationError:
    return ApplicationError(
        "Your message could not be saved. Try again in a moment.", code="store_unavailable", status_code=503
    )


def _position_key(position: str) -> Any:
    """The store's order key of a read position; None for none, or for one it cannot read (left by the other
    message store, say), which then counts as nothing read and heals with the next read or send."""
    if not position:
        return None
    try:
        return message_store().order_key(position)
    except InvalidMessageId:
        return None


def _readable_position(position: str) -> str | None:
    """A read position the store can order by, or None (as `_position_key`)."""
    return position if _position_key(position) is not None else None


def _is_newer(message_id: str, than: str) -> bool:
    than_key = _position_key(than)
    return than_key is None or message_store().order_key(message_id) > than_key


def _record(
    recorded: list[tuple[MessageDraft, StoredMessage, bool]], active_until: dict[int, Any], read_states: list[ReadState]
) -> dict[str, dict[int, int]]:
    """The SQL side of stored messages, in the caller's transaction: each chat's activity time, each
    participant's read position and unread count; then, after commit, `new_message` to each chat and
    `chat_update` to each participant. Answers, for each message announced, each participant's unread
    count right after it (message id -> user id -> count).

    `read_states` are the memberships of (at least) these messages' chats, read under the chats' lock.
    `active_until` holds, for each chat with a resend in this batch, its activity time before it. A message
    is announced when it was just stored, or when an earlier try stored it but
    never got this far (the chat's activity time is older than it); once, in
    the order of its chat.
    """
    store = message_store()
    # Each message's place in its chat, worked out once: a batch compares them many times over.
    order = {message.id: store.order_key(message.id) for _, message, _ in recorded}
    newest_in_chat: dict[int, StoredMessage] = {}
    newest_of_sender: dict[tuple[int, int], StoredMessage] = {}
    for _, message, _ in recorded:
        for newest, key in (
            (newest_in_chat, message.chat_id),
            (newest_of_sender, (message.chat_id, message.sender_id)),
        ):
            if key not in newest or order[message.id] > order[newest[key].id]:
                newest[key] = message
    _advance_chats(newest_in_chat)

    announced: dict[str, tuple[MessageDraft, StoredMessage]] = {}
    for draft, message, created in recorded:
        if created or message.created_at > active_until[message.chat_id]:
            announced.setdefault(message.id, (draft, message))
    in_order = sorted(announced.values(), key=lambda pair: (pair[1].chat_id, order[pair[1].id]))
    arrived: dict[int, list[StoredMessage]] = {}
    for _, message in in_order:
        arrived.setdefault(message.chat_id, []).append(message)
    created_ids = {message.id for _, message, created in recorded if created}
    # A resend may repair a message stored before this batch whose SQL side was never recorded: a read since
    # may have counted it already, and one older than the chat's activity time is not announced but must
    # still be counted. Resends are rare: their chats' counts are recounted from the store.
    repaired_in = {message.chat_id for _, message, created in recorded if not created}

    # What you send, you have read; what the others send is unread. The chats and their participants are
    # locked already, so nobody's read state moves between this and the chat_updates.
    readers: list[tuple[int, int, int]] = []  # chat, user, unread
    after: dict[str, dict[int, int]] = {message.id: {} for _, message in in_order}  # each reader's count
    changed: dict[int, tuple[str, int]] = {}
    recount: dict[int, tuple[int, int, str]] = {}
    for pk, chat_id, user_id, last_read, before in read_states:
        if chat_id not in newest_in_chat:
            continue  # every draft to this chat was refused
        newest = newest_of_sender.get((chat_id, user_id))
        read_up_to = _position_key(last_read)
        position = last_read
        if newest is not None and (read_up_to is None or order[newest.id] > read_up_to):
            position = newest.id
        if chat_id in repaired_in or (position != last_read and position not in created_ids):
            # A repair in the chat, or a position moved to a resend of something stored earlier: the store
            # counts what is unread after the position, rather than adding the arrivals to a count that may
            # hold some of them already.
            recount[pk] = (chat_id, user_id, position)
            continue
        # Their own newest message, if any, is among the arrivals: counting along them ends where it does.
        along = _unread_along(arrived.get(chat_id, []), order, user_id, before, read_up_to)
        for message_id, count in along.items():
            after[message_id][user_id] = count
        unread = list(along.values())[-1] if along else before
        if position != last_read or unread != before:
            changed[pk] = (position, unread)
        readers.append((chat_id, user_id, unread))
    if recount:
        windows = [UnreadWindow(chat_id, position, user_id) for chat_id, user_id, position in recount.values()]
        for (pk, (chat_id, user_id, position)), unread in zip(
            recount.items(), store.count_unread(windows), strict=True
        ):
            changed[pk] = (position, unread)
            readers.append((chat_id, user_id, unread))
            for message in arrived.get(chat_id, []):
                after[message.id][user_id] = unread  # repairs are rare: the batch's final count throughout
    ChatParticipant.objects.set_read_state(changed)

    # Each participant hears of each message once, on each connection: the message with their unread count
    # where the chat is on screen; elsewhere the sidebar's news, with the chat's last message of the batch.
    participants: dict[int, list[int]] = {}
    for _, chat_id, user_id, _, _ in read_states:
        participants.setdefault(chat_id, []).append(user_id)
    unread_now = {(chat_id, user_id): unread for chat_id, user_id, unread in readers}
    last_arrived = {chat_id: messages[-1].id for chat_id, messages in arrived.items()}
    shown_of = {message.id: events.new_message_frame(message) for _, message in in_order}
    news = {}
    for chat_id in arrived:
        newest = newest_in_chat[chat_id]
        shown = shown_of.get(newest.id)
        news[chat_id] = events.last_message_data(newest, data=shown["message"] if shown else None)
    published = []
    for draft, message in in_order:
        chat_id = message.chat_id
        shown = shown_of[message.id]
        for user_id in participants.get(chat_id, ()):
            elsewhere = None
            if message.id == last_arrived[chat_id]:
                elsewhere = events.chat_update_frame(
                    chat_id=chat_id,
                    sender_id=newest_in_chat[chat_id].sender_id,
                    last_message=news[chat_id],
                    unread_count=unread_now[(chat_id, user_id)],
                )
            published.append(
                to_participant(
                    user_id,
                    chat_id,
                    on_screen={**shown, "unread_count": after[message.id][user_id]},
                    elsewhere=elsewhere,
                    exclude_channel=draft.origin_channel,
                )
            )
    publish(published)
    return after


def _unread_along(
    arriving: list[StoredMessage], order: dict[str, Any], reader_id: int, unread: int, read_up_to: Any
) -> dict[str, int]:
    """A reader's unread count right after each of a chat's arriving messages (in order), from their count
    and read position before them (its order key, None for none): what the others send counts, what the
    reader sends reads all before it."""
    counts = {}
    for message in arriving:
        if read_up_to is None or order[message.id] > read_up_to:
            if message.sender_id == reader_id:
                unread, read_up_to = 0, order[message.id]
            else:
                unread += 1
        counts[message.id] = unread
    return counts


def _advance_chats(newest_in_chat: dict[int, StoredMessage]) -> None:
    """Move each chat's activity time forward (never back) to its newest message: one UPDATE per distinct time."""
    chats_at: dict[Any, list[int]] = {}
    for chat_id, message in newest_in_chat.items():
        chats_at.setdefault(message.created_at, []).append(chat_id)
    for created_at, chat_ids in chats_at.items():
        Chat.objects.advance_activity(chat_ids, created_at)


def _publish_chat_updates(
    latest: dict[int, StoredMessage | None],
    *,
    user_id: int | None = None,
    sender_known: bool = True,
    readers: list[tuple[int, int, int]] | None = None,
) -> None:
    """After commit, each participant of these chats (or only `user_id`) gets the chat's newest message
    and their unread count: read from the memberships, or given as `readers` (chat, user, unread) by a
    caller that has them from its transaction.
    """
    if not latest:
        return
    if readers is None:
        memberships = ChatParticipant.objects.filter(chat_id__in=latest)
        if user_id is not None:
            memberships = memberships.filter(user_id=user_id)
        readers = list(memberships.values_list("chat_id", "user_id", "unread_count"))
    # One copy of each chat's last message for all its participants' frames.
    last_messages = {chat_id: events.last_message_data(message) for chat_id, message in latest.items()}
    updates = []
    for chat_id, reader_id, unread in readers:
        last_message = latest[chat_id]
        frame = events.chat_update_frame(
            chat_id=chat_id,
            sender_id=last_message.sender_id if sender_known and last_message else None,
            last_message=last_messages[chat_id],
            unread_count=unread,
        )
        updates.append(to_user(reader_id, frame))
    publish(updates)


@dataclass(frozen=True)
class ReadMark:
    """One "read up to here", as an entry point received it: nothing checked yet. `newest`: up to whatever
    is the chat's newest message when the mark is applied (`message_id` is then not looked at)."""

    user: User
    chat_id: int
    message_id: Any
    newest: bool = False

    @classmethod
    def up_to_newest(cls, *, user: User, chat_id: int) -> ReadMark:
        """The read of a chat being opened: up to its newest message, whatever that is when the read applies."""
        return cls(user=user, chat_id=chat_id, message_id=None, newest=True)


def mark_read(*, user: User, chat_id: int, message_id: Any) -> None:
    """Move the user's read position to `message_id` (never backwards) and tell the others."""
    refused = mark_reads([ReadMark(user=user, chat_id=chat_id, message_id=message_id)])[0]
    if refused is not None:
        raise refused


def mark_reads(marks: list[ReadMark]) -> list[ApplicationError | None]:
    """Several reads at once, each checked and answered on its own (None, or the error that refused it),
    in one transaction: a browser marks every message read as it arrives in the chat on screen, so reads
    come about as often as sends (messaging.group_commit batches them alike).

    The usual read, up to its chat's newest message, costs no count: nothing comes after the newest.
    Marks of one person in one chat apply in order; one that is not past the position is no change.
    """
    outcomes: list[ApplicationError | None] = [None] * len(marks)
    for index, mark in enumerate(marks):
        if not mark.newest and (not isinstance(mark.message_id, str) or not mark.message_id):
            outcomes[index] = ValidationFailed({"message_id": ["message_id must be a message id (a string)."]})
    # Asked before anything is locked: nobody locks a chat that is not theirs.
    members = ChatParticipant.objects.members_among(
        [(mark.chat_id, mark.user.pk) for index, mark in enumerate(marks) if outcomes[index] is None]
    )
    todo = {}
    for index, mark in enumerate(marks):
        if outcomes[index] is None:
            if (mark.chat_id, mark.user.pk) in members:
                todo[index] = mark
            else:
                outcomes[index] = selectors.no_such_chat()
    if todo:
        try:
            with transaction.atomic():
                _mark_reads(todo, outcomes)
        except MessageStoreUnavailable as error:
            # Nothing of the batch was written: each mark not refused on its own hears that the store is down.
            logger.error("message store unavailable: %s", error)
            for index in todo:
                if outcomes[index] is None:
                    outcomes[index] = MessageStoreUnavailable(error.detail)  # nothing was saved: not "your message"
    return outcomes


def _mark_reads(marks: dict[int, ReadMark], outcomes: list[ApplicationError | None]) -> None:
    store = message_store()
    # Locked as a batch of sends locks them, chats first: a batch into these chats commits before the reads
    # below (which then see its messages), or starts after this commits (and counts from the new positions).
    _, memberships = Chat.objects.lock_with_read_states({mark.chat_id for mark in marks.values()})
    positions = {(state.chat_id, state.user_id): state for state in memberships}
    latest = store.latest_of_chats(sorted({mark.chat_id for mark in marks.values()}))
    moved: dict[tuple[int, int], StoredMessage] = {}  # (chat, user) -> the message read up to
    for index, mark in marks.items():
        key = (mark.chat_id, mark.user.pk)
        state = positions.get(key)
        if state is None:
            outcomes[index] = selectors.no_such_chat()  # left it meanwhile
            continue
        newest = latest.get(mark.chat_id)
        if mark.newest:
            if newest is None:
                continue  # nothing in the chat yet: nothing to read
            message = newest
        else:
            message = newest if newest is not None and newest.id == mark.message_id else store.get(mark.message_id)
            if message is None or message.chat_id != mark.chat_id:
                outcomes[index] = NotFoundError("No such message in this chat.")
                continue
        position = moved[key].id if key in moved else state.last_read_message_id
        if _is_newer(message.id, position):
            moved[key] = message
    if not moved:
        return
    # Up to the newest, nothing is unread; up to an older message, what the others sent after it.
    behind = {
        key: message
        for key, message in moved.items()
        if (newest := latest.get(key[0])) is None or message.id != newest.id
    }
    windows = [UnreadWindow(chat_id, message.id, user_id) for (chat_id, user_id), message in behind.items()]
    unread = dict.fromkeys(moved, 0) | dict(zip(behind, store.count_unread(windows), strict=True))
    ChatParticipant.objects.set_read_state(
        {positions[key].membership_id: (message.id, unread[key]) for key, message in moved.items()}
    )
    publish(
        [
            to_chat(
                chat_id,
                events.read_frame(chat_id=chat_id, user_id=user_id, message_id=message.id),
                exclude_user_id=user_id,
            )
            for (chat_id, user_id), message in moved.items()
        ]
    )
    _publish_chat_updates(
        {chat_id: latest.get(chat_id) for chat_id, _ in moved},
        readers=[(chat_id, user_id, unread[(chat_id, user_id)]) for chat_id, user_id in moved],
        sender_known=False,
    )


RECOUNT_CHATS_PER_TRANSACTION = 200


def recount_unread(chat_ids: list[int] | None = None) -> int:
    """Count each membership's unread messages again (of these chats, or all) and store the counts;
    answers how many were wrong. For after messages were written past the services (a restore, a seed)."""
    if chat_ids is None:
        chat_ids = list(Chat.objects.order_by("pk").values_list("pk", flat=True))
    corrected = 0
    for start in range(0, len(chat_ids), RECOUNT_CHATS_PER_TRANSACTION):
        with transaction.atomic():
            # Locked as sending locks them, chats first: no send counts in while this counts.
            batch = chat_ids[start : start + RECOUNT_CHATS_PER_TRANSACTION]
            _, memberships = Chat.objects.lock_with_read_states(batch)
            windows = [
                UnreadWindow(chat_id, _readable_position(position), user_id)
                for _, chat_id, user_id, position, _ in memberships
            ]
            wrong = {
                pk: (position, unread)
                for (pk, _, _, position, stored), unread in zip(
                    memberships, message_store().count_unread(windows), strict=True
                )
                if unread != stored
            }
            ChatParticipant.objects.set_read_state(wrong)
            corrected += len(wrong)
    return corrected


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
    if before.image_url:
        # Hidden everywhere, and no longer served at its address to whoever kept the link. Also when removed
        # already: a message removed before images were deleted with it still had its image.
        transaction.on_commit(lambda: delete_message_image(before.image_url))
    if before.is_deleted:
        return before  # already removed: nothing new to tell anyone
    message = message_store().soft_delete(message_id, deleted_by=moderator.pk)
    publish_to_chat(message.chat_id, events.message_deleted_frame(message))
    latest = message_store().latest(message.chat_id)
    _publish_chat_updates({message.chat_id: latest}, sender_known=False)
    resolve_reports(target_key=f"message:{message.id}", action=Report.Action.MESSAGE_REMOVED, moderator=moderator)
    return message
