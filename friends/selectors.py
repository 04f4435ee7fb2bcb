"""Reads about friendships, people and notifications."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.core.paginator import Paginator
from django.db.models import Q, QuerySet
from django.db.models.functions import Lower

from accounts.models import User, normalize_email, normalize_phone_number
from friends import cache
from friends.models import Friendship, Notification
from messaging.models import Chat

SEARCH_PAGE_SIZE_MAX = 50
NOTIFICATIONS_PAGE_SIZE_MAX = 100


class FriendshipState:
    NONE = "none"
    FRIENDS = "friends"
    OUTGOING = "outgoing"
    INCOMING = "incoming"


def _pair_filter(user_a_id: int, user_b_id: int) -> Q:
    low, high = sorted((int(user_a_id), int(user_b_id)))
    return Q(user_low_id=low, user_high_id=high)


def friendship_between(user_a_id: int, user_b_id: int) -> Friendship | None:
    return Friendship.objects.filter(_pair_filter(user_a_id, user_b_id)).first()


def _friendships_of(user_id: int) -> QuerySet[Friendship]:
    return Friendship.objects.filter(Q(user_low_id=user_id) | Q(user_high_id=user_id))


def state_from(friendship: Friendship | None, viewer_id: int) -> str:
    if friendship is None:
        return FriendshipState.NONE
    if friendship.status == Friendship.Status.ACCEPTED:
        return FriendshipState.FRIENDS
    return FriendshipState.OUTGOING if friendship.requester_id == viewer_id else FriendshipState.INCOMING


def are_friends(user_a_id: int, user_b_id: int) -> bool:
    """Asked of the database, not the cache: this answer grants access."""
    return Friendship.objects.filter(_pair_filter(user_a_id, user_b_id), status=Friendship.Status.ACCEPTED).exists()


def friend_ids(user_id: int) -> set[int]:
    """Ids of the user's friends (accepted friendships), through the Redis cache."""

    def load() -> set[int]:
        rows = _friendships_of(user_id).filter(status=Friendship.Status.ACCEPTED)
        return {f.other_id(user_id) for f in rows.only("user_low_id", "user_high_id")}

    return cache.cached_friend_ids(user_id, load)


def friends_info(user_id: int) -> dict[int, dict[str, Any]]:
    """Friend id -> {chat_id, friends_since}, through the Redis cache."""

    def load() -> dict[int, dict[str, Any]]:
        friendships = list(_friendships_of(user_id).filter(status=Friendship.Status.ACCEPTED))
        keys = {f.other_id(user_id): Chat.key_for_pair(user_id, f.other_id(user_id)) for f in friendships}
        chat_ids = dict(Chat.objects.filter(direct_key__in=keys.values()).values_list("direct_key", "id"))
        return {
            f.other_id(user_id): {
                "chat_id": chat_ids.get(keys[f.other_id(user_id)]),
                "friends_since": (f.accepted_at or f.created_at).isoformat(),
            }
            for f in friendships
        }

    return cache.cached_friends_info(user_id, load)


@dataclass(frozen=True)
class FriendEntry:
    user: User
    chat_id: int | None
    last_activity_at: Any


def friend_list(user: User, only: set[int] | None = None) -> list[FriendEntry]:
    """The user's friends (those of them whose ids are in `only`, if given), most recent chat activity first."""
    info = friends_info(user.pk)
    if only is not None:
        info = {friend_id: entry for friend_id, entry in info.items() if friend_id in only}
    users = {u.pk: u for u in User.objects.filter(pk__in=info.keys(), is_active=True)}
    activity = dict(
        Chat.objects.filter(pk__in=[e["chat_id"] for e in info.values() if e["chat_id"]]).values_list(
            "id", "last_activity_at"
        )
    )
    entries = [
        FriendEntry(user=users[friend_id], chat_id=entry["chat_id"], last_activity_at=activity.get(entry["chat_id"]))
        for friend_id, entry in info.items()
        if friend_id in users
    ]
    entries.sort(key=lambda e: (e.last_activity_at is not None, e.last_activity_at, e.user.username), reverse=True)
    return entries


@dataclass(frozen=True)
class FriendRequest:
    user: User
    created_at: Any


def friend_requests(user: User) -> tuple[list[FriendRequest], list[FriendRequest]]:
    """(incoming, outgoing) pending requests, newest first."""
    pending = (
        _friendships_of(user.pk)
        .filter(status=Friendship.Status.PENDING)
        .select_related("user_low", "user_high")
        .order_by("-created_at")
    )
    incoming, outgoing = [], []
    for friendship in pending:
        other = friendship.user_high if friendship.user_low_id == user.pk else friendship.user_low
        if not other.is_active:
            continue
        request = FriendRequest(user=other, created_at=friendship.created_at)
        (outgoing if friendship.requester_id == user.pk else incoming).append(request)
    return incoming, outgoing


def friendship_states(viewer_id: int, other_ids: list[int]) -> dict[int, str]:
    rows = _friendships_of(viewer_id).filter(Q(user_low_id__in=other_ids) | Q(user_high_id__in=other_ids))
    states = {other_id: FriendshipState.NONE for other_id in other_ids}
    for friendship in rows:
        states[friendship.other_id(viewer_id)] = state_from(friendship, viewer_id)
    return states


@dataclass(frozen=True)
class Page:
    items: list[Any]
    count: int
    page: int
    pages: int


def paginate(queryset: QuerySet, *, page: int, page_size: int) -> Page:
    paginator = Paginator(queryset, page_size)
    if page > paginator.num_pages:
        return Page(items=[], count=paginator.count, page=page, pages=paginator.num_pages)
    current = paginator.page(page)
    return Page(items=list(current.object_list), count=paginator.count, page=page, pages=paginator.num_pages)


def search_users(*, viewer: User, query: str, page: int, page_size: int) -> Page:
    """People by username prefix, or by exact email or phone number. Never the viewer, never the banned."""
    query = query.strip()
    if not query:
        return Page(items=[], count=0, page=page, pages=0)
    match = Q(username__istartswith=query) | Q(email__iexact=normalize_email(query))
    phone_number = normalize_phone_number(query)
    if phone_number:
        match |= Q(phone_number=phone_number)
    people = User.objects.filter(match, is_active=True).exclude(pk=viewer.pk).order_by(Lower("username"), "pk")
    return paginate(people, page=page, page_size=min(page_size, SEARCH_PAGE_SIZE_MAX))


def notifications_for(*, user: User, unread_only: bool, page: int, page_size: int) -> Page:
    notifications = Notification.objects.filter(receiver=user).select_related("sender")
    if unread_only:
        notifications = notifications.filter(is_read=False)
    return paginate(notifications, page=page, page_size=min(page_size, NOTIFICATIONS_PAGE_SIZE_MAX))


def unread_notification_count(user: User) -> int:
    return Notification.objects.filter(receiver=user, is_read=False).count()
