from __future__ import annotations

import time
from collections.abc import Iterable
from typing import NamedTuple

from chat_realtime import shared_redis
from friends.selectors import friend_ids
from presence.services import connections_key


class OnlineFriends(NamedTuple):
    user_ids: list[int]
    # Redis's time (µs) just before the list was read: presence announced before it is already in it.
    as_of: int


def online_friends(user_id: int) -> OnlineFriends:
    online, as_of = online_among_as_of(friend_ids(user_id))
    return OnlineFriends(user_ids=sorted(online), as_of=as_of)


def online_among(user_ids: Iterable[int]) -> set[int]:
    """Those of `user_ids` with a live connection right now (on any worker)."""
    ids = [int(u) for u in user_ids]
    return online_among_as_of(ids)[0] if ids else set()


def online_among_as_of(user_ids: Iterable[int]) -> tuple[set[int], int]:
    """As `online_among`, with Redis's time (µs) just before it read them."""
    ids = [int(u) for u in user_ids]
    now = time.time()
    with shared_redis.connection().pipeline(transaction=False) as pipe:
        pipe.time()
        for user_id in ids:
            pipe.zcount(connections_key(user_id), f"({now}", "+inf")
        (seconds, microseconds), *counts = pipe.execute()
    return {user_id for user_id, count in zip(ids, counts, strict=True) if count}, seconds * 1_000_000 + microseconds


def is_online(user_id: int) -> bool:
    return int(user_id) in online_among([user_id])


def online_among_or_none(user_ids: Iterable[int]) -> set[int]:
    """As online_among, but nobody is online when Redis cannot say (for lists that must not fail)."""
    try:
        return online_among(user_ids)
    except shared_redis.RedisError:
        return set()
