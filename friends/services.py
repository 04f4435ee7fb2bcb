"""Friendship and notification writes. Every entry point (API, browser, admin) calls these.

The rules:
- send: not to yourself (400), not to an unknown or deactivated user (404),
  not twice (409 `request_pending`), not to a friend (409 `already_friends`).
  A request that crosses one from the other side accepts it: both want it.
- accept and reject: only the receiver. cancel: only the requester.
  unfriend: either side. A missing request or friendship is 404.
- accept creates or reuses the pair's one-to-one chat in the same transaction;
  unfriend keeps the chat and its history.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.db import IntegrityError, OperationalError, transaction
from django.utils import timezone

from accounts.models import User
from chat_realtime.errors import ApplicationError, ConflictError, NotFoundError
from chat_realtime.realtime import publish_to_user
from friends import cache, events
from friends.models import Friendship, Notification
from friends.selectors import FriendshipState, friendship_between
from messaging.models import Chat
from messaging.services import get_or_create_direct_chat
from presence import services as presence

# Concurrent requests between the same two people: the unique pair constraint
# lets one insert win; the other looks again and sees it.
_ATTEMPTS = 3


@dataclass(frozen=True)
class FriendRequestOutcome:
    friendship: Friendship
    other: User
    chat: Chat | None  # set when the request accepted a crossing one


def _active_user(user_id: int) -> User:
    other = User.objects.filter(pk=user_id, is_active=True).first()
    if other is None:
        raise NotFoundError("No such user.")
    return other


def _pair(user_a_id: int, user_b_id: int) -> tuple[int, int]:
    low, high = sorted((int(user_a_id), int(user_b_id)))
    return low, high


def _locked_friendship(user_a_id: int, user_b_id: int) -> Friendship | None:
    low, high = _pair(user_a_id, user_b_id)
    return Friendship.objects.select_for_update().filter(user_low_id=low, user_high_id=high).first()


def send_friend_request(*, sender: User, receiver_id: int) -> FriendRequestOutcome:
    if int(receiver_id) == sender.pk:
        raise ApplicationError("You cannot send a friend request to yourself.", code="cannot_befriend_self")
    receiver = _active_user(receiver_id)
    for attempt in range(_ATTEMPTS):
        try:
            return _send_friend_request(sender, receiver)
        except (IntegrityError, OperationalError):
            # Lost a race with the other side's request (or a deadlock on MySQL): look again.
            if attempt == _ATTEMPTS - 1:
                raise
    raise AssertionError("unreachable")


@transaction.atomic
def _send_friend_request(sender: User, receiver: User) -> FriendRequestOutcome:
    existing = _locked_friendship(sender.pk, receiver.pk) if friendship_between(sender.pk, receiver.pk) else None
    if existing is not None:
        if existing.status == Friendship.Status.ACCEPTED:
            raise ConflictError("You are already friends.", code="already_friends")
        if existing.requester_id == sender.pk:
            raise ConflictError("Your friend request is already waiting for an answer.", code="request_pending")
        chat = _accept(existing, receiver=sender, requester=receiver)
        return FriendRequestOutcome(friendship=existing, other=receiver, chat=chat)
    low, high = _pair(sender.pk, receiver.pk)
    with transaction.atomic():
        friendship = Friendship.objects.create(user_low_id=low, user_high_id=high, requester=sender)
    _notify(
        receiver=receiver,
        sender=sender,
        type=Notification.Type.FRIEND_REQUEST,
        content=f"{sender.username} sent you a friend request.",
    )
    publish_to_user(sender.pk, events.friendship_frame(user_id=receiver.pk, state=FriendshipState.OUTGOING))
    publish_to_user(receiver.pk, events.friendship_frame(user_id=sender.pk, state=FriendshipState.INCOMING))
    return FriendRequestOutcome(friendship=friendship, other=receiver, chat=None)


def _pending_request(*, requester_id: int, receiver: User) -> Friendship:
    friendship = _locked_friendship(requester_id, receiver.pk)
    if (
        friendship is None
        or friendship.status != Friendship.Status.PENDING
        or friendship.requester_id != int(requester_id)
    ):
        raise NotFoundError("There is no friend request from this user.")
    return friendship


@transaction.atomic
def accept_friend_request(*, receiver: User, requester_id: int) -> tuple[Friendship, Chat, User]:
    friendship = _pending_request(requester_id=requester_id, receiver=receiver)
    requester = _active_user(requester_id)
    chat = _accept(friendship, receiver=receiver, requester=requester)
    return friendship, chat, requester


def _accept(friendship: Friendship, *, receiver: User, requester: User) -> Chat:
    friendship.status = Friendship.Status.ACCEPTED
    friendship.accepted_at = timezone.now()
    friendship.save(update_fields=["status", "accepted_at"])
    chat = get_or_create_direct_chat(user_a=receiver, user_b=requester)
    _settle_request_notifications(receiver=receiver, requester=requester)
    _notify(
        receiver=requester,
        sender=receiver,
        type=Notification.Type.FRIEND_REQUEST_ACCEPTED,
        content=f"{receiver.username} accepted your friend request.",
    )
    cache.forget_friends(receiver.pk, requester.pk)
    publish_to_user(receiver.pk, events.friendship_frame(user_id=requester.pk, state="friends", chat_id=chat.pk))
    publish_to_user(requester.pk, events.friendship_frame(user_id=receiver.pk, state="friends", chat_id=chat.pk))
    # Once they are friends for everyone: read earlier, an "offline" announced meanwhile would miss the other.
    transaction.on_commit(lambda: presence.announce_new_friends(receiver.pk, requester.pk))
    return chat


@transaction.atomic
def reject_friend_request(*, receiver: User, requester_id: int) -> None:
    friendship = _pending_request(requester_id=requester_id, receiver=receiver)
    friendship.delete()
    requester = User.objects.get(pk=requester_id)
    _settle_request_notifications(receiver=receiver, requester=requester)
    _notify(
        receiver=requester,
        sender=receiver,
        type=Notification.Type.FRIEND_REQUEST_REJECTED,
        content=f"{receiver.username} declined your friend request.",
    )
    publish_to_user(receiver.pk, events.friendship_frame(user_id=requester.pk, state=FriendshipState.NONE))
    publish_to_user(requester.pk, events.friendship_frame(user_id=receiver.pk, state=FriendshipState.NONE))


@transaction.atomic
def cancel_friend_request(*, requester: User, receiver_id: int) -> None:
    friendship = _locked_friendship(requester.pk, receiver_id)
    if friendship is None or friendship.status != Friendship.Status.PENDING or friendship.requester_id != requester.pk:
        raise NotFoundError("You have no friend request waiting with this user.")
    remove_friendship(friendship)


@transaction.atomic
def unfriend(*, user: User, friend_id: int) -> None:
    friendship = _locked_friendship(user.pk, friend_id)
    if friendship is None or friendship.status != Friendship.Status.ACCEPTED:
        raise NotFoundError("You are not friends with this user.")
    remove_friendship(friendship)


def remove_friendship(friendship: Friendship) -> None:
    """End a friendship or drop a request (unfriend, cancel, the admin). The pair's chat and its history stay."""
    if friendship.status == Friendship.Status.PENDING:
        # This request can no longer be answered: take it out of the receiver's inbox (the notifications
        # of earlier requests between the two, answered long ago, stay).
        Notification.objects.filter(
            receiver_id=friendship.receiver_id,
            sender_id=friendship.requester_id,
            type=Notification.Type.FRIEND_REQUEST,
            created_at__gte=friendship.created_at,
        ).delete()
    friendship.delete()
    cache.forget_friends(friendship.user_low_id, friendship.user_high_id)
    for user_id, other_id in (
        (friendship.user_low_id, friendship.user_high_id),
        (friendship.user_high_id, friendship.user_low_id),
    ):
        publish_to_user(user_id, events.friendship_frame(user_id=other_id, state=FriendshipState.NONE))


# --- Notifications ---------------------------------------------------------------


def _notify(*, receiver: User, sender: User | None, type: str, content: str) -> Notification:
    notification = Notification.objects.create(receiver=receiver, sender=sender, type=type, content=content)
    publish_to_user(receiver.pk, events.notification_frame(notification))
    return notification


def _settle_request_notifications(*, receiver: User, requester: User) -> None:
    """An answered request's notification is read: nothing is left to do about it."""
    Notification.objects.filter(
        receiver=receiver, sender=requester, type=Notification.Type.FRIEND_REQUEST, is_read=False
    ).update(is_read=True)


def _own_notification(user: User, notification_id: int) -> Notification:
    notification = Notification.objects.filter(pk=notification_id, receiver=user).first()
    if notification is None:
        raise NotFoundError("No such notification.")
    return notification


def mark_notification_read(*, user: User, notification_id: int) -> None:
    notification = _own_notification(user, notification_id)
    if not notification.is_read:
        notification.is_read = True
        notification.save(update_fields=["is_read"])


def mark_all_notifications_read(*, user: User) -> int:
    return Notification.objects.filter(receiver=user, is_read=False).update(is_read=True)


def delete_notification(*, user: User, notification_id: int) -> None:
    _own_notification(user, notification_id).delete()
